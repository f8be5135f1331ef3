"""Rate limits: rules of (window seconds, requests) per domain, counted in fixed windows.

The rules are checked with an explicit `now`, so no test depends on where the real clock is.
"""

from __future__ import annotations

import os
import re
import types
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.test import RequestFactory

from webapp import ratelimit
from webapp.ratelimit import (
    RULES,
    MemoryBackend,
    RateLimited,
    client_key,
    ratelimit_check,
    ratelimit_enforce,
)

HOUR_START = 1_800_000_000.0  # a multiple of 3600: the start of a second, a minute and an hour


@pytest.fixture
def memory(monkeypatch) -> MemoryBackend:
    """A fresh in-memory backend in place of the configured one (Redis in service mode)."""
    backend = MemoryBackend()
    monkeypatch.setattr(ratelimit, "_backend", backend)
    return backend


def hits(domain: str, key: str, now: float, times: int) -> list[bool]:
    return [ratelimit_check(domain=domain, key=key, now=now).allowed for _ in range(times)]


def test_every_rule_is_a_positive_window_and_limit():
    for domain, rules in RULES.items():
        assert rules, domain
        for window_s, limit in rules:
            assert window_s > 0 and limit > 0, domain


def test_requests_within_the_limit_are_allowed(memory):
    assert hits("song_create", "user:1", HOUR_START + 5, 10) == [True] * 10


def test_the_request_over_the_limit_is_refused_until_its_window_ends(memory):
    now = HOUR_START + 5.5
    hits("song_create", "user:1", now, 10)

    decision = ratelimit_check(domain="song_create", key="user:1", now=now)

    assert not decision.allowed
    assert decision.retry_after_s == pytest.approx(54.5)


def test_a_new_window_starts_a_new_count(memory):
    hits("song_create", "user:1", HOUR_START + 30, 11)

    assert ratelimit_check(domain="song_create", key="user:1", now=HOUR_START + 60).allowed


def test_windows_are_fixed_so_a_burst_may_straddle_an_edge(memory):
    # The documented trade-off: up to twice a limit across a window edge.
    assert hits("feedback", "user:1", HOUR_START + 0.99, 20) == [True] * 20
    assert hits("feedback", "user:1", HOUR_START + 1.0, 20) == [True] * 20
    assert not ratelimit_check(domain="feedback", key="user:1", now=HOUR_START + 1.5).allowed


def test_the_longest_refusing_rule_decides_the_wait(memory):
    # Ten songs a minute for six minutes fill the hourly allowance of sixty.
    for minute in range(6):
        assert all(hits("song_create", "user:1", HOUR_START + minute * 60, 10))

    decision = ratelimit_check(domain="song_create", key="user:1", now=HOUR_START + 360)

    assert not decision.allowed
    assert decision.retry_after_s == pytest.approx(3600 - 360)


def test_a_request_must_fit_every_rule(memory):
    # Under the per-second rule every second, but over the per-minute rule of the api domain.
    allowed = []
    for second in range(30):
        allowed += hits("api", "user:1", HOUR_START + second, 50)

    assert allowed.count(True) == 1200
    assert allowed[1200:] == [False] * 300


def test_keys_are_counted_apart(memory):
    hits("song_create", "user:1", HOUR_START, 11)

    assert ratelimit_check(domain="song_create", key="user:2", now=HOUR_START).allowed


def test_domains_are_counted_apart(memory):
    hits("auth", "ip:10.0.0.1", HOUR_START, 21)

    assert ratelimit_check(domain="signup", key="ip:10.0.0.1", now=HOUR_START).allowed


def test_limits_can_be_switched_off(memory, settings):
    settings.RATELIMIT_ENABLED = False

    assert hits("signup", "ip:10.0.0.1", HOUR_START, 100) == [True] * 100


def test_an_unknown_domain_is_a_programming_error(memory):
    with pytest.raises(KeyError):
        ratelimit_check(domain="no-such-domain", key="user:1", now=HOUR_START)


def test_enforcing_raises_with_the_wait(memory, monkeypatch):
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: HOUR_START + 0.25))
    for _ in range(20):
        ratelimit_enforce(domain="auth", key="ip:10.0.0.1")

    with pytest.raises(RateLimited) as refused:
        ratelimit_enforce(domain="auth", key="ip:10.0.0.1")

    assert refused.value.domain == "auth"
    assert refused.value.retry_after_s == pytest.approx(59.75)
    assert "retry in 60 s" in str(refused.value)


def test_the_memory_backend_forgets_windows_that_are_over(memory):
    for minute in range(30):
        memory.hit("feedback:user:1", 60, HOUR_START + minute * 60)

    memory.hit("feedback:user:1", 60, HOUR_START + 3600)

    # Only the current window is kept once the sweep has run (private state, on purpose:
    # the promise here is bounded memory in a long-running embedded process).
    assert len(memory._counts) == 1


def test_reset_clears_every_count(memory):
    hits("song_create", "user:1", HOUR_START, 11)

    memory.reset()

    assert ratelimit_check(domain="song_create", key="user:1", now=HOUR_START).allowed


def test_signed_in_requests_are_keyed_by_user_and_others_by_address():
    factory = RequestFactory()
    signed_in = factory.get("/", REMOTE_ADDR="10.0.0.1")
    signed_in.user = User(pk=42, username="alice")
    anonymous = factory.get("/", REMOTE_ADDR="10.0.0.1")
    anonymous.user = AnonymousUser()
    no_user = factory.get("/", REMOTE_ADDR="10.0.0.2")

    assert client_key(signed_in) == "user:42"
    assert client_key(anonymous) == "ip:10.0.0.1"
    assert client_key(no_user) == "ip:10.0.0.2"


# --- The Redis backend (service mode) --------------------------------------------------------


@pytest.fixture
def redis_backend(monkeypatch):
    if not os.environ.get("REDIS_URL"):
        pytest.skip("needs REDIS_URL (service mode)")
    backend = ratelimit.RedisBackend(settings.REDIS_URL)
    monkeypatch.setattr(ratelimit, "_backend", backend)
    return backend


def test_the_redis_backend_counts_within_a_window(redis_backend):
    bucket = f"test:{uuid.uuid4()}"

    counts = [redis_backend.hit(bucket, 60, HOUR_START + 1) for _ in range(3)]
    next_window = redis_backend.hit(bucket, 60, HOUR_START + 60)

    assert counts == [1, 2, 3]
    assert next_window == 1


def test_the_redis_backend_lets_counts_expire(redis_backend):
    bucket = f"test:{uuid.uuid4()}"
    redis_backend.hit(bucket, 60, HOUR_START)

    key = f"{settings.CACHE_NAMESPACE}:rl:{bucket}:60:{int(HOUR_START // 60)}"
    assert 0 < redis_backend._redis.ttl(key) <= 61


def test_the_redis_backend_applies_the_same_rules(redis_backend):
    key = f"user:{uuid.uuid4()}"

    assert hits("song_create", key, HOUR_START + 5, 11) == [True] * 10 + [False]
    assert ratelimit_check(domain="song_create", key=key, now=HOUR_START + 65).allowed


def test_the_redis_backend_resets(redis_backend):
    key = f"user:{uuid.uuid4()}"
    hits("song_create", key, HOUR_START, 11)

    redis_backend.reset()

    assert ratelimit_check(domain="song_create", key=key, now=HOUR_START).allowed


# --- One table, applied everywhere -----------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
CALL_SITE = re.compile(r"""domain=["'](\w+)["']|RATE_DOMAIN = ["'](\w+)["']""")


def domains_named_in_code() -> dict[str, set[str]]:
    """domain -> the source files that name it at a call site."""
    found: dict[str, set[str]] = {}
    for folder in ("webapp", "collab"):
        for path in (ROOT / folder).rglob("*.py"):
            if path.name == "ratelimit.py" or "migrations" in path.parts:
                continue
            for match in CALL_SITE.finditer(path.read_text(encoding="utf-8")):
                domain = match.group(1) or match.group(2)
                found.setdefault(domain, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_domain_a_call_site_names_has_its_rules_in_the_one_table():
    named = domains_named_in_code()

    assert set(named) <= set(RULES), {d: named[d] for d in set(named) - set(RULES)}
    # Generation, proposals, their previews, votes and the API itself are all limited.
    assert {"api", "song_create", "room_propose", "room_audition", "room_vote"} <= set(named)


@pytest.mark.parametrize("backend_name", ["memory", "redis"])
def test_a_batch_of_votes_is_counted_by_the_same_rules_in_one_call(
    request, backend_name, monkeypatch
):
    """Votes (collab/votes.py) count a whole batch with one ratelimit_check_many: on Redis one
    run of HIT_SCRIPT, the Redis backend of the same `room_vote` rules (4 a second)."""
    backend = request.getfixturevalue("redis_backend" if backend_name == "redis" else "memory")
    calls = []
    real_hit_many = backend.hit_many
    monkeypatch.setattr(
        backend, "hit_many", lambda hits, now: calls.append(len(hits)) or real_hit_many(hits, now)
    )
    voter, other = f"user:{uuid.uuid4()}", f"user:{uuid.uuid4()}"

    decisions = ratelimit.ratelimit_check_many(
        domain="room_vote", keys=[voter] * 5 + [other], now=HOUR_START + 0.5
    )

    assert [d.allowed for d in decisions] == [True] * 4 + [False, True]
    assert decisions[4].retry_after_s == pytest.approx(0.5)
    assert calls == [6 * len(RULES["room_vote"])]  # one round trip for the batch
