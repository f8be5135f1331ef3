"""Songs over the REST API: make one from a prompt, list, rename, share, download, delete, feed."""

from __future__ import annotations

import io

import pytest
import soundfile as sf
from django.core.files.storage import default_storage

from generation.interface import register_song_generator
from webapp.songs.models import Song
from webapp.songs.services import MAX_SEED

SONGS = "/api/v1/songs/"


def song_url(song) -> str:
    return f"{SONGS}{song.pk if isinstance(song, Song) else song}/"


def download(client, song, fmt: str, **params):
    """The download answer with its whole body read.

    Reading the stream to its end is what closes the file behind it, as a WSGI server would;
    closing the response by hand as well would close the database connection too.
    """
    response = client.get(f"{song_url(song)}download/", {"format": fmt, **params})
    if response.status_code == 200:
        response.body = b"".join(response.streaming_content)
    return response


def thumbs(client, song, kind: str):
    event = {"kind": kind, "target_type": "song", "target_id": str(song.pk)}
    response = client.post("/api/v1/feedback/", {"events": [event]})
    assert response.status_code == 201, response.content


# --- Making a song ---------------------------------------------------------------------------


def test_a_new_song_is_accepted_queued_and_then_generated(alice_api):
    response = alice_api.post(SONGS, {"prompt": "slow piano under rain", "duration_s": 10})

    assert response.status_code == 202
    accepted = response.json()
    # The answer describes the song as it was accepted; generation happens after commit.
    assert accepted["status"] == "queued"
    assert accepted["progress"] == 0.0
    assert accepted["downloads"] == {}

    song = alice_api.get(accepted["url"]).json()
    assert song["status"] == "ready"
    assert song["progress"] == 1.0
    assert set(song["downloads"]) == {"wav", "flac", "opus"}
    assert song["audio_duration_s"] == pytest.approx(10.0)


def test_a_new_song_gets_sensible_defaults(alice_api):
    prompt = "one two three four five six seven eight nine ten"
    song = alice_api.post(SONGS, {"prompt": prompt}).json()

    assert song["duration_s"] == 30.0
    assert song["guidance"] is None  # the model's recommended scale
    assert song["style_tags"] == []
    assert song["visibility"] == "private"
    assert song["title"] == "one two three four five six seven eight"
    assert 0 <= song["seed"] <= MAX_SEED
    assert song["owner"] == {"username": "alice"}


def test_a_new_song_honours_every_choice_made(alice_api):
    body = {
        "prompt": "  dusty   boom bap\n with  vinyl crackle ",
        "duration_s": 12.5,
        "seed": 42,
        "guidance": 7.5,
        "style_tags": ["Hip Hop", " hip   hop ", "Lo-Fi"],
        "title": "Crate digging",
        "visibility": "unlisted",
    }
    song_id = alice_api.post(SONGS, body).json()["id"]

    song = alice_api.get(song_url(song_id)).json()
    assert song["prompt"] == "dusty boom bap with vinyl crackle"
    assert song["duration_s"] == 12.5
    assert song["audio_duration_s"] == pytest.approx(12.5)
    assert song["seed"] == 42
    assert song["guidance"] == 7.5
    assert song["style_tags"] == ["hip hop", "lo-fi"]  # normalised, duplicates dropped
    assert song["title"] == "Crate digging"
    assert song["visibility"] == "unlisted"


def test_the_same_seed_makes_the_same_audio(make_song, alice):
    first = make_song(alice, seed=7)
    again = make_song(alice, seed=7)
    other = make_song(alice, seed=8)  # the placeholder picks another pitch for this seed

    assert again.peaks == first.peaks
    assert again.provenance == first.provenance
    assert other.provenance["base_hz"] != first.provenance["base_hz"]


def test_placeholder_songs_are_labelled_as_such(alice_api, a_public_song):
    song = alice_api.get(song_url(a_public_song)).json()

    assert song["is_placeholder"] is True
    assert song["model_version"] == "placeholder-tone-v1"
    listed = alice_api.get(SONGS).json()["results"][0]
    assert listed["is_placeholder"] is True
    assert listed["model_version"] == "placeholder-tone-v1"


class BrokenGenerator:
    model_version = "broken-for-tests"

    def generate_song(self, request, progress):
        raise RuntimeError("the engine fell over")


register_song_generator("broken-for-tests", BrokenGenerator)


def test_a_song_whose_generation_fails_says_so(alice_api, settings):
    settings.GENERATION_BACKEND = "broken-for-tests"

    song_id = alice_api.post(SONGS, {"prompt": "anything"}).json()["id"]

    song = alice_api.get(song_url(song_id)).json()
    assert song["status"] == "failed"
    assert song["error"] == "Generation failed: RuntimeError."
    assert song["downloads"] == {}


def test_making_songs_too_fast_is_refused_with_retry_after(alice_api, frozen_rate_limit_clock):
    for _ in range(10):  # the per-minute allowance
        assert alice_api.post(SONGS, {"prompt": "again", "duration_s": 10}).status_code == 202

    response = alice_api.post(SONGS, {"prompt": "one too many", "duration_s": 10})

    assert response.status_code == 429
    assert response.json()["error"]["code"] == "rate_limited"
    assert int(response["Retry-After"]) == 60  # the minute window ends 59.75 s later
    assert Song.objects.count() == 10


# --- Listing my songs ------------------------------------------------------------------------


def test_my_song_list_holds_only_my_songs_newest_first(alice_api, make_song, alice, bob):
    older = make_song(alice, title="Older")
    newer = make_song(alice, title="Newer", visibility="public")
    make_song(bob, title="Bob's", visibility="public")

    body = alice_api.get(SONGS).json()

    assert [s["id"] for s in body["results"]] == [str(newer.pk), str(older.pk)]


def test_my_song_list_filters_by_status_and_visibility(alice_api, make_song, alice):
    private = make_song(alice)
    public = make_song(alice, visibility="public")
    waiting = Song.objects.create(
        owner=alice, title="Waiting", prompt="p", duration_s=10, seed=1, visibility="public"
    )

    def ids(**params):
        return {s["id"] for s in alice_api.get(SONGS, params).json()["results"]}

    assert ids(status="ready") == {str(private.pk), str(public.pk)}
    assert ids(status="queued") == {str(waiting.pk)}
    assert ids(visibility="public") == {str(public.pk), str(waiting.pk)}
    assert ids(visibility="public", status="ready") == {str(public.pk)}
    assert ids(visibility="private") == {str(private.pk)}


def test_my_song_list_pages_with_a_cursor(alice_api, make_song, alice):
    made = [make_song(alice, title=f"Song {n}") for n in range(5)]

    seen, url = [], f"{SONGS}?page_size=2"
    pages = 0
    while url:
        page = alice_api.get(url).json()
        assert len(page["results"]) <= 2
        seen += [s["id"] for s in page["results"]]
        url = page["next"]
        pages += 1

    assert pages == 3
    assert seen == [str(song.pk) for song in reversed(made)]


# --- One song --------------------------------------------------------------------------------


def test_a_song_shows_everything_about_it_to_its_owner(alice_api, a_private_song):
    song = alice_api.get(song_url(a_private_song)).json()

    assert song["id"] == str(a_private_song.pk)
    assert song["title"] == "Private tune"
    assert song["prompt"] == "warm lo-fi beat with soft piano"
    assert song["sample_rate"] == 24_000
    assert len(song["peaks"]) == 800
    assert all(0.0 <= p <= 1.0 for p in song["peaks"])
    assert song["share_url"] == f"/s/{a_private_song.share_token}/"
    assert song["downloads"]["wav"] == f"{song_url(a_private_song)}download/?format=wav"


def test_only_editors_see_the_share_link(bob_api, a_public_song):
    song = bob_api.get(song_url(a_public_song)).json()

    assert song["share_url"] is None
    assert a_public_song.share_token not in str(song)


def test_the_owner_can_rename_a_song(alice_api, a_private_song):
    response = alice_api.patch(song_url(a_private_song), {"title": "  Rainy   day  "})

    assert response.status_code == 200
    assert response.json()["title"] == "Rainy day"
    a_private_song.refresh_from_db()
    assert a_private_song.title == "Rainy day"
    assert a_private_song.visibility == "private"


def test_the_owner_can_change_who_sees_a_song(alice_api, bob_api, a_private_song):
    assert bob_api.get(song_url(a_private_song)).status_code == 404

    response = alice_api.patch(song_url(a_private_song), {"visibility": "public"})

    assert response.status_code == 200
    assert response.json()["visibility"] == "public"
    assert response.json()["title"] == "Private tune"
    assert bob_api.get(song_url(a_private_song)).status_code == 200


def test_deleting_a_song_removes_it_and_its_files(alice_api, a_public_song):
    assert download(alice_api, a_public_song, "wav").status_code == 200  # a transcode to remove
    folder = f"songs/{a_public_song.pk}"
    assert sorted(default_storage.listdir(folder)[1]) == ["download.wav", "master.flac"]

    response = alice_api.delete(song_url(a_public_song))

    assert response.status_code == 204
    assert alice_api.get(song_url(a_public_song)).status_code == 404
    assert not Song.objects.filter(pk=a_public_song.pk).exists()
    assert default_storage.listdir(folder)[1] == []


# --- Downloads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type", "sf_format"),
    [("wav", "audio/wav", "WAV"), ("flac", "audio/flac", "FLAC"), ("opus", "audio/ogg", "OGG")],
)
def test_a_song_downloads_as_playable_audio(
    alice_api, a_private_song, fmt, content_type, sf_format
):
    response = download(alice_api, a_private_song, fmt)

    assert response.status_code == 200
    assert response["Content-Type"] == content_type
    assert response["Content-Disposition"] == f'attachment; filename="private-tune.{fmt}"'
    info = sf.info(io.BytesIO(response.body))
    assert info.format == sf_format
    assert info.channels == 1
    assert info.duration == pytest.approx(a_private_song.duration_s, abs=0.05)
    pcm, _ = sf.read(io.BytesIO(response.body), dtype="float32")
    assert 0.05 < abs(pcm).max() <= 1.0  # a real tone, not silence


def test_flac_is_the_default_download(alice_api, a_private_song):
    response = download(alice_api, a_private_song, "flac")
    default = alice_api.get(f"{song_url(a_private_song)}download/")
    body = b"".join(default.streaming_content)

    assert default["Content-Type"] == "audio/flac"
    assert body == response.body


def test_a_download_can_be_played_inline(alice_api, a_private_song):
    response = download(alice_api, a_private_song, "opus", inline="1")

    assert response["Content-Disposition"].startswith("inline")


def test_a_second_download_serves_the_stored_transcode(alice_api, a_private_song):
    first = download(alice_api, a_private_song, "opus")
    second = download(alice_api, a_private_song, "opus")

    assert first.body == second.body
    # One transcode, kept beside the master; a second one would be saved under a new name.
    files = sorted(default_storage.listdir(f"songs/{a_private_song.pk}")[1])
    assert files == ["download.opus", "master.flac"]


# --- Share links -----------------------------------------------------------------------------


def test_a_share_link_opens_an_unlisted_song_for_anyone(anon, an_unlisted_song):
    response = anon.get(f"/api/v1/shared/{an_unlisted_song.share_token}/")

    assert response.status_code == 200
    song = response.json()
    assert song["id"] == str(an_unlisted_song.pk)
    assert song["share_url"] is None
    # The download links carry the token, so a listener of the link can play the song.
    wav = anon.get(song["downloads"]["wav"])
    assert wav.status_code == 200
    assert wav["Content-Type"] == "audio/wav"
    assert sf.info(io.BytesIO(b"".join(wav.streaming_content))).format == "WAV"


def test_rotating_the_share_token_retires_the_old_link(alice_api, anon, an_unlisted_song):
    old = an_unlisted_song.share_token

    response = alice_api.post(f"{song_url(an_unlisted_song)}share-token/")

    assert response.status_code == 200
    new = response.json()["share_url"].split("/")[2]
    assert new != old
    assert anon.get(f"/api/v1/shared/{old}/").status_code == 404
    assert anon.get(song_url(an_unlisted_song), {"share_token": old}).status_code == 404
    assert anon.get(f"/api/v1/shared/{new}/").status_code == 200
    assert anon.get(song_url(an_unlisted_song), {"share_token": new}).status_code == 200


# --- The public feed -------------------------------------------------------------------------


def test_the_feed_shows_public_ready_songs_newest_first(anon, make_song, alice, bob):
    first = make_song(alice, visibility="public", title="First")
    make_song(alice, visibility="unlisted")
    make_song(alice, visibility="private")
    Song.objects.create(
        owner=alice, title="Not ready", prompt="p", duration_s=10, seed=1, visibility="public"
    )
    second = make_song(bob, visibility="public", title="Second")

    body = anon.get("/api/v1/feed/").json()

    assert [s["id"] for s in body["results"]] == [str(second.pk), str(first.pk)]


def test_the_feed_can_show_the_most_liked_first(anon, client_for, make_song, alice, bob, admin):
    loved = make_song(alice, visibility="public", title="Loved")
    liked = make_song(alice, visibility="public", title="Liked")
    ignored = make_song(alice, visibility="public", title="Ignored")
    disliked = make_song(alice, visibility="public", title="Disliked")
    for fan in (alice, bob, admin):
        thumbs(client_for(fan), loved, "thumb_up")
    thumbs(client_for(bob), liked, "thumb_up")
    thumbs(client_for(bob), disliked, "thumb_up")
    thumbs(client_for(bob), disliked, "thumb_down")  # changed their mind: no longer counts

    body = anon.get("/api/v1/feed/", {"sort": "liked"}).json()

    assert [(s["title"], s["like_count"]) for s in body["results"]] == [
        ("Loved", 3),
        ("Liked", 1),
        ("Disliked", 0),  # ties: newest first
        ("Ignored", 0),
    ]
    newest = anon.get("/api/v1/feed/").json()["results"]
    assert [s["id"] for s in newest] == [str(s.pk) for s in (disliked, ignored, liked, loved)]


def test_the_feed_pages_in_like_order(anon, client_for, make_song, alice, bob):
    songs = [make_song(alice, visibility="public", title=f"Song {n}") for n in range(5)]
    for fan in (alice, bob):
        thumbs(client_for(fan), songs[1], "thumb_up")
    thumbs(client_for(bob), songs[3], "thumb_up")

    seen, url = [], "/api/v1/feed/?sort=liked&page_size=2"
    while url:
        page = anon.get(url).json()
        seen += [s["title"] for s in page["results"]]
        url = page["next"]

    assert seen == ["Song 1", "Song 3", "Song 4", "Song 2", "Song 0"]


# --- Controls, prompt expansion and the real model ---------------------------------------------


def test_controls_are_validated_and_kept(alice_api):
    body = {
        "prompt": "night drive",
        "duration_s": 10,
        "expand_prompt": False,
        "controls": {"bpm": 96, "key": "F#", "mode": "minor", "instruments_in": ["warm pad"]},
    }
    response = alice_api.post(SONGS, body, format="json")
    assert response.status_code == 202, response.content
    song = Song.objects.get(pk=response.json()["id"])
    assert song.controls["bpm"] == 96 and song.controls["instruments_in"] == ["warm pad"]
    assert song.expand_prompt is False
    detail = alice_api.get(song_url(song)).json()
    assert detail["controls"]["key"] == "F#" and detail["expand_prompt"] is False


@pytest.mark.parametrize(
    "controls, message",
    [
        ({"bpm": 400}, "bpm"),
        ({"bpm": "fast"}, "bpm must be a number"),
        ({"tempo": 120}, "Unknown control 'tempo'"),
        ({"mode": "dorian"}, "mode"),
        ({"key": "H"}, "key"),
        ({"instruments_in": "piano"}, "list of instrument names"),
        ({"energy": 2}, "energy"),
    ],
)
def test_bad_controls_are_refused_with_a_clear_error(alice_api, controls, message):
    before = Song.objects.count()
    response = alice_api.post(
        SONGS, {"prompt": "x", "duration_s": 10, "controls": controls}, format="json"
    )
    assert response.status_code == 400
    assert message in str(response.json())
    assert Song.objects.count() == before


def test_the_shipped_model_makes_a_song_end_to_end(alice_api, settings):
    """The real backend through the whole pipeline: the shipped LM, codec and MiniLM."""
    settings.GENERATION_BACKEND = "chorus"
    body = {"prompt": "techno", "duration_s": 10, "seed": 4, "controls": {"bpm": 126}}
    response = alice_api.post(SONGS, body, format="json")
    assert response.status_code == 202, response.content
    song = alice_api.get(response.json()["url"]).json()
    assert song["status"] == "ready", song["error"]
    assert song["is_placeholder"] is False
    assert song["model_version"].startswith("lm-")
    assert song["audio_duration_s"] == pytest.approx(10.0)
    assert song["expansion"]["style"]  # the prompt was expanded (bpm kept as asked)
    assert song["controls"]["bpm"] == 126
    assert max(song["peaks"]) > 0.01  # not silence
