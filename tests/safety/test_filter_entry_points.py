"""The prompt filter at every door free text comes through: the song API (prompt, title, style
tags, rename), the song-create page, room creation (page and service) and proposals over the
room websocket. Each refuses with the filter's sentence in that door's own error shape, creates
nothing, and (on the websocket) leaves the connection open."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from collab import protocol
from collab import services as room_services
from collab.models import Proposal, Room
from tests.collab.test_protocol import joined, sockets  # noqa: F401  (a fixture)
from webapp.errors import ServiceError
from webapp.safety.checks import PROMPT_REFUSED
from webapp.songs.models import Song

ARTIST_MESSAGE = (
    "We don't imitate real artists (matched: Taylor Swift). "
    "Describe the sound instead: tempo, instruments, mood."
)


# --- Songs: the API ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "body"),
    [
        ("prompt", {"prompt": "in the style of Taylor Swift"}),
        ("title", {"prompt": "warm pads", "title": "T4ylor Sw1ft tribute"}),
        ("style_tags", {"prompt": "warm pads", "style_tags": ["pop", "taylor", "swift"]}),
    ],
)
def test_the_song_api_refuses_an_artist_in_any_text_field(error_of, alice_api, alice, field, body):
    response = alice_api.post("/api/v1/songs/", body, format="json")

    error = error_of(response, 400)
    assert error["code"] == PROMPT_REFUSED
    assert error["message"] == ARTIST_MESSAGE
    assert error["fields"] == {field: [ARTIST_MESSAGE]}
    assert not Song.objects.filter(owner=alice).exists()


def test_the_song_api_takes_a_genre_named_after_a_city(alice_api):
    response = alice_api.post(
        "/api/v1/songs/", {"prompt": "Detroit techno, like Chicago house"}, format="json"
    )

    assert response.status_code == 202, response.content


def test_renaming_a_song_to_a_slur_is_refused(error_of, alice_api, make_song, alice):
    song = make_song(alice, title="Fine title")

    response = alice_api.patch(f"/api/v1/songs/{song.pk}/", {"title": "tr4nny"}, format="json")

    error = error_of(response, 400)
    assert (error["code"], list(error["fields"])) == (PROMPT_REFUSED, ["title"])
    song.refresh_from_db()
    assert song.title == "Fine title"


# --- Songs: the create page --------------------------------------------------------------------


def test_the_song_page_shows_the_refusal_on_the_prompt_field(alice_browser, alice):
    response = alice_browser.post(
        "/songs/new/",
        {"prompt": "sounds like taylorswift", "duration_s": 30, "visibility": "private"},
    )

    assert response.status_code == 400
    form = response.context["form"]
    assert form.errors["prompt"] == [ARTIST_MESSAGE]
    assert "matched: Taylor Swift" in response.content.decode()
    assert not Song.objects.filter(owner=alice).exists()


def test_the_song_page_refuses_too_much_swearing_in_the_tags(alice_browser, alice):
    response = alice_browser.post(
        "/songs/new/",
        {
            "prompt": "drums",
            "duration_s": 30,
            "visibility": "private",
            "style_tags": "fucking, loud, shit",
        },
    )

    assert response.status_code == 400
    assert "Too much swearing" in response.context["form"].errors["style_tags"][0]
    # The field is in expert mode, which opens by itself to show the error.
    assert response.context["expert"] is True


# --- Rooms -------------------------------------------------------------------------------------


def test_the_room_create_page_refuses_a_title_naming_an_artist(alice_browser, alice):
    response = alice_browser.post(
        "/rooms/new/",
        {
            "title": "Taylor Swift night",
            "anchor_prompt": "warm pads",
            "visibility": "unlisted",
            "mode": "friends",
            "round_length_s": 30,
            "who_may_propose": Room.Proposers.EVERYONE,
        },
    )

    assert response.status_code == 400
    assert response.context["form"].errors["title"] == [ARTIST_MESSAGE]
    assert not Room.objects.filter(host=alice).exists()


@pytest.mark.parametrize(
    ("field", "params"),
    [
        ("title", {"title": "f*ck this sh*t", "anchor_prompt": "warm pads"}),
        ("anchor_prompt", {"title": "Friday", "anchor_prompt": "like Queen, stadium rock"}),
    ],
)
def test_room_create_refuses_what_an_overlay_would_show(db, alice, field, params):
    with pytest.raises(ServiceError) as refused:
        room_services.room_create(host=alice, **params)

    assert (refused.value.code, refused.value.field) == (PROMPT_REFUSED, field)
    assert not Room.objects.exists()


async def test_a_refused_proposal_is_an_error_frame_and_the_room_goes_on(sockets, alice, bob):  # noqa: F811
    room = await database_sync_to_async(room_services.room_create)(
        host=alice, title="Friday", anchor_prompt="warm pads", visibility="public",
        now=timezone.now(),
    )  # fmt: skip
    host, _ = await joined(sockets, room, alice)
    guest, _ = await joined(sockets, room, bob)

    await guest.send_json({"type": "propose", "id": "p1", "text": "in the style of Taylor Swift"})

    error = await guest.frame_of("error")
    assert (error["id"], error["code"], error["field"]) == ("p1", protocol.PROMPT_REFUSED, "text")
    assert error["message"] == ARTIST_MESSAGE
    assert not await database_sync_to_async(Proposal.objects.filter(room=room).exists)()
    # The same socket goes on: its next proposal lands, and the host hears it.
    await guest.send_json({"type": "propose", "id": "p2", "text": "Detroit techno drums"})
    ack = await guest.frame_of("ack")
    assert (ack["id"], ack["proposal"]["text"]) == ("p2", "Detroit techno drums")
    assert (await host.frame_of("proposal"))["proposal"]["text"] == "Detroit techno drums"


def test_the_protocol_names_the_code_the_filter_answers_with():
    assert protocol.PROMPT_REFUSED == PROMPT_REFUSED
