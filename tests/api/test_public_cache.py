"""Anonymous public reads are served from memory, and never once they would be wrong."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator

from webapp.songs import services

pytestmark = pytest.mark.django_db(transaction=True)  # the app serves from its own threads


@dataclass
class Answer:
    status_code: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@pytest.fixture
def asgi_get():
    """GET through the real ASGI application (cache, a2wsgi, Django), as a server would."""
    from webapp.asgi import application

    def get(path: str, **headers) -> Answer:
        raw = [(b"host", b"testserver")]
        raw += [(k.encode(), v.encode()) for k, v in headers.items()]
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": raw,
            "client": ("127.0.0.1", 5555),
            "server": ("testserver", 80),
        }

        async def call():
            communicator = ApplicationCommunicator(application, scope)
            await communicator.send_input({"type": "http.request", "body": b""})
            start = await communicator.receive_output(30)
            body = b""
            while True:
                message = await communicator.receive_output(30)
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            await communicator.wait(5)
            return start, body

        start, body = async_to_sync(call)()
        headers = {k.decode().lower(): v.decode() for k, v in start["headers"]}
        return Answer(start["status"], headers, body)

    return get


def test_the_second_anonymous_read_of_the_feed_is_a_hit(asgi_get, a_public_song):
    first, second = asgi_get("/api/v1/feed/"), asgi_get("/api/v1/feed/")
    assert first.headers["x-cache"] == "miss" and second.headers["x-cache"] == "hit"
    assert first.json() == second.json()
    assert second.json()["results"][0]["id"] == str(a_public_song.pk)


def test_a_song_made_private_is_no_longer_served_from_the_cache(asgi_get, a_public_song):
    path = f"/api/v1/songs/{a_public_song.pk}/"
    assert asgi_get(path).status_code == 200
    assert asgi_get(path).headers["x-cache"] == "hit"

    services.song_update(song=a_public_song, visibility="private")

    assert asgi_get(path).status_code == 404
    assert asgi_get("/api/v1/feed/").json()["results"] == []


def test_a_new_thumb_is_seen_by_the_next_anonymous_reader(asgi_get, a_public_song, bob):
    path = f"/api/v1/songs/{a_public_song.pk}/"
    asgi_get(path), asgi_get(path)
    services.song_thumb(song=a_public_song, user=bob, value=1)
    fresh = asgi_get(path)
    assert fresh.headers["x-cache"] == "miss"
    assert fresh.json()["like_count"] == 1


def test_requests_with_credentials_are_never_cached(asgi_get, a_public_song, alice):
    from webapp.accounts.services import user_api_token

    token = user_api_token(user=alice)
    path = f"/api/v1/songs/{a_public_song.pk}/"
    asgi_get(path)
    as_owner = asgi_get(path, authorization=f"Token {token}")
    assert "x-cache" not in as_owner.headers
    assert as_owner.json()["share_url"]  # the owner's answer, not the anonymous one


def test_share_links_and_html_are_not_cached(asgi_get, an_unlisted_song):
    path = f"/api/v1/songs/{an_unlisted_song.pk}/?share_token={an_unlisted_song.share_token}"
    assert asgi_get(path).status_code == 200
    assert "x-cache" not in asgi_get(path).headers
    assert "x-cache" not in asgi_get("/api/v1/feed/", accept="text/html").headers


def test_errors_are_not_cached(asgi_get, a_private_song):
    path = f"/api/v1/songs/{a_private_song.pk}/"
    assert asgi_get(path).status_code == 404
    services.song_update(song=a_private_song, visibility="public")
    assert asgi_get(path).status_code == 200


def test_a_song_still_generating_is_cached_only_briefly(asgi_get, alice):
    from webapp.public_cache import TTL_HEADER
    from webapp.songs.models import Song

    song = Song.objects.create(
        owner=alice, title="Busy", prompt="p", duration_s=30, seed=1, visibility="public"
    )
    answer = asgi_get(f"/api/v1/songs/{song.pk}/")
    assert answer.json()["status"] == "queued"
    assert TTL_HEADER.decode() not in answer.headers  # an internal hint, never sent out
    from webapp.asgi import application

    cache = application.application_mapping["http"]
    entry = cache.entries[(f"/api/v1/songs/{song.pk}/", b"")]
    assert entry.expires_at - time.monotonic() <= 1.0 < cache.ttl_s


def test_concurrent_misses_for_one_key_run_django_once():
    import asyncio

    from webapp.public_cache import PublicResponseCache

    calls = 0

    async def slow_app(scope, receive, send):
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b"{}"})

    cache = PublicResponseCache(slow_app, ttl_s=60)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/feed/",
        "query_string": b"",
        "headers": [],
    }

    async def one():
        sent = []

        async def send(message):
            sent.append(message)

        await cache(scope, None, send)
        return sent

    async def many():
        return await asyncio.gather(*(one() for _ in range(20)))

    answers = async_to_sync(many)()
    assert calls == 1
    assert all(a[-1]["body"] == b"{}" for a in answers)


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (service mode)")
def test_web_processes_share_what_one_of_them_fetched_until_content_changes():
    from webapp.public_cache import PublicResponseCache, public_content_changed, versions

    calls = 0

    async def django(scope, receive, send):
        nonlocal calls
        calls += 1
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"n": %d}' % calls})

    # Two caches stand for two web processes; Redis is what they share.
    first, second = PublicResponseCache(django, ttl_s=60), PublicResponseCache(django, ttl_s=60)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/api/v1/feed/",
        "query_string": b"x",
        "headers": [],
    }
    public_content_changed()  # a version no earlier run used

    async def get(cache):
        sent = []

        async def send(message):
            sent.append(message)

        await cache(scope, None, send)
        return dict(sent[0]["headers"])[b"x-cache"], sent[-1]["body"]

    assert async_to_sync(get)(first) == (b"miss", b'{"n": 1}')
    assert async_to_sync(get)(second) == (b"hit-shared", b'{"n": 1}')
    assert calls == 1

    public_content_changed()
    versions()._seen_at = 0.0  # the other process looks again (it would within 50 ms)
    assert async_to_sync(get)(second) == (b"miss", b'{"n": 2}')
