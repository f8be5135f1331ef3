"""Song pages: simple and expert create, the library, the player's data, the share page."""

from __future__ import annotations

import json
import re

import pytest

from webapp.songs import services as song_services
from webapp.songs.models import Song

pytestmark = pytest.mark.django_db


def player_config(response) -> dict | None:
    match = re.search(
        r'<script id="song-config" type="application/json">(.*?)</script>',
        response.content.decode(),
    )
    return json.loads(match.group(1)) if match else None


def test_simple_mode_needs_only_a_prompt(alice_browser, alice):
    response = alice_browser.post(
        "/songs/new/", {"prompt": "sunny ukulele", "duration_s": 30, "visibility": "private"}
    )
    song = Song.objects.get(owner=alice)
    assert response["Location"] == f"/songs/{song.pk}/"
    assert song.expand_prompt is False  # an unticked box: the expert form was sent as it was
    assert not any(song.controls.values())  # every control left to the model


def test_expert_mode_sets_controls_seed_guidance_and_expansion(alice_browser, alice):
    alice_browser.post(
        "/songs/new/",
        {
            "prompt": "dark techno",
            "duration_s": 12,
            "seed": 7,
            "guidance": 4.5,
            "style_tags": "techno, dark",
            "expand_prompt": "on",
            "bpm": 128,
            "key": "F#",
            "mode": "minor",
            "energy": 0.8,
            "visibility": "unlisted",
        },
    )
    song = Song.objects.get(owner=alice)
    assert (song.seed, song.guidance, song.duration_s) == (7, 4.5, 12)
    assert song.style_tags == ["techno", "dark"]
    assert song.expand_prompt is True
    assert song.controls["bpm"] == 128 and song.controls["key"] == "F#"
    assert song.controls["mode"] == "minor" and song.controls["energy"] == 0.8
    assert song.controls["brightness"] is None


def test_a_bad_expert_value_opens_the_expert_options_with_the_message(alice_browser):
    response = alice_browser.post(
        "/songs/new/", {"prompt": "x", "duration_s": 30, "visibility": "private", "bpm": 500}
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "less than or equal to 220" in page
    assert '<details class="expert" open>' in page
    assert not Song.objects.exists()


def test_the_create_page_starts_simple(alice_browser):
    page = alice_browser.get("/songs/new/").content.decode()
    assert '<details class="expert">' in page  # closed
    assert "Describe the song" in page


def test_a_ready_song_page_carries_the_players_data(alice_browser, alice):
    song = song_services.song_create(owner=alice, prompt="lo-fi rain", duration_s=10)
    song.refresh_from_db()
    assert song.status == Song.Status.READY  # the placeholder renders inline in tests
    response = alice_browser.get(f"/songs/{song.pk}/")
    config = player_config(response)
    assert config["song_id"] == str(song.pk)
    assert len(config["peaks"]) == len(song.peaks) > 0
    assert config["audio_url"] == f"/api/v1/songs/{song.pk}/download/?format=opus&inline=1"
    assert 'role="slider"' in response.content.decode()


def test_a_song_still_generating_shows_a_progress_bar(alice_browser, alice):
    song = Song.objects.create(owner=alice, title="Soon", prompt="soon", duration_s=10, seed=1)
    response = alice_browser.get(f"/songs/{song.pk}/")
    assert "<progress" in response.content.decode()
    assert player_config(response) is None


def test_the_share_page_plays_for_a_visitor_through_the_token(visitor, alice):
    song = song_services.song_create(
        owner=alice, prompt="lo-fi rain", duration_s=10, visibility="unlisted"
    )
    song.refresh_from_db()
    response = visitor.get(f"/s/{song.share_token}/")
    config = player_config(response)
    assert config["share_token"] == song.share_token
    assert config["audio_url"].endswith(f"&share_token={song.share_token}")
    assert visitor.get(config["audio_url"]).status_code == 200


def test_the_library_lists_your_songs_of_every_status(alice_browser, alice, bob):
    Song.objects.create(owner=alice, title="Queued one", prompt="q", duration_s=10, seed=1)
    Song.objects.create(owner=bob, title="Not mine", prompt="q", duration_s=10, seed=1)
    page = alice_browser.get("/library/").content.decode()
    assert "Queued one" in page and "Not mine" not in page
    filtered = alice_browser.get("/library/?status=ready").content.decode()
    assert "Queued one" not in filtered


def test_the_library_needs_an_account(visitor):
    assert visitor.get("/library/").status_code == 302
