"""Proposing: every gate a host can set refuses with a clear message and creates nothing;
audience rooms wait for the host's approval."""

from __future__ import annotations

import types
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser

from collab import selectors, services
from collab.models import Proposal, Room
from collab.services import MAX_BALLOT
from tests.collab.conftest import T0, at
from webapp import ratelimit
from webapp.errors import Forbidden, ServiceError
from webapp.ratelimit import RateLimited

ANON = AnonymousUser()


def propose(room, user=None, text="add strings", *, anon_key=None, seconds=1.0, **kwargs):
    return services.proposal_create(
        room=room, user=user, anon_key=anon_key, text=text, now=at(seconds), **kwargs
    )


def refusal(action) -> ServiceError:
    count = Proposal.objects.count()
    with pytest.raises(ServiceError) as refused:
        action()
    assert Proposal.objects.count() == count  # a refusal creates nothing
    return refused.value


def test_in_a_friends_room_a_proposal_is_on_the_ballot_at_once(a_live_room, bob):
    proposal = propose(a_live_room, bob, "  slower,\n add   strings ")

    assert (proposal.kind, proposal.text, proposal.status) == (
        "prompt",
        "slower, add strings",
        "approved",
    )
    assert (proposal.author, proposal.author_key) == (bob, f"user:{bob.pk}")
    assert list(selectors.ballot(round=selectors.round_current(room=a_live_room))) == [proposal]


def test_a_control_nudge_is_labelled_for_the_ballot(a_live_room, bob):
    proposal = services.proposal_create(room=a_live_room, user=bob, control={"bpm": 8})

    assert (proposal.kind, proposal.text, proposal.control) == ("control", "+8 BPM", {"bpm": "+8"})


def test_signed_out_listeners_propose_under_their_session(a_live_room):
    proposal = propose(a_live_room, ANON, anon_key="s3ss10n")

    assert (proposal.author, proposal.author_key) == (None, "anon:s3ss10n")


def test_control_and_invisible_characters_are_removed(a_live_room, bob):
    proposal = propose(a_live_room, bob, "add\u202e strings\u200b\x00 ❤️")

    assert proposal.text == "add strings ❤️"


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"text": " \n "}, "text", "Write an idea: what should the music do next?"),
        ({"text": "x" * 201}, "text", "Proposals are at most 200 characters (this one has 201)."),
        ({"text": "strings", "control": {"bpm": 8}}, "control", "not both"),
        ({"text": None, "control": {"bpm": 500}}, "control", "between 40 and 220 BPM"),
        ({"text": None, "control": {"volume": 11}}, "control", "Unknown control 'volume'"),
    ],
)
def test_a_proposal_that_says_nothing_usable_is_refused(a_live_room, bob, kwargs, field, message):
    error = refusal(lambda: propose(a_live_room, bob, **kwargs))

    assert message in error.message and error.field == field


def test_nobody_proposes_while_the_room_is_paused_or_after_it_ended(a_live_room, alice, bob):
    services.room_pause(room=a_live_room, user=alice)
    error = refusal(lambda: propose(a_live_room, bob))
    assert (error.code, error.message) == (
        "paused",
        "The room is paused; it opens again when the host resumes it.",
    )

    services.room_end(room=a_live_room, user=alice)
    error = refusal(lambda: propose(a_live_room, bob))
    assert (error.code, error.message) == ("ended", "This room has ended.")


def test_a_consumers_old_copy_of_the_room_still_hears_of_the_pause(a_live_room, alice, bob):
    old_copy = Room.objects.get(pk=a_live_room.pk)
    services.room_pause(room=a_live_room, user=alice)

    assert refusal(lambda: propose(old_copy, bob)).code == "paused"


def test_someone_with_neither_account_nor_session_cannot_propose(a_live_room):
    error = refusal(lambda: propose(a_live_room, ANON))

    assert (error.code, error.message) == ("login_required", "Sign in to propose in this room.")


def test_login_required_keeps_signed_out_listeners_from_taking_part(make_room, alice, bob):
    room = make_room(alice, login_required=True)

    error = refusal(lambda: propose(room, ANON, anon_key="s3ss10n"))

    assert error.code == "login_required"
    assert propose(room, bob).status == "approved"


def test_logged_in_proposers_only(make_room, alice, bob):
    room = make_room(alice, who_may_propose="logged_in")

    error = refusal(lambda: propose(room, ANON, anon_key="s3ss10n"))

    assert error.message == "Sign in to propose in this room."
    assert propose(room, bob).status == "approved"


def test_host_only_rooms_take_proposals_from_the_host_alone(make_room, alice, bob):
    room = make_room(alice, who_may_propose="host_only")

    error = refusal(lambda: propose(room, bob))

    assert isinstance(error, Forbidden)
    assert error.message == "Only the host proposes in this room; vote on the ballot instead."
    assert propose(room, alice).status == "approved"


def test_new_accounts_wait_out_the_minimum_account_age(make_room, make_user, alice, bob):
    room = make_room(alice, min_account_age_days=7)
    newcomer = make_user("newcomer", date_joined=T0 - timedelta(days=2))
    bob.date_joined = T0 - timedelta(days=30)
    bob.save()

    error = refusal(lambda: propose(room, newcomer))
    assert (error.code, error.message) == (
        "account_too_new",
        "Proposals in this room need an account at least 7 days old (yours is 2 days old).",
    )
    error = refusal(lambda: propose(room, ANON, anon_key="s3ss10n"))
    assert error.message == "Proposals in this room need an account at least 7 days old."
    assert propose(room, bob).status == "approved"


def test_slow_mode_spaces_one_persons_proposals(make_room, alice, bob, carol):
    room = make_room(alice, slow_mode_s=30)
    propose(room, bob, "add strings", seconds=1)

    error = refusal(lambda: propose(room, bob, "add drums", seconds=20))
    assert (error.code, error.message) == (
        "slow_mode",
        "Slow mode is on: wait 11 s before proposing again.",
    )
    assert propose(room, carol, "add drums", seconds=20).author == carol  # others are not slowed
    assert propose(room, bob, "add flute", seconds=31).author == bob


def test_the_host_is_not_slowed(make_room, alice):
    room = make_room(alice, slow_mode_s=30)

    propose(room, alice, "add strings", seconds=1)

    assert propose(room, alice, "add drums", seconds=2).status == "approved"


def test_the_same_idea_twice_is_a_vote_not_a_proposal(a_live_room, bob, carol):
    propose(a_live_room, bob, "Add strings")

    error = refusal(lambda: propose(a_live_room, carol, "add  STRINGS"))

    assert (error.code, error.message) == (
        "duplicate",
        "“add STRINGS” is already proposed: vote for it instead.",
    )


def test_a_full_ballot_takes_no_more(a_live_room, alice, bob, settings):
    settings.RATELIMIT_ENABLED = False  # one proposer filling the ballot would be a burst
    for i in range(MAX_BALLOT):
        propose(a_live_room, alice, f"idea {i}")

    error = refusal(lambda: propose(a_live_room, bob, "one more"))

    assert error.code == "ballot_full"
    assert "vote for one of them, or propose again next round" in error.message


def test_proposing_in_a_burst_is_rate_limited(a_live_room, bob, monkeypatch):
    # A fixed clock: a burst straddling a window edge would otherwise pass (fixed windows).
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: 1_800_000_000.5))
    for i in range(3):
        propose(a_live_room, bob, f"idea {i}")

    count = Proposal.objects.count()
    with pytest.raises(RateLimited, match="room_propose"):
        propose(a_live_room, bob, "idea 3")
    assert Proposal.objects.count() == count


# --- Audience rooms: the host approves -------------------------------------------------------


def test_in_an_audience_room_proposals_wait_for_the_host(an_audience_room, bob):
    proposal = propose(an_audience_room, bob)

    assert proposal.status == "pending"
    assert list(selectors.proposal_list_pending(room=an_audience_room)) == [proposal]
    assert list(selectors.ballot(round=selectors.round_current(room=an_audience_room))) == []


def test_the_hosts_own_proposals_need_no_approval(an_audience_room, alice):
    assert propose(an_audience_room, alice).status == "approved"


def test_approval_puts_a_proposal_on_the_ballot_of_the_round_open_then(
    an_audience_room, alice, bob
):
    proposal = propose(an_audience_room, bob)
    services.round_close(room=an_audience_room, now=at(20))

    services.proposal_moderate(proposal=proposal, user=alice, approve=True, now=at(21))

    proposal.refresh_from_db()
    second = selectors.round_current(room=an_audience_room)
    assert (proposal.status, proposal.round, proposal.moderated_by) == ("approved", second, alice)
    assert list(selectors.ballot(round=second)) == [proposal]
    assert list(selectors.proposal_list_pending(room=an_audience_room)) == []


def test_a_rejected_proposal_leaves_the_ballot(an_audience_room, alice, bob):
    proposal = propose(an_audience_room, bob)

    services.proposal_moderate(proposal=proposal, user=alice, approve=False)

    assert Proposal.objects.get().status == "rejected"
    assert list(selectors.proposal_list_pending(room=an_audience_room)) == []


def test_only_the_host_moderates(an_audience_room, bob, carol):
    proposal = propose(an_audience_room, bob)

    with pytest.raises(Forbidden, match="Only the host can moderate proposals."):
        services.proposal_moderate(proposal=proposal, user=carol, approve=True)

    assert Proposal.objects.get().status == "pending"


def test_a_pending_idea_cannot_be_proposed_again_while_it_waits(an_audience_room, bob, carol):
    propose(an_audience_room, bob, "add strings")

    error = refusal(lambda: propose(an_audience_room, carol, "add strings"))

    assert error.code == "duplicate"
