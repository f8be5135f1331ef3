"""Room pages: the list, starting a room, the room page and the overlay, with the rooms'
visibility rule."""

from __future__ import annotations

import json
import re

import pytest

from collab import services as room_services
from collab.models import Room

pytestmark = pytest.mark.django_db


def config_of(response) -> dict:
    match = re.search(
        r'<script id="room-config" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    assert match, "no room-config in the page"
    return json.loads(match.group(1))


def test_the_rooms_list_shows_live_public_rooms_only(visitor, a_public_room, an_unlisted_room):
    page = visitor.get("/rooms/").content.decode()
    assert a_public_room.title in page
    assert an_unlisted_room.title not in page


def test_an_ended_room_leaves_the_list(visitor, a_public_room, alice):
    room_services.room_end(room=a_public_room, user=alice)
    assert a_public_room.title not in visitor.get("/rooms/").content.decode()


def test_starting_a_room_needs_an_account(visitor):
    response = visitor.get("/rooms/new/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_a_started_room_opens_with_its_host_controls(alice_browser, alice):
    response = alice_browser.post(
        "/rooms/new/",
        {
            "title": "Late show",
            "anchor_prompt": "dub techno",
            "visibility": "unlisted",
            "mode": "audience",
            "round_length_s": 30,
            "who_may_propose": "everyone",
        },
    )
    room = Room.objects.get(title="Late show")
    assert room.host == alice and room.mode == "audience" and room.round_length_s == 30
    # An unlisted room's address carries its share token, so the host can pass it on as it is.
    assert response["Location"] == f"/rooms/{room.pk}/?share={room.share_token}"
    page = alice_browser.get(response["Location"])
    assert 'id="host-panel"' in page.content.decode()
    assert config_of(page) == {
        "room_id": str(room.pk),
        "share_token": room.share_token,
        "signed_in": True,
    }


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("round_length_s", 2, "greater than or equal to 5"),
        ("anchor_prompt", "", "This field is required."),
        ("visibility", "everyone", "Select a valid choice."),
    ],
)
def test_a_bad_room_form_is_refused_with_a_message(alice_browser, field, value, message):
    data = {
        "title": "Late show",
        "anchor_prompt": "dub techno",
        "visibility": "public",
        "mode": "friends",
        "round_length_s": 20,
        "who_may_propose": "everyone",
        field: value,
    }
    response = alice_browser.post("/rooms/new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Room.objects.exists()


def test_a_visitor_gets_a_session_to_take_part_and_no_host_controls(visitor, a_public_room):
    response = visitor.get(f"/rooms/{a_public_room.pk}/")
    assert response.status_code == 200
    assert "sessionid" in response.cookies  # the socket lets them propose and vote under it
    page = response.content.decode()
    assert 'id="host-panel"' not in page
    assert "dist/room.js" in page
    assert config_of(response)["signed_in"] is False


def test_an_unlisted_room_needs_its_share_token(visitor, an_unlisted_room):
    assert visitor.get(f"/rooms/{an_unlisted_room.pk}/").status_code == 404
    assert visitor.get(f"/rooms/{an_unlisted_room.pk}/?share=wrong").status_code == 404
    ok = visitor.get(f"/rooms/{an_unlisted_room.pk}/?share={an_unlisted_room.share_token}")
    assert ok.status_code == 200
    assert config_of(ok)["share_token"] == an_unlisted_room.share_token


def test_a_private_room_is_its_hosts_alone(bob_browser, alice_browser, a_private_room):
    assert bob_browser.get(f"/rooms/{a_private_room.pk}/").status_code == 404
    assert bob_browser.get(f"/rooms/{a_private_room.pk}/overlay/").status_code == 404
    assert alice_browser.get(f"/rooms/{a_private_room.pk}/").status_code == 200


def test_the_overlay_can_be_embedded_and_speaks_to_the_same_room(visitor, a_public_room):
    response = visitor.get(f"/rooms/{a_public_room.pk}/overlay/")
    assert response.status_code == 200
    assert "X-Frame-Options" not in response  # OBS and stream tools frame it
    assert "dist/overlay.js" in response.content.decode()
    assert config_of(response)["room_id"] == str(a_public_room.pk)


def test_a_room_that_does_not_exist_is_a_404(visitor):
    assert visitor.get("/rooms/00000000-0000-0000-0000-000000000000/").status_code == 404
