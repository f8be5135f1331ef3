"""What moderators hide or remove is unreachable: by share link (page and API), in the feed
(page and API), through the song API, on profiles, and by download. Its owner still sees it,
marked; a removed song's audio is served to nobody. Hidden rooms leave the room list and only
admins may open or join them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from collab.protocol import CLOSE_MODERATED, CLOSE_NOT_FOUND
from tests.sockets import in_room
from webapp.moderation import services


@pytest.fixture
def a_hidden_song(a_public_song, mod):
    return services.song_hide(moderator=mod, song=a_public_song, reason="Reported as hateful.")


@pytest.fixture
def a_removed_song(an_unlisted_song, mod):
    return services.song_remove(moderator=mod, song=an_unlisted_song, reason="Copyright claim.")


def everywhere_a_stranger_looks(song) -> dict[str, str]:
    """Every path by which someone other than the owner reaches a song: the answer must not
    mention it (or must be a 404)."""
    return {
        "share page": reverse("song-share", args=[song.share_token]),
        "share API": reverse("api-shared-song", args=[song.share_token]),
        "song page": reverse("song-page", args=[song.pk]),
        "song API": reverse("api-song-detail", args=[song.pk]),
        "song API by token": reverse("api-song-detail", args=[song.pk])
        + f"?share_token={song.share_token}",
        "download": reverse("api-song-download", args=[song.pk])
        + f"?format=wav&share_token={song.share_token}",
    }


@pytest.mark.parametrize("who", ["anonymous", "bob"])
def test_a_hidden_song_is_not_found_by_anyone_but_its_owner(a_hidden_song, browser_of, bob, who):
    browser = browser_of(bob if who == "bob" else None)

    for where, url in everywhere_a_stranger_looks(a_hidden_song).items():
        assert browser.get(url).status_code == 404, where


@pytest.mark.parametrize("who", ["anonymous", "bob"])
def test_a_hidden_song_is_in_no_feed_profile_or_list(a_hidden_song, browser_of, bob, who):
    browser = browser_of(bob if who == "bob" else None)
    title = a_hidden_song.title.encode()

    for url in ("/", "/?sort=liked", reverse("profile", args=["alice"])):
        page = browser.get(url)
        assert page.status_code == 200 and title not in page.content, url
    for sort in ("newest", "liked"):
        feed = browser.get(reverse("api-feed"), {"sort": sort}, HTTP_ACCEPT="application/json")
        assert str(a_hidden_song.pk) not in feed.content.decode(), sort


def test_the_public_response_cache_forgets_a_song_as_it_is_hidden(a_public_song, browser_of, mod):
    anonymous = browser_of()
    detail = reverse("api-song-detail", args=[a_public_song.pk])
    assert anonymous.get(detail, HTTP_ACCEPT="application/json").status_code == 200
    assert str(a_public_song.pk) in anonymous.get(reverse("api-feed")).content.decode()

    services.song_hide(moderator=mod, song=a_public_song, reason="Reported.")

    assert anonymous.get(detail, HTTP_ACCEPT="application/json").status_code == 404
    assert str(a_public_song.pk) not in anonymous.get(reverse("api-feed")).content.decode()


def test_its_owner_sees_a_hidden_song_marked_and_can_still_play_it(
    a_hidden_song, browser_of, alice
):
    owner = browser_of(alice)

    page = owner.get(reverse("song-page", args=[a_hidden_song.pk]))
    assert page.status_code == 200
    assert b"Hidden by the moderators" in page.content
    assert b"Reported as hateful." in page.content
    assert b'id="song-audio"' in page.content  # the owner may still listen
    library = owner.get(reverse("library"))
    assert (
        a_hidden_song.title.encode() in library.content
        and b"Hidden by moderators" in library.content
    )
    profile = owner.get(reverse("profile", args=["alice"]))
    assert a_hidden_song.title.encode() in profile.content
    detail = owner.get(reverse("api-song-detail", args=[a_hidden_song.pk])).json()
    assert detail["moderation"] == "hidden"
    download = owner.get(reverse("api-song-download", args=[a_hidden_song.pk]) + "?format=wav")
    assert download.status_code == 200


def test_a_removed_songs_audio_is_served_to_nobody_its_owner_included(
    a_removed_song, browser_of, alice, admin
):
    for who in (alice, admin):
        browser = browser_of(who)
        for fmt in ("wav", "flac", "opus"):
            url = reverse("api-song-download", args=[a_removed_song.pk]) + f"?format={fmt}"
            assert browser.get(url).status_code == 404, (who, fmt)
    page = browser_of(alice).get(reverse("song-page", args=[a_removed_song.pk]))
    assert b"Removed by the moderators" in page.content and b"Copyright claim." in page.content
    assert b'id="song-audio"' not in page.content and b"song-config" not in page.content
    detail = browser_of(alice).get(reverse("api-song-detail", args=[a_removed_song.pk])).json()
    assert (detail["moderation"], detail["downloads"]) == ("removed", {})
    # Media files are never served by URL: there is no route to them.
    assert browser_of(alice).get(f"/media/{a_removed_song.audio.name}").status_code == 404


def test_unhiding_makes_a_song_reachable_again(a_hidden_song, browser_of, mod):
    services.song_unhide(moderator=mod, song=a_hidden_song, reason="Appeal upheld.")

    anonymous = browser_of()
    assert anonymous.get(reverse("song-share", args=[a_hidden_song.share_token])).status_code == 200
    assert a_hidden_song.title.encode() in anonymous.get("/").content


# --- Rooms ----------------------------------------------------------------------------------


def test_a_hidden_room_leaves_the_room_list_and_only_admins_open_it(
    a_public_room, browser_of, alice, bob, admin, mod
):
    services.room_hide(moderator=mod, room=a_public_room, reason="Hateful anchor prompt.")

    listing = browser_of(bob).get(reverse("room-list"))
    assert a_public_room.title.encode() not in listing.content
    page = reverse("room-page", args=[a_public_room.pk])
    for who in (None, bob, alice):  # its host included: moderators hid it from everyone
        assert browser_of(who).get(page).status_code == 404, who
    for who in (admin, mod):
        assert browser_of(who).get(page).status_code == 200, who


async def test_hiding_a_room_lets_its_listeners_go_but_admins_stay(
    sockets, a_public_room, alice, bob, mod
):
    from channels.db import database_sync_to_async

    guest, _ = await in_room(sockets, a_public_room, bob)
    host, _ = await in_room(sockets, a_public_room, alice)
    moderator, _ = await in_room(sockets, a_public_room, mod)

    await database_sync_to_async(services.room_hide)(
        moderator=mod, room=a_public_room, reason="Hateful anchor prompt."
    )

    for socket in (guest, host):
        frames = await socket.frames_until_closed()
        told = next(f for f in frames if f.get("type") == "moderated")
        assert (told["action"], told["reason"]) == ("hid", "Hateful anchor prompt.")
        assert frames[-1] == {"closed": CLOSE_MODERATED}
    assert (await moderator.frame_of("moderated"))["action"] == "hid"
    assert not any("closed" in f for f in await moderator.frames_for(0.3))
    # And nobody but an admin gets back in.
    _, connected, code = await sockets(f"/ws/rooms/{a_public_room.pk}/", bob)
    assert (connected, code) == (False, CLOSE_NOT_FOUND)


async def test_closing_a_room_ends_it_and_lets_everyone_go_saying_why(
    sockets, a_public_room, alice, bob, mod
):
    from channels.db import database_sync_to_async

    from collab.models import Room

    guest, _ = await in_room(sockets, a_public_room, bob)
    moderator, _ = await in_room(sockets, a_public_room, mod)

    await database_sync_to_async(services.room_close)(
        moderator=mod, room=a_public_room, reason="Raid in progress."
    )

    for socket in (guest, moderator):
        frames = await socket.frames_until_closed()
        assert [f["status"] for f in frames if f.get("type") == "state"] == ["ended"]
        told = next(f for f in frames if f.get("type") == "moderated")
        assert told["message"] == "The moderators closed this room: Raid in progress."
        assert frames[-1] == {"closed": CLOSE_MODERATED}
    room = await database_sync_to_async(Room.objects.get)(pk=a_public_room.pk)
    assert (room.status, room.moderation, room.moderation_reason) == (
        "ended",
        "visible",
        "Raid in progress.",
    )
