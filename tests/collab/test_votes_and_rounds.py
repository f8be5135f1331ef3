"""Voting, and closing a round: the votes become the next blend, the blend the next steering."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from collab import selectors, services
from collab.models import Round, Vote
from collab.voting import ANCHOR, next_blend
from tests.collab.conftest import at
from webapp.errors import ServiceError

ANON = AnonymousUser()


def propose(room, user, text=None, *, seconds=1.0, control=None):
    return services.proposal_create(
        room=room, user=user, text=text, control=control, now=at(seconds)
    )


def vote(proposal, user=None, *, anon_key=None, seconds=2.0):
    return services.vote_cast(proposal=proposal, user=user, anon_key=anon_key, now=at(seconds))


@pytest.fixture
def strings_and_faster(a_live_room, bob, carol):
    """Round 1 of alice's room: bob proposes strings, carol a faster tempo."""
    return propose(a_live_room, bob, "add strings"), propose(a_live_room, carol, control={"bpm": 8})


def test_changing_a_vote_updates_it_and_it_is_counted_once(a_live_room, bob, strings_and_faster):
    strings, faster = strings_and_faster
    first = vote(strings, bob, seconds=2)

    second = vote(faster, bob, seconds=5)

    assert second.pk == first.pk
    assert Vote.objects.count() == 1
    assert (second.proposal, second.created_at, second.updated_at) == (faster, at(2), at(5))
    counts = {p.text: p.vote_count for p in selectors.ballot(round=strings.round)}
    assert counts == {"+8 BPM": 1, "add strings": 0}


def test_the_ballot_lists_the_most_voted_first(a_live_room, alice, bob, carol, strings_and_faster):
    strings, faster = strings_and_faster
    vote(faster, alice)
    vote(faster, bob)
    vote(strings, carol)

    assert [(p.text, p.vote_count) for p in selectors.ballot(round=strings.round)] == [
        ("+8 BPM", 2),
        ("add strings", 1),
    ]


def test_signed_out_listeners_vote_once_per_session(a_live_room, strings_and_faster):
    strings, faster = strings_and_faster

    vote(strings, ANON, anon_key="s1")
    vote(faster, ANON, anon_key="s1")
    vote(faster, ANON, anon_key="s2")

    assert sorted(Vote.objects.values_list("voter_key", "proposal__text")) == [
        ("anon:s1", "+8 BPM"),
        ("anon:s2", "+8 BPM"),
    ]


@pytest.mark.parametrize(
    ("setup", "code", "message"),
    [
        ("login_required", "login_required", "Sign in to vote in this room."),
        ("paused", "paused", "The room is paused; it opens again when the host resumes it."),
        ("closed", "round_closed", "Voting on that round has closed; the ballot has moved on."),
        ("rejected", "rejected", "The host took this proposal off the ballot."),
    ],
)
def test_votes_that_cannot_count_are_refused(
    a_live_room, alice, strings_and_faster, setup, code, message
):
    strings, _ = strings_and_faster
    if setup == "login_required":
        services.room_update(room=a_live_room, user=alice, login_required=True)
    elif setup == "paused":
        services.room_pause(room=a_live_room, user=alice)
    elif setup == "closed":
        services.round_close(room=a_live_room, now=at(20))
    else:
        services.proposal_moderate(proposal=strings, user=alice, approve=False)
    # No refresh: the service reads the room and proposal as they are now, as a consumer
    # holding old copies needs.

    with pytest.raises(ServiceError) as refused:
        vote(strings, ANON if setup == "login_required" else alice, anon_key="s1", seconds=21)

    assert (refused.value.code, refused.value.message) == (code, message)
    assert not Vote.objects.exists()


def test_a_pending_proposal_cannot_be_voted_for(an_audience_room, bob, carol):
    waiting = propose(an_audience_room, bob, "add strings")

    with pytest.raises(ServiceError, match="waiting for the host's approval"):
        vote(waiting, carol)


def test_closing_a_round_turns_votes_into_a_blend_and_a_steering(
    a_live_room, alice, bob, carol, strings_and_faster
):
    strings, faster = strings_and_faster
    vote(strings, alice)
    vote(strings, bob)
    vote(faster, carol)

    closed = services.round_close(room=a_live_room, now=at(20))

    s, f = str(strings.pk), str(faster.pk)
    expected = next_blend({s: 2, f: 1}, {ANCHOR: 1.0})
    assert (closed.number, closed.status, closed.closed_at) == (1, "closed", at(20))
    assert closed.tally == {s: 2, f: 1}
    assert closed.result_blend == pytest.approx(expected)
    assert a_live_room.current_blend == pytest.approx(expected)
    prompts = dict(a_live_room.current_steering["prompts"])
    prompt_part = expected[s] + expected[ANCHOR]
    assert prompts == pytest.approx(
        {
            "add strings": expected[s] / prompt_part,
            a_live_room.anchor_prompt: expected[ANCHOR] / prompt_part,
        },
        abs=1e-4,
    )
    assert a_live_room.current_steering["controls"]["bpm"] == 128  # 120 (unset) + 8
    following = selectors.round_current(room=a_live_room)
    assert (following.number, following.opened_at, following.ends_at) == (2, at(20), at(40))


def test_a_nudge_is_applied_once_and_with_no_votes_the_music_drifts_home(
    a_live_room, bob, strings_and_faster
):
    _, faster = strings_and_faster
    vote(faster, bob)
    services.round_close(room=a_live_room, now=at(20))
    before = dict(a_live_room.current_blend)

    services.round_close(room=a_live_room, now=at(40))  # nobody voted in round 2

    assert a_live_room.current_blend[ANCHOR] > before[ANCHOR]
    assert a_live_room.current_steering["controls"]["bpm"] == 128  # still +8 once, not +16
    assert a_live_room.current_steering["prompts"] == [[a_live_room.anchor_prompt, 1.0]]


def test_votes_for_a_rejected_proposal_do_not_count(a_live_room, alice, bob, strings_and_faster):
    strings, faster = strings_and_faster
    vote(strings, bob)
    vote(faster, alice)
    services.proposal_moderate(proposal=strings, user=alice, approve=False)

    closed = services.round_close(room=a_live_room, now=at(20))

    assert closed.tally == {str(faster.pk): 1}


def test_vetoing_what_the_music_follows_takes_it_out_of_the_blend_at_once(
    a_live_room, alice, bob, strings_and_faster
):
    strings, _ = strings_and_faster
    vote(strings, bob)
    services.round_close(room=a_live_room, now=at(20))
    assert str(strings.pk) in a_live_room.current_blend

    services.proposal_moderate(proposal=strings, user=alice, approve=False)

    a_live_room.refresh_from_db()
    assert a_live_room.current_blend == {ANCHOR: 1.0}
    assert a_live_room.current_steering["prompts"] == [[a_live_room.anchor_prompt, 1.0]]


def test_closing_a_round_twice_changes_nothing_the_second_time(
    a_live_room, bob, strings_and_faster
):
    strings, _ = strings_and_faster
    vote(strings, bob)
    first = services.round_close(room=a_live_room, number=1, now=at(20))
    blend = dict(a_live_room.current_blend)

    again = services.round_close(room=a_live_room, number=1, now=at(21))

    assert again.pk == first.pk
    assert a_live_room.current_blend == blend
    assert list(Round.objects.filter(room=a_live_room).values_list("number", "status")) == [
        (1, "closed"),
        (2, "open"),
    ]


def test_a_paused_room_keeps_its_round_open(a_live_room, alice):
    services.room_pause(room=a_live_room, user=alice)

    with pytest.raises(ServiceError, match="The room is paused"):
        services.round_close(room=a_live_room, now=at(20))

    assert selectors.round_current(room=a_live_room).number == 1


def test_an_unvoted_proposal_made_at_the_last_moment_moves_to_the_next_ballot(
    a_live_room, bob, carol
):
    early = propose(a_live_room, bob, "add strings", seconds=2)
    late = propose(a_live_room, carol, "add flute", seconds=17)  # the last quarter of 20 s

    services.round_close(room=a_live_room, now=at(20))

    early.refresh_from_db()
    late.refresh_from_db()
    assert (early.round.number, late.round.number) == (1, 2)
    assert list(selectors.ballot(round=selectors.round_current(room=a_live_room))) == [late]


def test_the_conductor_finds_rounds_whose_time_is_up(make_room, alice, bob):
    due = make_room(alice, title="Due", round_length_s=10)
    make_room(alice, title="Not yet", round_length_s=60)
    paused = make_room(bob, title="Paused", round_length_s=10)
    services.room_pause(room=paused, user=bob)

    assert [r.room for r in selectors.round_list_due(now=at(15))] == [due]
