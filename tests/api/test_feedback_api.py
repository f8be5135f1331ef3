"""The feedback table over the API: batches of listener events, appended with their provenance."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from webapp.feedback.models import FeedbackEvent
from webapp.songs.models import Song, SongLike

FEEDBACK = "/api/v1/feedback/"


def event(song, kind: str = "play_start", **fields) -> dict:
    target_id = str(song.pk) if isinstance(song, Song) else song
    return {"kind": kind, "target_type": "song", "target_id": target_id, **fields}


def send(client, *events):
    return client.post(FEEDBACK, {"events": list(events)})


# --- Recording -------------------------------------------------------------------------------


def test_a_batch_is_recorded_and_counted(bob_api, bob, a_public_song):
    response = send(
        bob_api,
        event(a_public_song, "impression"),
        event(a_public_song, "play_start", position_s=0.0),
        event(a_public_song, "progress", value=0.5, position_s=5.0),
    )

    assert response.status_code == 201
    assert response.json() == {"received": 3, "recorded": 3}
    rows = FeedbackEvent.objects.order_by("id")
    assert [(r.kind, r.value, r.position_s) for r in rows] == [
        ("impression", None, None),
        ("play_start", None, 0.0),
        ("progress", 0.5, 5.0),
    ]
    assert {(r.user, r.actor, r.target_id) for r in rows} == {
        (bob, f"user:{bob.pk}", str(a_public_song.pk))
    }


EVERY_KIND = {
    "impression": {},
    "play_start": {},
    "progress": {"value": 0.25},
    "complete": {},
    "skip": {"position_s": 3.5},
    "replay": {},
    "thumb_up": {},
    "thumb_down": {},
    "share": {},
    "download": {},
    "vote": {"choice_set": "round-1", "slot": 2, "value": 1.0},
}


def test_every_kind_of_event_is_known_here():
    assert set(EVERY_KIND) == set(FeedbackEvent.Kind.values)


@pytest.mark.parametrize(("kind", "fields"), EVERY_KIND.items(), ids=list(EVERY_KIND))
def test_every_kind_of_event_is_accepted(bob_api, a_public_song, kind, fields):
    response = send(bob_api, event(a_public_song, kind, **fields))

    assert response.status_code == 201, response.content
    row = FeedbackEvent.objects.get()
    assert row.kind == kind
    for name, value in fields.items():
        assert getattr(row, name) == value


def test_provenance_is_copied_from_the_song_not_taken_from_the_client(bob_api, make_song, alice):
    song = make_song(
        alice, visibility="public", seed=1234, guidance=6.5, style_tags=["Jazz", "Lo-Fi"]
    )
    lies = {"model_version": "made-up-v9", "seed": 1, "conditioning": {"prompt": "lies"}}

    assert send(bob_api, event(song, "complete", **lies)).status_code == 201

    row = FeedbackEvent.objects.get()
    assert row.model_version == "placeholder-tone-v1" == song.model_version
    assert row.seed == 1234
    assert row.conditioning == {
        "prompt": "warm lo-fi beat with soft piano",
        "style_tags": ["jazz", "lo-fi"],
        "guidance": 6.5,
    }


def test_the_client_time_is_kept_beside_the_server_time(bob_api, a_public_song):
    sent = event(a_public_song, client_ts="2026-01-02T03:04:05Z")

    assert send(bob_api, sent).status_code == 201

    row = FeedbackEvent.objects.get()
    assert row.client_ts.isoformat() == "2026-01-02T03:04:05+00:00"
    assert row.server_ts > row.client_ts


# --- Thumbs ----------------------------------------------------------------------------------


def test_thumbs_set_the_like_state_once_per_listener(bob_api, alice_api, bob, a_public_song):
    def like_count() -> int:
        return Song.objects.get(pk=a_public_song.pk).like_count

    send(bob_api, event(a_public_song, "thumb_up"))
    assert like_count() == 1
    send(bob_api, event(a_public_song, "thumb_up"))
    assert like_count() == 1
    send(alice_api, event(a_public_song, "thumb_up"))
    assert like_count() == 2
    send(bob_api, event(a_public_song, "thumb_down"))
    assert like_count() == 1
    send(bob_api, event(a_public_song, "thumb_down"))
    assert like_count() == 1

    assert SongLike.objects.get(user=bob, song=a_public_song).value == -1
    # The log keeps every thumb, including the repeated ones, with its sign.
    thumbs = FeedbackEvent.objects.filter(kind__in=["thumb_up", "thumb_down"]).order_by("id")
    assert [t.value for t in thumbs] == [1, 1, 1, -1, -1]


def test_thumbs_in_one_batch_end_in_the_last_state(bob_api, bob, a_public_song):
    send(
        bob_api,
        event(a_public_song, "thumb_down"),
        event(a_public_song, "thumb_up"),
        event(a_public_song, "thumb_down"),
        event(a_public_song, "thumb_up"),
    )

    assert Song.objects.get(pk=a_public_song.pk).like_count == 1
    assert SongLike.objects.get(user=bob, song=a_public_song).value == 1


def test_a_client_cannot_choose_the_weight_of_a_thumb(bob_api, a_public_song):
    send(bob_api, event(a_public_song, "thumb_up", value=1000))

    assert FeedbackEvent.objects.get().value == 1
    assert Song.objects.get(pk=a_public_song.pk).like_count == 1


def test_a_retried_thumb_does_not_undo_a_later_one(bob_api, bob, a_public_song):
    up = event(a_public_song, "thumb_up", client_event_id="thumb-1")
    send(bob_api, up)
    send(bob_api, event(a_public_song, "thumb_down", client_event_id="thumb-2"))

    retry = send(bob_api, up)

    assert retry.json() == {"received": 1, "recorded": 0}
    assert SongLike.objects.get(user=bob, song=a_public_song).value == -1
    assert Song.objects.get(pk=a_public_song.pk).like_count == 0


# --- Anonymous listeners ---------------------------------------------------------------------


def test_anonymous_feedback_is_keyed_by_the_session(anon, a_public_song):
    first = send(anon, event(a_public_song))
    second = send(anon, event(a_public_song, "complete"))

    assert (first.status_code, second.status_code) == (201, 201)
    session = anon.cookies["sessionid"].value
    rows = FeedbackEvent.objects.all()
    assert {(r.actor, r.user) for r in rows} == {(f"anon:{session}", None)}
    assert rows.count() == 2


def test_two_anonymous_listeners_are_two_actors(a_public_song):
    for listener in (APIClient(), APIClient()):
        assert send(listener, event(a_public_song)).status_code == 201

    assert FeedbackEvent.objects.values("actor").distinct().count() == 2


def test_anonymous_thumbs_are_logged_but_not_counted_as_likes(anon, a_public_song):
    send(anon, event(a_public_song, "thumb_up"))

    assert FeedbackEvent.objects.get().value == 1
    assert Song.objects.get(pk=a_public_song.pk).like_count == 0
    assert not SongLike.objects.exists()


def test_listeners_of_a_share_link_can_give_feedback(anon, an_unlisted_song):
    sent = event(an_unlisted_song, share_token=an_unlisted_song.share_token)

    assert send(anon, sent).status_code == 201
    assert FeedbackEvent.objects.get().target_id == str(an_unlisted_song.pk)


# --- Retries ---------------------------------------------------------------------------------


def test_a_retried_event_is_recorded_once(bob_api, a_public_song):
    sent = event(a_public_song, client_event_id="evt-1")

    first = send(bob_api, sent)
    retry = send(bob_api, sent, event(a_public_song, "complete", client_event_id="evt-2"))

    assert first.json() == {"received": 1, "recorded": 1}
    assert retry.json() == {"received": 2, "recorded": 1}
    assert sorted(FeedbackEvent.objects.values_list("client_event_id", flat=True)) == [
        "evt-1",
        "evt-2",
    ]


def test_event_ids_are_per_listener(bob_api, alice_api, a_public_song):
    sent = event(a_public_song, client_event_id="evt-1")

    send(bob_api, sent)
    response = send(alice_api, sent)

    assert response.json()["recorded"] == 1
    assert FeedbackEvent.objects.count() == 2


def test_events_without_an_id_are_never_merged(bob_api, a_public_song):
    send(bob_api, event(a_public_song), event(a_public_song))
    send(bob_api, event(a_public_song))

    assert FeedbackEvent.objects.count() == 3


def test_an_id_repeated_within_a_batch_is_recorded_and_counted_once(bob_api, a_public_song):
    sent = event(a_public_song, client_event_id="evt-1")

    response = send(bob_api, sent, sent)

    assert FeedbackEvent.objects.count() == 1
    assert response.json() == {"received": 2, "recorded": 1}


# --- Refusals: a bad batch records nothing ---------------------------------------------------


@pytest.fixture
def a_good_event(a_public_song):
    return event(a_public_song, "impression", client_event_id="good-1")


def refused(client, error_of, *events, status: int = 400) -> dict:
    error = error_of(send(client, *events), status)
    assert not FeedbackEvent.objects.exists(), "a refused batch must record nothing"
    return error


def test_a_batch_of_101_events_is_refused(bob_api, a_public_song, error_of):
    error = refused(bob_api, error_of, *[event(a_public_song)] * 101)

    assert "events" in error["fields"]


def test_a_batch_of_100_events_is_fine(bob_api, a_public_song):
    assert send(bob_api, *[event(a_public_song)] * 100).json()["recorded"] == 100


@pytest.mark.parametrize("body", [{}, {"events": []}, {"events": "x"}, {"events": [1]}])
def test_a_batch_without_events_is_refused(bob_api, error_of, body):
    assert error_of(bob_api.post(FEEDBACK, body), 400)["code"] == "invalid"


@pytest.mark.parametrize("value", [None, -0.1, 1.5])
def test_progress_needs_a_fraction(bob_api, a_public_song, a_good_event, error_of, value):
    bad = event(a_public_song, "progress", **({} if value is None else {"value": value}))

    error = refused(bob_api, error_of, a_good_event, bad)

    assert "events[1]" in error["message"]


def test_a_vote_needs_its_choice_set(bob_api, a_public_song, a_good_event, error_of):
    error = refused(bob_api, error_of, a_good_event, event(a_public_song, "vote", slot=1))

    assert "choice_set" in error["message"]


def test_a_slot_needs_a_choice_set(bob_api, a_public_song, a_good_event, error_of):
    refused(bob_api, error_of, a_good_event, event(a_public_song, "impression", slot=1))


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "listen"}, "kind"),
        ({"target_type": "room"}, "target_type"),
        ({"position_s": -1}, "position_s"),
        ({"slot": 64}, "slot"),
        ({"client_event_id": "x" * 65}, "client_event_id"),
        ({"client_ts": "yesterday"}, "client_ts"),
    ],
)
def test_a_malformed_event_is_refused(
    bob_api, a_public_song, a_good_event, error_of, change, field
):
    error = refused(bob_api, error_of, a_good_event, {**event(a_public_song), **change})

    assert field in error["fields"]["events"]["1"]


def test_a_song_id_is_no_chunk(bob_api, a_public_song, a_good_event, error_of):
    chunk = {**event(a_public_song), "target_type": "chunk"}

    assert "no such chunk" in refused(bob_api, error_of, a_good_event, chunk)["message"]


@pytest.mark.parametrize("target_id", [str(uuid.uuid4()), "not-a-uuid", ""])
def test_feedback_on_an_unknown_song_is_refused(bob_api, a_good_event, error_of, target_id):
    refused(bob_api, error_of, a_good_event, event(target_id))


def test_feedback_on_a_song_one_cannot_see_is_refused_like_an_unknown_one(
    bob_api, a_private_song, an_unlisted_song, a_good_event, error_of
):
    private = refused(bob_api, error_of, a_good_event, event(a_private_song))
    unlisted = refused(bob_api, error_of, a_good_event, event(an_unlisted_song))
    unknown = refused(bob_api, error_of, a_good_event, event(str(uuid.uuid4())))

    assert private["code"] == unlisted["code"] == unknown["code"]
    assert "no such song" in private["message"]
    assert "no such song" in unlisted["message"]


def test_a_refused_thumb_changes_no_like_state(bob_api, a_public_song, a_private_song, error_of):
    refused(bob_api, error_of, event(a_public_song, "thumb_up"), event(a_private_song))

    assert Song.objects.get(pk=a_public_song.pk).like_count == 0
    assert not SongLike.objects.exists()


# --- Rate limits -----------------------------------------------------------------------------


def test_too_much_feedback_is_refused_with_retry_after(
    bob_api, a_public_song, frozen_rate_limit_clock, error_of
):
    for _ in range(20):  # the per-second allowance
        assert send(bob_api, event(a_public_song)).status_code == 201

    response = send(bob_api, event(a_public_song))

    assert error_of(response, 429)["code"] == "rate_limited"
    assert response["Retry-After"] == "1"
    assert FeedbackEvent.objects.count() == 20


def test_anonymous_feedback_is_limited_by_address_too(
    a_public_song, frozen_rate_limit_clock, error_of
):
    # A new session per request must not buy a new allowance.
    for _ in range(20):
        assert send(APIClient(), event(a_public_song)).status_code == 201

    error_of(send(APIClient(), event(a_public_song)), 429)


# --- The log is append-only ------------------------------------------------------------------


def test_a_recorded_event_cannot_be_changed(bob_api, a_public_song):
    send(bob_api, event(a_public_song, "progress", value=0.5))
    row = FeedbackEvent.objects.get()

    row.value = 1.0
    with pytest.raises(TypeError, match="append-only"):
        row.save()
    with pytest.raises(TypeError, match="append-only"):
        FeedbackEvent.objects.filter(pk=row.pk).update(value=1.0)

    assert FeedbackEvent.objects.get().value == 0.5
