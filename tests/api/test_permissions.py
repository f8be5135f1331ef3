"""The permission matrix: who may see, download, share, edit and delete a song, on every path.

The rules (webapp/songs/selectors.py): owners and admins see and edit everything; public songs
anyone may read; unlisted songs only with their share token; private songs only owner and admin.
A song someone may not see answers 404, exactly as a song that does not exist (never 403: that
would confirm it exists). Writes are for the owner and admins only; everyone else gets the same
404, even on a song they can read. The one 401 is share-token rotation for anonymous callers: that
endpoint demands a signed-in user before it looks at the song, so it leaks nothing either (see
test_anonymous_answers_do_not_depend_on_whether_the_song_exists).
"""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from webapp.accounts.services import user_api_token
from webapp.songs.models import Song

# Alice owns the song. "bob" is another signed-in user, "anon" nobody, "admin" a superuser.
# "+token" means the request carries the song's own share token (?share_token=, or in the path).
MATRIX = """
action                        visibility   alice  bob  anon  admin
GET    detail                 private      200    404  404   200
GET    detail                 unlisted     200    404  404   200
GET    detail                 public       200    200  200   200
GET    detail +token          private      200    404  404   200
GET    detail +token          unlisted     200    200  200   200
GET    detail +token          public       200    200  200   200
GET    download               private      200    404  404   200
GET    download               unlisted     200    404  404   200
GET    download               public       200    200  200   200
GET    download +token        private      200    404  404   200
GET    download +token        unlisted     200    200  200   200
GET    download +token        public       200    200  200   200
GET    shared +token          private      200    404  404   200
GET    shared +token          unlisted     200    200  200   200
GET    shared +token          public       200    200  200   200
GET    song-page              private      200    404  404   200
GET    song-page              unlisted     200    404  404   200
GET    song-page              public       200    200  200   200
GET    share-page +token      private      200    404  404   200
GET    share-page +token      unlisted     200    200  200   200
GET    share-page +token      public       200    200  200   200
PATCH  detail                 private      200    404  404   200
PATCH  detail                 unlisted     200    404  404   200
PATCH  detail                 public       200    404  404   200
PATCH  detail +token          unlisted     200    404  404   200
DELETE detail                 private      204    404  404   204
DELETE detail                 unlisted     204    404  404   204
DELETE detail                 public       204    404  404   204
DELETE detail +token          unlisted     204    404  404   204
POST   share-token            private      200    404  401   200
POST   share-token            unlisted     200    404  401   200
POST   share-token            public       200    404  401   200
POST   share-token +token     unlisted     200    404  401   200
"""

ACTORS = ("alice", "bob", "anon", "admin")


def read_matrix(table: str) -> list:
    header, *rows = table.strip().splitlines()
    assert tuple(header.split()[-len(ACTORS) :]) == ACTORS, "columns and ACTORS disagree"
    cases = []
    for row in rows:
        words = row.split()
        method, path, *rest = words
        with_token = rest[0] == "+token"
        if with_token:
            rest = rest[1:]
        visibility, *statuses = rest
        for actor, status in zip(ACTORS, statuses, strict=True):
            cases.append(
                pytest.param(
                    method,
                    path,
                    with_token,
                    visibility,
                    actor,
                    int(status),
                    id=f"{method} {path}{' +token' if with_token else ''}/{visibility}/{actor}",
                )
            )
    return cases


def request(client: APIClient, method: str, path: str, song: Song, token: str | None):
    """Make the request named by a row of the matrix, the way a client would."""
    query = {"share_token": token} if token else {}
    if path == "detail":
        url = f"/api/v1/songs/{song.pk}/"
        if method == "GET":
            return client.get(url, query)
        url += f"?share_token={token}" if token else ""
        if method == "PATCH":
            return client.patch(url, {"title": "Hi"})
        return client.delete(url)
    if path == "download":
        response = client.get(f"/api/v1/songs/{song.pk}/download/", {"format": "wav", **query})
        if response.status_code == 200:
            b"".join(response.streaming_content)  # reading to the end closes the file
        return response
    if path == "shared":
        return client.get(f"/api/v1/shared/{song.share_token}/")
    if path == "song-page":
        return client.get(f"/songs/{song.pk}/")
    if path == "share-page":
        return client.get(f"/s/{song.share_token}/")
    if path == "share-token":
        suffix = f"?share_token={token}" if token else ""
        return client.post(f"/api/v1/songs/{song.pk}/share-token/{suffix}")
    raise AssertionError(f"unknown path {path!r} in the matrix")


@pytest.fixture
def actors(alice, bob, admin):
    """Each actor's client, signed in with a token as API clients are (`.user` for pages)."""
    clients = {"anon": APIClient()}
    for name, user in (("alice", alice), ("bob", bob), ("admin", admin)):
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {user_api_token(user=user)}")
        client.user = user
        clients[name] = client
    return clients


def a_song_that_does_not_exist(song: Song) -> Song:
    return Song(id=uuid.uuid4(), owner=song.owner, share_token="no-such-token-at-all")


@pytest.mark.parametrize(
    ("method", "path", "with_token", "visibility", "actor", "expected"), read_matrix(MATRIX)
)
def test_the_permission_matrix(
    actors, make_song, alice, method, path, with_token, visibility, actor, expected
):
    song = make_song(alice, visibility=visibility, title="Alice's tune")
    client = actors[actor]
    if path.endswith("-page") and actor != "anon":
        client.force_login(client.user)  # pages know people by their session, as browsers do

    response = request(client, method, path, song, song.share_token if with_token else None)

    assert response.status_code == expected, response.content[:300]
    if expected == 404:
        # Exactly what a song that does not exist answers: existence is not leaked.
        nowhere = request(
            client, method, path, a_song_that_does_not_exist(song), "no-such-token-at-all"
        )
        assert nowhere.status_code == 404
        assert response.content == nowhere.content
    if method == "GET":
        return
    after = Song.objects.filter(pk=song.pk).first()
    if expected >= 400:
        # A refused write changes nothing.
        assert (after.title, after.visibility, after.share_token) == (
            song.title,
            song.visibility,
            song.share_token,
        )
    elif method == "PATCH":
        assert after.title == "Hi"
    elif method == "DELETE":
        assert after is None
    else:
        assert after.share_token != song.share_token


@pytest.mark.parametrize("visibility", ["private", "unlisted", "public"])
def test_anonymous_answers_do_not_depend_on_whether_the_song_exists(
    anon, make_song, alice, visibility
):
    song = make_song(alice, visibility=visibility)
    for method, suffix in (("patch", ""), ("delete", ""), ("post", "share-token/")):
        real = getattr(anon, method)(f"/api/v1/songs/{song.pk}/{suffix}")
        unknown = getattr(anon, method)(f"/api/v1/songs/{uuid.uuid4()}/{suffix}")
        assert (real.status_code, real.content) == (unknown.status_code, unknown.content)


def test_the_song_list_needs_a_signed_in_user(anon, error_of):
    error = error_of(anon.get("/api/v1/songs/"), 401)

    assert error["code"] == "not_authenticated"
    assert error_of(anon.post("/api/v1/songs/", {"prompt": "x"}), 401)


@pytest.mark.parametrize("actor", ["alice", "bob", "admin"])
def test_the_song_list_holds_only_the_callers_own_songs(actors, make_song, alice, bob, actor):
    owned = {
        "alice": {make_song(alice, visibility=v).pk for v in ("private", "unlisted", "public")},
        "bob": {make_song(bob, visibility="public").pk},
        "admin": set(),  # admins see everything, but "my songs" are their own
    }

    body = actors[actor].get("/api/v1/songs/").json()

    assert {uuid.UUID(s["id"]) for s in body["results"]} == owned[actor]


@pytest.mark.parametrize("actor", ACTORS)
def test_the_feed_is_the_same_public_list_for_everyone(actors, make_song, alice, actor):
    public = make_song(alice, visibility="public")
    make_song(alice, visibility="unlisted")
    make_song(alice, visibility="private")

    body = actors[actor].get("/api/v1/feed/").json()

    assert [s["id"] for s in body["results"]] == [str(public.pk)]


def test_a_share_token_of_one_song_opens_no_other(anon, make_song, alice):
    shared = make_song(alice, visibility="unlisted")
    other = make_song(alice, visibility="unlisted")

    response = anon.get(f"/api/v1/songs/{other.pk}/", {"share_token": shared.share_token})

    assert response.status_code == 404


def test_making_a_song_private_closes_its_share_link(alice_api, anon, an_unlisted_song):
    link = f"/api/v1/shared/{an_unlisted_song.share_token}/"
    assert anon.get(link).status_code == 200

    alice_api.patch(f"/api/v1/songs/{an_unlisted_song.pk}/", {"visibility": "private"})

    assert anon.get(link).status_code == 404
    assert alice_api.get(link).status_code == 200  # the owner still can
