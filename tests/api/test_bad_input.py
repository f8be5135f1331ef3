"""Bad input gets a clear 4xx in the one error shape {"error": {"code", "message", ...}}, never 500.

Every request here is something a client (or a person with curl) can send; none of it may reach
the 500 path, and none of it may leave anything behind.
"""

from __future__ import annotations

import base64
import json
import uuid
from urllib.parse import urlencode

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from webapp.songs.models import Song

SONGS = "/api/v1/songs/"
GOOD_SONG = {"prompt": "warm lo-fi beat", "duration_s": 10}
MISSING = object()  # leave the field out of the body


@pytest.fixture(autouse=True)
def nothing_is_made(db):
    """No refused request may leave a song behind."""
    yield
    assert not Song.objects.filter(title="left behind").exists()


# --- Making a song: each field's limits -------------------------------------------------------

REFUSED_SONGS = [
    pytest.param({"prompt": MISSING}, "prompt", id="no prompt"),
    pytest.param({"prompt": None}, "prompt", id="null prompt"),
    pytest.param({"prompt": ""}, "prompt", id="empty prompt"),
    pytest.param({"prompt": "   \n "}, "prompt", id="blank prompt"),
    pytest.param({"prompt": ["a", "list"]}, "prompt", id="list prompt"),
    pytest.param({"prompt": {"an": "object"}}, "prompt", id="object prompt"),
    pytest.param({"prompt": "x" * 1001}, "prompt", id="prompt over 1000 chars"),
    pytest.param({"duration_s": "thirty"}, "duration_s", id="string duration"),
    pytest.param({"duration_s": 9.9}, "duration_s", id="duration 9.9"),
    pytest.param({"duration_s": 600.1}, "duration_s", id="duration 600.1"),
    pytest.param({"duration_s": None}, "duration_s", id="null duration"),
    pytest.param({"seed": -1}, "seed", id="seed -1"),
    pytest.param({"seed": 2**31}, "seed", id="seed 2**31"),
    pytest.param({"seed": 1.5}, "seed", id="fractional seed"),
    pytest.param({"seed": "abc"}, "seed", id="string seed"),
    pytest.param({"guidance": 11}, "guidance", id="guidance 11"),
    pytest.param({"guidance": -0.1}, "guidance", id="guidance below 0"),
    pytest.param({"style_tags": [f"tag{n}" for n in range(11)]}, "style_tags", id="11 style tags"),
    pytest.param({"style_tags": {"genre": "jazz"}}, "style_tags", id="object style tags"),
    pytest.param({"style_tags": "jazz"}, "style_tags", id="string style tags"),
    pytest.param({"style_tags": ["x" * 33]}, "style_tags", id="style tag over 32 chars"),
    pytest.param({"style_tags": [["nested"]]}, "style_tags", id="nested style tags"),
    pytest.param({"title": "x" * 201}, "title", id="title over 200 chars"),
    pytest.param({"visibility": "secret"}, "visibility", id="unknown visibility"),
]


@pytest.mark.parametrize(("change", "field"), REFUSED_SONGS)
def test_a_song_with_a_bad_field_is_refused(alice_api, error_of, change, field):
    body = {**GOOD_SONG, "title": "left behind", **change}
    body = {key: value for key, value in body.items() if value is not MISSING}

    error = error_of(alice_api.post(SONGS, body), 400)

    assert error["code"] == "invalid"
    assert field in error["fields"], error
    assert field in error["message"]


def test_a_song_without_any_body_is_refused(alice_api, error_of):
    error = error_of(alice_api.post(SONGS), 400)

    assert "prompt" in error["fields"]


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_numbers_that_are_not_finite_are_refused(alice_api, error_of, value):
    body = f'{{"prompt": "x", "title": "left behind", "duration_s": {value}}}'

    error = error_of(alice_api.post(SONGS, body, content_type="application/json"), 400)

    assert error["code"] == "parse_error"


def test_the_limits_themselves_are_allowed(alice_api):
    body = {
        "prompt": "x" * 1000,
        "duration_s": 10,
        "seed": 2**31 - 1,
        "guidance": 10,
        "style_tags": [f"tag{n}" for n in range(10)],
        "title": "t" * 200,
    }

    assert alice_api.post(SONGS, body).status_code == 202
    assert alice_api.post(SONGS, {**body, "seed": 0, "guidance": 0}).status_code == 202


# --- Malformed requests ----------------------------------------------------------------------


def test_a_malformed_json_body_is_refused(alice_api, error_of):
    response = alice_api.post(SONGS, '{"prompt": "x",', content_type="application/json")

    assert error_of(response, 400)["code"] == "parse_error"


@pytest.mark.parametrize("body", ["[1, 2]", '"just a string"', "null", "42"])
def test_a_json_body_that_is_not_an_object_is_refused(alice_api, error_of, body):
    response = alice_api.post(SONGS, body, content_type="application/json")

    assert error_of(response, 400)["code"] == "invalid"


def test_a_body_that_is_not_json_is_refused(alice_api, error_of):
    response = alice_api.post(SONGS, "prompt=x", content_type="text/plain")

    assert error_of(response, 415)["code"] == "unsupported_media_type"


def test_json_in_another_encoding_than_utf8_is_refused(alice_api, error_of):
    body = json.dumps({"prompt": "caf\u00e9 music", "title": "left behind"}).encode("utf-16")

    response = alice_api.post(SONGS, body, content_type="application/json")

    assert error_of(response, 400)["code"] == "parse_error"


def test_a_huge_body_is_refused_in_the_error_shape(alice_api, error_of):
    body = json.dumps({"prompt": "x" * (6 * 1024 * 1024), "title": "left behind"})

    response = alice_api.post(SONGS, body, content_type="application/json")

    error_of(response, 413)


def test_a_huge_body_is_never_a_server_error(alice_api):
    body = json.dumps({"prompt": "x" * (6 * 1024 * 1024), "title": "left behind"})

    response = alice_api.post(SONGS, body, content_type="application/json")

    assert 400 <= response.status_code < 500


def test_a_method_an_endpoint_does_not_have_is_refused(alice_api, a_private_song, error_of):
    response = alice_api.put(f"{SONGS}{a_private_song.pk}/", {"title": "x"})

    assert error_of(response, 405)["code"] == "method_not_allowed"


# --- Unknown things --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        f"{SONGS}{uuid.uuid4()}/",
        f"{SONGS}{uuid.uuid4()}/download/",
        "/api/v1/shared/not-a-token/",
        f"{SONGS}not-a-uuid/",
        f"{SONGS}not-a-uuid/download/",
        f"{SONGS}12345/",
        "/api/v1/no-such-endpoint/",
        "/api/v1/songs",  # no trailing slash: still JSON, never an HTML redirect or page
    ],
)
def test_unknown_things_are_a_json_404(alice_api, error_of, path):
    assert error_of(alice_api.get(path), 404)["code"] == "not_found"


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_changing_an_unknown_song_is_a_json_404(alice_api, error_of, method):
    response = getattr(alice_api, method)(f"{SONGS}{uuid.uuid4()}/", {"title": "x"})

    assert error_of(response, 404)["code"] == "not_found"


def test_rotating_the_token_of_an_unknown_song_is_a_json_404(alice_api, error_of):
    response = alice_api.post(f"{SONGS}{uuid.uuid4()}/share-token/")

    assert error_of(response, 404)["code"] == "not_found"


def test_a_bad_cursor_is_a_json_404(alice_api, error_of):
    assert error_of(alice_api.get(SONGS, {"cursor": "not-a-cursor"}), 404)["code"] == "not_found"


def test_an_overlong_share_token_is_simply_not_found(anon, an_unlisted_song, error_of):
    response = anon.get(f"{SONGS}{an_unlisted_song.pk}/", {"share_token": "x" * 10_000})

    assert error_of(response, 404)["code"] == "not_found"


# --- Changing a song -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "   "}, "title"),
        ({"title": "x" * 201}, "title"),
        ({"title": ["a"]}, "title"),
        ({"visibility": "secret"}, "visibility"),
        ({"visibility": None}, "visibility"),
    ],
)
def test_a_bad_change_to_a_song_is_refused_and_changes_nothing(
    alice_api, a_private_song, error_of, change, field
):
    response = alice_api.patch(f"{SONGS}{a_private_song.pk}/", change)

    assert field in error_of(response, 400)["fields"]
    a_private_song.refresh_from_db()
    assert (a_private_song.title, a_private_song.visibility) == ("Private tune", "private")


# --- Downloads -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["mp3", "", "WAV", "../master.flac"])
def test_an_unknown_download_format_is_refused(alice_api, a_private_song, error_of, fmt):
    response = alice_api.get(f"{SONGS}{a_private_song.pk}/download/", {"format": fmt})

    error = error_of(response, 400)
    assert "format" in error["fields"]
    assert "wav, flac, opus" in error["message"]


@pytest.mark.parametrize("status", ["queued", "generating", "failed"])
def test_a_song_that_is_not_ready_cannot_be_downloaded(alice_api, alice, error_of, status):
    song = Song.objects.create(
        owner=alice, title="Not yet", prompt="p", duration_s=10, seed=1, status=status
    )

    response = alice_api.get(f"{SONGS}{song.pk}/download/", {"format": "wav"})

    assert error_of(response, 400)["code"] == "not_ready"


@pytest.mark.parametrize(
    "path", [f"{SONGS}not-a-uuid/share-token/", "/api/v1/no-such-endpoint/", SONGS[:-1]]
)
def test_writing_to_an_unknown_api_path_is_a_json_404(client_for, alice, error_of, path):
    # The test client skips CSRF checks unless asked; real clients do not get that favour.
    client = client_for(alice)
    client.handler.enforce_csrf_checks = True

    assert error_of(client.post(path, {"title": "x"}), 404)["code"] == "not_found"


# --- Cursors and NUL bytes: input no form checks ---------------------------------------------


def a_cursor(**fields: str) -> str:
    """A cursor as DRF encodes one (base64 of a query string), with chosen fields."""
    return base64.b64encode(urlencode(fields).encode()).decode()


@pytest.mark.parametrize(
    "sort",
    [
        "newest",
        "liked",
    ],
)
def test_a_forged_feed_cursor_is_refused_not_a_crash(a_public_song, error_of, sort):
    client = APIClient(raise_request_exception=False)

    response = client.get("/api/v1/feed/", {"sort": sort, "cursor": a_cursor(p="not-a-number")})

    assert error_of(response, 400)["code"] == "invalid"


def test_a_forged_list_cursor_is_refused_not_a_crash(alice_api, error_of):
    response = alice_api.get(SONGS, {"cursor": a_cursor(p="not-a-date")})

    assert error_of(response, 400)["code"] == "invalid"


ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/api/v1/shared/%00/", {}, 404),
        ("/s/%00/", {}, 404),
        ("/u/%00/", {}, 404),
        ("/api/v1/me/", {"HTTP_AUTHORIZATION": "Token abc\x00def"}, 401),
    ],
    ids=["share token", "share page", "profile", "api token"],
)
def test_a_nul_byte_is_not_found_not_a_crash(db, path, headers, status):
    client = APIClient(raise_request_exception=False)

    assert client.get(path, **headers).status_code == status


# --- Too many requests -----------------------------------------------------------------------


def test_too_many_api_requests_are_refused_with_retry_after(
    alice_api, frozen_rate_limit_clock, error_of
):
    for _ in range(50):  # the per-second allowance of every API endpoint
        assert alice_api.get("/api/v1/me/").status_code == 200

    response = alice_api.get("/api/v1/me/")

    assert error_of(response, 429)["code"] == "rate_limited"
    assert response["Retry-After"] == "1"
