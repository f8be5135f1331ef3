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

Only requests that carry no credentials are cached: no Authorization header, no session cookie,
no share token, and not asking for HTML (DRF's browsable API).
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

CACHEABLE_PATHS = re.compile(r"^/api/v1/(feed/|songs/[0-9a-fA-F-]{36}/)$")
VERSION_KEY = "chorus:public-content-version"
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
        if settings.REDIS_URL:
            import redis

            self._redis = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.5)

    def bump(self) -> None:
        if self._redis is None:
            with self._lock:
                self._local += 1
            return
        try:
            self._redis.incr(VERSION_KEY)
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
                self._seen = int(self._redis.get(VERSION_KEY) or 0)
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
            await send({**entry.start, "headers": [*entry.start["headers"], (b"x-cache", b"hit")]})
            await send({"type": "http.response.body", "body": entry.body})
            return

        # This request leads: it runs through Django; same-key requests meanwhile wait for it
        # (and run themselves if its answer turns out not to be cacheable).
        flight = asyncio.get_running_loop().create_future()
        self.inflight[flight_key] = flight
        entry = None
        try:
            entry = await self._fetch(scope, receive, send, version)
        finally:
            del self.inflight[flight_key]
            flight.set_result(entry)
        if entry is not None:
            self.entries[key] = entry
            while len(self.entries) > self.max_entries:
                self.entries.popitem(last=False)

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
