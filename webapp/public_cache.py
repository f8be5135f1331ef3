"""A per-process cache of anonymous responses from the public read endpoints, served before Django.

Feeds and public song pages are read by far more people than write to them, and every anonymous
reader gets the same bytes. This ASGI middleware keeps those bytes in each web process's memory,
so a hit costs tens of microseconds instead of a full Django request (see docs/benchmarks.md).

Correctness rests on one shared *public content version*: every write that can change what an
anonymous reader sees bumps it (`public_content_changed`), and a cached entry is served only while
the version it was stored under is current. Processes read the shared version (Redis in service
mode) at most every `VERSION_REFRESH_S`, so a song made private stops being served within that
time, the same order as a request already in flight. Entries also expire after `ttl_s` (a safety
net), or sooner when the view marks its answer volatile with an `X-Public-Cache-TTL` header
(a song still generating: its progress is deliberately not versioned).

Misses are single-flight: while one request for a key runs through Django, the others for the
same key wait for its answer instead of all running (a stampede at every expiry otherwise).

In service mode a second level in Redis is shared by every web process: a process's miss first
asks Redis (keys carry the content version, so old versions simply expire), and only then runs
Django, storing its answer for all. New and restarted processes so start warm.

Only requests that carry no credentials are cached: no Authorization header, no session cookie,
no share token, and not asking for HTML (DRF's browsable API).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

CACHEABLE_PATHS = re.compile(r"^/api/v1/(feed/|songs/[0-9a-fA-F-]{36}/)$")
VERSION_REFRESH_S = 0.05
TTL_HEADER = b"x-public-cache-ttl"


class _Versions:
    """The shared public-content version: Redis in service mode, this process otherwise."""

    def __init__(self) -> None:
        self._local = 0
        self._seen = 0
        self._seen_at = 0.0
        self._lock = threading.Lock()
        self._redis = None
        self.key = f"{settings.CACHE_NAMESPACE}:public-content-version"
        if settings.REDIS_URL:
            import redis

            self._redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)

    def bump(self) -> None:
        if self._redis is None:
            with self._lock:
                self._local += 1
            return
        try:
            self._redis.incr(self.key)
        except Exception:
            logger.exception("could not bump the public content version")
        self._seen_at = 0.0  # this process sees its own write at once

    def current(self) -> int | None:
        """The version, or None when it cannot be known (then nothing is served from cache)."""
        if self._redis is None:
            return self._local
        now = time.monotonic()
        if now - self._seen_at > VERSION_REFRESH_S:
            try:
                self._seen = int(self._redis.get(self.key) or 0)
            except Exception:
                logger.warning("public content version unavailable; cache bypassed")
                return None
            self._seen_at = now
        return self._seen


_versions: _Versions | None = None
_versions_lock = threading.Lock()


def versions() -> _Versions:
    global _versions
    with _versions_lock:
        if _versions is None:
            _versions = _Versions()
        return _versions


def public_content_changed() -> None:
    """Call (on commit) after any write that may change what anonymous readers see."""
    versions().bump()


@dataclass
class _Entry:
    version: int
    expires_at: float
    start: dict
    body: bytes


class _SharedStore:
    """The second level: entries in Redis, shared by all web processes (service mode only)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.prefix = f"{settings.CACHE_NAMESPACE}:pc"
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def _client(self):
        loop = asyncio.get_running_loop()  # an asyncio client belongs to the loop it was made in
        client = self._clients.get(loop)
        if client is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self.url, socket_timeout=0.5)
            self._clients[loop] = client
        return client

    def _key(self, key: tuple[str, bytes], version: int) -> str:
        return f"{self.prefix}:{version}:{key[0]}?{key[1].decode('latin-1')}"

    async def get(self, key: tuple[str, bytes], version: int) -> _Entry | None:
        try:
            raw = await self._client().get(self._key(key, version))
        except Exception:
            logger.warning("shared response cache unavailable", exc_info=True)
            return None
        if raw is None:
            return None
        head, _, body = raw.partition(b"\n")
        meta = json.loads(head)
        remaining = meta["expires_at"] - time.time()
        if remaining <= 0:
            return None
        start = {
            "type": "http.response.start",
            "status": meta["status"],
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in meta["headers"]],
        }
        return _Entry(version, time.monotonic() + remaining, start, body)

    async def put(self, key: tuple[str, bytes], entry: _Entry) -> None:
        ttl = entry.expires_at - time.monotonic()
        meta = {
            "status": entry.start["status"],
            "headers": [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in entry.start["headers"]
            ],
            "expires_at": time.time() + ttl,
        }
        try:
            await self._client().set(
                self._key(key, entry.version),
                json.dumps(meta).encode() + b"\n" + entry.body,
                px=max(1, int(ttl * 1000)),
            )
        except Exception:
            logger.warning("could not store in the shared response cache", exc_info=True)


def _header(scope: dict, name: bytes) -> bytes:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return b""


def is_cacheable_request(scope: dict) -> bool:
    if scope["type"] != "http" or scope["method"] != "GET":
        return False
    if not CACHEABLE_PATHS.match(scope["path"]):
        return False
    if _header(scope, b"authorization") or b"sessionid=" in _header(scope, b"cookie"):
        return False
    if b"share_token" in scope.get("query_string", b""):
        return False
    return b"text/html" not in _header(scope, b"accept")


class PublicResponseCache:
    def __init__(self, app, *, ttl_s: float, max_entries: int = 20_000) -> None:
        self.app = app
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()
        self.inflight: dict[tuple[str, bytes, int], asyncio.Future] = {}
        self.shared = _SharedStore(settings.REDIS_URL) if settings.REDIS_URL else None

    async def __call__(self, scope, receive, send) -> None:
        if self.ttl_s <= 0 or not is_cacheable_request(scope):
            await self.app(scope, receive, send)
            return
        version = versions().current()
        if version is None:
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope.get("query_string", b""))
        flight_key = (*key, version)
        entry = self._fresh(key, version)
        if entry is None and flight_key in self.inflight:
            entry = await asyncio.shield(self.inflight[flight_key])
        if entry is not None:
            await self._serve(send, entry, b"hit")
            return

        # This request leads: it asks the shared level, then runs through Django; same-key
        # requests meanwhile wait for it (and run themselves if the answer is not cacheable).
        flight = asyncio.get_running_loop().create_future()
        self.inflight[flight_key] = flight
        entry = None
        try:
            if self.shared is not None:
                entry = await self.shared.get(key, version)
            if entry is not None:
                await self._serve(send, entry, b"hit-shared")
            else:
                entry = await self._fetch(scope, receive, send, version)
                if entry is not None and self.shared is not None:
                    await self.shared.put(key, entry)
        finally:
            del self.inflight[flight_key]
            flight.set_result(entry)
        if entry is not None:
            self.entries[key] = entry
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

    @staticmethod
    async def _serve(send, entry: _Entry, label: bytes) -> None:
        await send({**entry.start, "headers": [*entry.start["headers"], (b"x-cache", label)]})
        await send({"type": "http.response.body", "body": entry.body})

    def _fresh(self, key, version: int) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is None or entry.version != version or entry.expires_at <= time.monotonic():
            return None
        self.entries.move_to_end(key)
        return entry

    async def _fetch(self, scope, receive, send, version: int) -> _Entry | None:
        """Run the request through Django, answer it, and return it as an entry if cacheable."""
        captured: dict = {"body": []}

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message["headers"] if k != TTL_HEADER]
                captured["start"] = {**message, "headers": headers}
                captured["ttl"] = dict(message["headers"]).get(TTL_HEADER)
                message = {**message, "headers": [*headers, (b"x-cache", b"miss")]}
            elif message["type"] == "http.response.body":
                captured["body"].append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, capture)
        start = captured.get("start")
        if start is None or start["status"] != 200:
            return None
        headers = dict(start["headers"])
        if b"set-cookie" in headers or not headers.get(b"content-type", b"").startswith(
            b"application/json"
        ):
            return None
        ttl = min(self.ttl_s, float(captured["ttl"])) if captured.get("ttl") else self.ttl_s
        return _Entry(version, time.monotonic() + ttl, start, b"".join(captured["body"]))
