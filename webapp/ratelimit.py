"""Rate limits as one abstraction: rules of (seconds, requests) per domain, two backends.

Call sites name a domain and a key (`ratelimit_enforce(domain="feedback", key=f"user:{id}")`). A
request is allowed when every rule of the domain still has room in its current window. The Redis
backend (service mode) shares counts across processes; the in-memory backend serves the embedded
default and tests. Fixed windows: cheap (one round trip: HIT_SCRIPT increments every rule's
counter of a request, or of a whole batch of votes, in one Lua call) and good enough for abuse
control, where a burst of up to twice a limit across a window edge is acceptable.

RULES below is the one table of numbers, for every domain (docs/safety.md lists where each is
applied). Votes (collab/votes.py) go through the same table and backends: a batch of votes is
one `ratelimit_check_many` call, which on Redis is one run of HIT_SCRIPT. Daily generation
quotas are not a rate limit (a day's total, kept in PostgreSQL): webapp/safety/quotas.py.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

# domain -> rules of (window seconds, max requests in that window). Keys: `user:<id>`,
# `ip:<address>`, a room participant (`user:<id>` / `anon:<session>`), or `room:<id>`.
RULES: dict[str, tuple[tuple[int, int], ...]] = {
    # Every REST API request (webapp/api/throttling.py), by user or address.
    "api": ((1, 50), (60, 1200)),
    # Songs generated from a prompt (songs.services.song_create; API and page alike).
    "song_create": ((60, 10), (3600, 60)),
    "feedback": ((1, 20), (60, 600)),
    "signup": ((3600, 20),),
    "auth": ((60, 20),),
    "report": ((60, 5), (3600, 30)),  # reports to the moderators (webapp/moderation)
    # Rooms (collab): creating one, proposing, voting (a vote may be changed, but a client that
    # sends several a second is a script), keeping music as a song.
    "room_create": ((60, 5), (3600, 30)),
    "room_propose": ((10, 3), (60, 12), (3600, 240)),
    "room_vote": ((1, 4), (60, 120)),
    "room_keep": ((60, 5), (3600, 60)),
    # Per room: proposals that go on the ballot, each of which the conductor renders as a 5 s
    # preview (an audition). Twelve a minute is at most a minute of previews per minute.
    "room_audition": ((60, 12), (3600, 240)),
}


class RateLimited(Exception):
    def __init__(self, domain: str, retry_after_s: float) -> None:
        super().__init__(f"Too many requests ({domain}); retry in {retry_after_s:.0f} s.")
        self.domain = domain
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_s: float = 0.0


class Backend(Protocol):
    def hit(self, bucket: str, window_s: int, now: float) -> int:
        """Count one hit in the bucket's current window and return the count so far."""

    def hit_many(self, hits: list[tuple[str, int]], now: float) -> list[int]:
        """`hit` for many (bucket, window_s) pairs at once (one round trip to Redis)."""


class MemoryBackend:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self._last_sweep = 0.0

    def hit(self, bucket: str, window_s: int, now: float) -> int:
        window = int(now // window_s)
        with self._lock:
            if now - self._last_sweep > 60:
                self._sweep(now)
            key = (f"{bucket}:{window_s}", window)
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def hit_many(self, hits: list[tuple[str, int]], now: float) -> list[int]:
        return [self.hit(bucket, window_s, now) for bucket, window_s in hits]

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        for name, window in list(self._counts):
            window_s = int(name.rsplit(":", 1)[1])
            if window < int(now // window_s):
                del self._counts[(name, window)]

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()


# Counts every key of a batch in one command: INCR each, and give a new one its window's expiry.
HIT_SCRIPT = """
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('INCR', key)
  if counts[i] == 1 or redis.call('TTL', key) == -1 then
    redis.call('EXPIRE', key, ARGV[i])
  end
end
return counts
"""


class RedisBackend:
    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)
        self._hit = self._redis.register_script(HIT_SCRIPT)

    def hit(self, bucket: str, window_s: int, now: float) -> int:
        return self.hit_many([(bucket, window_s)], now)[0]

    def hit_many(self, hits: list[tuple[str, int]], now: float) -> list[int]:
        if not hits:
            return []
        keys = [
            f"{settings.CACHE_NAMESPACE}:rl:{bucket}:{window_s}:{int(now // window_s)}"
            for bucket, window_s in hits
        ]
        return [int(count) for count in self._hit(keys=keys, args=[w + 1 for _, w in hits])]

    def reset(self) -> None:
        for key in self._redis.scan_iter(f"{settings.CACHE_NAMESPACE}:rl:*"):
            self._redis.delete(key)


_backend: Backend | None = None
_backend_lock = threading.Lock()


def get_backend() -> Backend:
    global _backend
    with _backend_lock:
        if _backend is None:
            if settings.RATELIMIT_BACKEND == "redis":
                _backend = RedisBackend(settings.REDIS_URL)
            else:
                _backend = MemoryBackend()
        return _backend


def ratelimit_check(*, domain: str, key: str, now: float | None = None) -> Decision:
    """Count a hit for `key` in `domain` and say whether it is within every rule."""
    return ratelimit_check_many(domain=domain, keys=[key], now=now)[0]


def ratelimit_check_many(
    *, domain: str, keys: list[str], now: float | None = None
) -> list[Decision]:
    """`ratelimit_check` for many keys of one domain, counted in one round trip (a batch of
    votes); a key that appears twice is counted twice."""
    if not settings.RATELIMIT_ENABLED or not keys:
        return [Decision(allowed=True) for _ in keys]
    now = time.time() if now is None else now
    rules = RULES[domain]
    counts = get_backend().hit_many(
        [(f"{domain}:{key}", window_s) for key in keys for window_s, _ in rules], now
    )
    per_key = len(rules)
    return [_decide(rules, counts[i : i + per_key], now) for i in range(0, len(counts), per_key)]


def _decide(rules: tuple[tuple[int, int], ...], counts: list[int], now: float) -> Decision:
    """Allowed when every rule's window still had room; else when the latest-ending one resets."""
    over = [
        window_s - (now % window_s)
        for (window_s, limit), n in zip(rules, counts, strict=True)
        if n > limit
    ]
    return Decision(allowed=not over, retry_after_s=max(over, default=0.0))


def ratelimit_enforce(*, domain: str, key: str) -> None:
    decision = ratelimit_check(domain=domain, key=key)
    if not decision.allowed:
        raise RateLimited(domain, decision.retry_after_s)


def client_key(request) -> str:
    """The rate-limit key of a request: the user when signed in, else the client address."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return f"user:{user.pk}"
    return f"ip:{request.META.get('REMOTE_ADDR', 'unknown')}"
