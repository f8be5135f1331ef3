"""Opening, changing, pausing and ending rooms; who may see them."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from collab import selectors, services
from collab.models import Room, Round
from collab.voting import ANCHOR
from tests.collab.conftest import T0, at
from webapp.errors import Forbidden, NotFound, ServiceError


def test_a_new_room_is_live_plays_its_anchor_and_has_round_one_open(make_room, alice):
    room = make_room(alice, round_length_s=30, controls={"bpm": 84})

    assert room.status == "live"
    assert room.slug == "friday-jam"
    assert room.current_blend == {ANCHOR: 1.0}
    assert room.current_steering["prompts"] == [["warm lo-fi beat with soft piano", 1.0]]
    assert room.current_steering["controls"]["bpm"] == 84
    first = selectors.round_current(room=room)
    assert (first.number, first.opened_at, first.ends_at) == (1, T0, at(30))


def test_slow_mode_stretches_rounds_so_a_big_audience_has_time_to_vote(make_room, alice):
    room = make_room(alice, round_length_s=20, slow_mode_s=45)

    assert selectors.round_current(room=room).ends_at == at(45)


def test_two_rooms_with_one_title_get_different_slugs(make_room, alice, bob):
    first = make_room(alice, title="Friday jam")
    second = make_room(bob, title="Friday  Jam!")

    assert first.slug == "friday-jam"
    assert second.slug.startswith("friday-jam-") and second.slug != first.slug


def test_a_title_without_letters_still_gets_a_slug(make_room, alice):
    assert make_room(alice, title="🎶🎶").slug == "room"


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"title": "   "}, "title", "A room needs a title."),
        ({"title": "x" * 101}, "title", "at most 100 characters"),
        ({"anchor_prompt": ""}, "anchor_prompt", "when nobody votes"),
        ({"round_length_s": 4}, "round_length_s", "Rounds last 5 to 120 seconds; got 4."),
        ({"round_length_s": 121}, "round_length_s", "Rounds last 5 to 120 seconds"),
        ({"round_length_s": 7.5}, "round_length_s", "Rounds last 5 to 120 seconds"),
        ({"slow_mode_s": 301}, "slow_mode_s", "Slow mode is 0 (off) to 300 seconds"),
        ({"min_account_age_days": 400}, "min_account_age_days", "0 to 365 days"),
        ({"visibility": "secret"}, "visibility", "Unknown visibility 'secret'"),
        ({"mode": "solo"}, "mode", "Unknown mode 'solo'"),
        ({"who_may_propose": "mods"}, "who_may_propose", "Unknown setting 'mods'"),
        ({"login_required": "yes"}, "login_required", "true or false"),
        ({"controls": {"tempo": 90}}, "controls", "Unknown control 'tempo'"),
        ({"seed": -1}, "seed", "Seed must be between 0 and"),
    ],
)
def test_a_room_with_bad_settings_is_refused_and_nothing_is_made(
    make_room, alice, params, field, message
):
    with pytest.raises(ServiceError) as refused:
        make_room(alice, **params)

    assert message in refused.value.message
    assert refused.value.field == field
    assert not Room.objects.exists() and not Round.objects.exists()


def test_a_host_runs_at_most_three_rooms_at_once(make_room, alice):
    rooms = [make_room(alice, title=f"Room {i}") for i in range(3)]

    with pytest.raises(ServiceError, match="end one to start another") as refused:
        make_room(alice, title="One too many")
    assert refused.value.code == "too_many_rooms"

    services.room_end(room=rooms[0], user=alice, now=at(60))
    assert make_room(alice, title="Now there is room").status == "live"


def test_the_host_changes_settings_and_the_slug_stays(a_live_room, alice):
    room = services.room_update(
        room=a_live_room,
        user=alice,
        title="Saturday jam",
        visibility="public",
        who_may_propose="logged_in",
        slow_mode_s=10,
        min_account_age_days=7,
        login_required=True,
        round_length_s=30,
    )

    room.refresh_from_db()
    assert (room.title, room.slug, room.visibility) == ("Saturday jam", "friday-jam", "public")
    assert (room.who_may_propose, room.slow_mode_s, room.min_account_age_days) == (
        "logged_in",
        10,
        7,
    )
    assert room.login_required and room.round_length_s == 30


def test_a_new_anchor_prompt_is_heard_at_once(a_live_room, alice):
    services.room_update(room=a_live_room, user=alice, anchor_prompt="dark ambient drones")

    a_live_room.refresh_from_db()
    assert a_live_room.current_steering["prompts"] == [["dark ambient drones", 1.0]]


@pytest.mark.parametrize(
    "action",
    [
        lambda room, user: services.room_update(room=room, user=user, title="Mine now"),
        lambda room, user: services.room_pause(room=room, user=user),
        lambda room, user: services.room_resume(room=room, user=user),
        lambda room, user: services.room_end(room=room, user=user),
    ],
)
def test_only_the_host_runs_the_room(a_live_room, bob, action):
    with pytest.raises(Forbidden, match="Only the host can"):
        action(a_live_room, bob)

    a_live_room.refresh_from_db()
    assert (a_live_room.title, a_live_room.status) == ("Friday jam", "live")


def test_an_admin_may_end_anyones_room(a_live_room, admin):
    services.room_end(room=a_live_room, user=admin, now=at(5))

    assert a_live_room.status == "ended" and a_live_room.ended_at == at(5)


def test_pause_and_resume_give_the_open_round_its_full_time_again(a_live_room, alice):
    services.room_pause(room=a_live_room, user=alice, now=at(15))
    assert a_live_room.status == "paused"

    services.room_resume(room=a_live_room, user=alice, now=at(100))

    assert a_live_room.status == "live"
    assert selectors.round_current(room=a_live_room).ends_at == at(120)


def test_pausing_twice_is_harmless(a_live_room, alice):
    services.room_pause(room=a_live_room, user=alice)
    services.room_pause(room=a_live_room, user=alice)

    assert a_live_room.status == "paused"


def test_ending_closes_the_open_round_and_leaves_the_music_as_it_was(a_live_room, alice):
    services.room_end(room=a_live_room, user=alice, now=at(12))

    assert selectors.round_current(room=a_live_room) is None
    last = Round.objects.get(room=a_live_room)
    assert (last.status, last.closed_at, last.result_blend) == ("closed", at(12), {ANCHOR: 1.0})
    with pytest.raises(ServiceError, match="This room has ended."):
        services.room_update(room=a_live_room, user=alice, title="Again")
    with pytest.raises(ServiceError, match="This room has ended."):
        services.room_resume(room=a_live_room, user=alice)


def test_public_rooms_that_are_on_are_listed_newest_first(make_room, alice, bob):
    older = make_room(alice, title="Older", visibility="public")
    newer = make_room(bob, title="Newer", visibility="public")
    make_room(alice, title="Unlisted")
    ended = make_room(bob, title="Ended", visibility="public")
    services.room_end(room=ended, user=bob)

    assert list(selectors.room_list_public()) == [newer, older]


VIEWERS = ("host", "admin", "other", "anonymous")


@pytest.mark.parametrize(
    ("visibility", "token", "who_sees"),
    [
        ("public", None, {"host", "admin", "other", "anonymous"}),
        ("unlisted", None, {"host", "admin"}),
        ("unlisted", "right", {"host", "admin", "other", "anonymous"}),
        ("unlisted", "wrong", {"host", "admin"}),
        ("private", "right", {"host", "admin"}),
    ],
)
def test_rooms_are_seen_as_songs_are(make_room, alice, bob, admin, visibility, token, who_sees):
    room = make_room(alice, visibility=visibility)
    users = {"host": alice, "admin": admin, "other": bob, "anonymous": AnonymousUser()}
    share_token = {"right": room.share_token, "wrong": "not-the-token", None: None}[token]

    seen = set()
    for name in VIEWERS:
        for lookup in ({"room_id": room.pk}, {"slug": room.slug}):
            try:
                selectors.room_get_for_viewer(user=users[name], share_token=share_token, **lookup)
            except NotFound:
                continue
            seen.add(name)

    assert seen == who_sees


def test_a_room_id_that_is_not_a_uuid_is_simply_not_found(db, alice):
    with pytest.raises(NotFound, match="No such room."):
        selectors.room_get_for_viewer(user=alice, room_id="not-a-uuid")
