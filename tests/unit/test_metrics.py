"""Metrics and readiness: `/metrics` shows our metrics only to whom it should, and `/readyz`
answers 503 naming the dependency that is down.

Values are read from the process's registry as differences (before, after): the registry is
global and other tests move it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
import uuid

import pytest
from django.db import OperationalError
from django.test import Client
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from generation import metrics as engine_metrics
from webapp import health, metrics
from webapp.metrics import QueueDepthCollector

REMOTE = "203.0.113.9"  # a documentation address: not loopback


def sample(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


@pytest.fixture
def remote_client() -> Client:
    return Client(REMOTE_ADDR=REMOTE)


@pytest.fixture
def metrics_token(settings) -> str:
    settings.METRICS_TOKEN = "a-long-random-scrape-token"
    return settings.METRICS_TOKEN


# --- Who may read them ---------------------------------------------------------------------------


def test_a_loopback_connection_reads_the_metrics(client):
    response = client.get("/metrics")  # the test client connects from 127.0.0.1

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")


def test_a_remote_address_without_a_token_is_refused(remote_client):
    assert remote_client.get("/metrics").status_code == 403


def test_loopback_through_a_proxy_is_refused(client):
    # A reverse proxy on the same host makes every visitor look like 127.0.0.1.
    response = client.get("/metrics", HTTP_X_FORWARDED_FOR="198.51.100.7")

    assert response.status_code == 403


def test_the_bearer_token_opens_the_metrics_to_any_address(remote_client, metrics_token):
    response = remote_client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {metrics_token}")

    assert response.status_code == 200


def test_a_wrong_token_is_refused(remote_client, metrics_token):
    assert remote_client.get("/metrics", HTTP_AUTHORIZATION="Bearer guess").status_code == 403
    assert remote_client.get("/metrics", HTTP_AUTHORIZATION=metrics_token).status_code == 403


# --- What they say -------------------------------------------------------------------------------


def test_our_metrics_are_exposed(client):
    body = client.get("/metrics").content.decode()

    for name in (
        "chorus_http_requests_total",
        "chorus_http_request_duration_seconds",
        "chorus_rooms",
        "chorus_room_listeners",
        "chorus_room_chunk_lead_seconds",
        "chorus_conductor_batch_rooms",
        "chorus_steering_latency_seconds",
        "chorus_votes_total",
        "chorus_generation_batch_rooms",
        "chorus_generation_realtime_factor",
    ):
        assert f"# TYPE {name} " in body, name


def test_requests_are_counted_by_url_pattern_and_status(client):
    labels = {"method": "GET", "route": "healthz", "status": "200"}
    before = sample("chorus_http_requests_total", labels)

    client.get("/healthz")
    client.get("/healthz")

    assert sample("chorus_http_requests_total", labels) == before + 2
    assert (
        sample("chorus_http_request_duration_seconds_count", {"method": "GET", "route": "healthz"})
        >= 2
    )


def test_unmatched_paths_share_one_label(client):
    labels = {"method": "GET", "route": "<unmatched>", "status": "404"}
    before = sample("chorus_http_requests_total", labels)

    client.get(f"/no-such-page-{uuid.uuid4().hex}/")
    client.get(f"/no-such-page-{uuid.uuid4().hex}/")

    assert sample("chorus_http_requests_total", labels) == before + 2


def test_a_conductor_tick_sets_rooms_and_listeners():
    on_air = {"r1": "live", "r2": "live", "r3": "paused", "r4": "live"}
    listeners = {"r1": 3, "r2": 0, "r3": 5, "r4": 1}

    metrics.rooms_observe(on_air, listeners)

    assert sample("chorus_rooms", {"status": "live"}) == 3
    assert sample("chorus_rooms", {"status": "paused"}) == 1
    assert sample("chorus_rooms", {"status": "heard"}) == 2  # live, and someone listens
    assert sample("chorus_room_listeners") == 9

    metrics.rooms_observe({}, {})  # nothing on air any more

    assert sample("chorus_rooms", {"status": "live"}) == 0
    assert sample("chorus_room_listeners") == 0


def test_chunk_lead_is_what_lies_ahead_of_the_playback_clock():
    last = types.SimpleNamespace(end_s=12.0)
    ahead = types.SimpleNamespace(origin=1000.0, last=last)  # playhead 10.5: 1.5 s ahead
    starved = types.SimpleNamespace(origin=990.0, last=last)  # playhead 20.5: ran out
    before = {
        bound: sample("chorus_room_chunk_lead_seconds_bucket", {"le": bound})
        for bound in ("0.0", "1.5")
    }

    metrics.chunk_leads_observe([ahead, starved], now=1010.5)

    assert sample("chorus_room_chunk_lead_seconds_bucket", {"le": "0.0"}) == before["0.0"] + 1
    assert sample("chorus_room_chunk_lead_seconds_bucket", {"le": "1.5"}) == before["1.5"] + 2


def test_a_batch_reports_its_rooms_and_real_time_factor():
    chunks = [types.SimpleNamespace(duration_s=1.0) for _ in range(8)]
    made = sample("chorus_generation_chunks_total")
    fast = sample("chorus_generation_realtime_factor_bucket", {"le": "2.0"})
    slow = sample("chorus_generation_realtime_factor_bucket", {"le": "1.0"})

    engine_metrics.room_batch_observe(chunks, elapsed_s=0.5)  # 1 s of music in 0.5 s: 2x

    assert sample("chorus_generation_chunks_total") == made + 8
    assert sample("chorus_generation_realtime_factor_bucket", {"le": "2.0"}) == fast + 1
    assert sample("chorus_generation_realtime_factor_bucket", {"le": "1.0"}) == slow


# --- Queue depth ---------------------------------------------------------------------------------


def scrape(collector) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return generate_latest(registry).decode()


def test_queue_depth_needs_a_redis_broker():
    assert scrape(QueueDepthCollector("memory://")) == ""


def test_an_unreachable_broker_leaves_queue_depth_out_and_the_scrape_answers(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1

    response = client.get("/metrics")

    assert response.status_code == 200
    assert b"chorus_celery_queue_depth" not in response.content


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs REDIS_URL (Redis)")
def test_queue_depth_counts_the_messages_waiting():
    import redis

    queue = f"chorus-test-queue-{uuid.uuid4().hex}"
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    client.rpush(queue, "a", "b", "c")
    try:
        text = scrape(QueueDepthCollector(os.environ["REDIS_URL"], queues=(queue,)))
    finally:
        client.delete(queue)

    assert f'chorus_celery_queue_depth{{queue="{queue}"}} 3.0' in text


# --- Readiness -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_ready_when_the_database_and_cache_answer(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"ok": True, "checks": {"database": "ok", "cache": "ok"}}


class RefusingConnection:
    """A database connection whose server is down."""

    def cursor(self):
        raise OperationalError("connection refused")


def test_not_ready_when_the_database_is_down(client, monkeypatch):
    monkeypatch.setattr(health, "connection", RefusingConnection())

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {
        "ok": False,
        "checks": {"database": "error: OperationalError", "cache": "ok"},
    }


@pytest.mark.django_db
def test_not_ready_when_the_cache_is_down(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        }
    }

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["ok"] is False
    assert response.json()["checks"]["database"] == "ok"
    assert response.json()["checks"]["cache"].startswith("error: ")


def test_liveness_does_not_depend_on_the_database(client, monkeypatch):
    monkeypatch.setattr(health, "connection", RefusingConnection())

    assert client.get("/healthz").status_code == 200


# --- Several processes ---------------------------------------------------------------------------

COUNT_VOTES = (
    "import sys, django; django.setup(); from webapp import metrics; "
    "metrics.VOTES.inc(int(sys.argv[1]))"
)
SCRAPE = (
    "import django; django.setup(); from prometheus_client import generate_latest; "
    "from webapp import metrics; print(generate_latest(metrics.process_registry()).decode())"
)


def run_python(code: str, *args: str, metrics_dir) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings_test",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def test_multiprocess_mode_adds_up_what_each_process_counted(tmp_path):
    # As uvicorn --workers 2, or Celery's prefork children: each process counts on its own.
    run_python(COUNT_VOTES, "3", metrics_dir=tmp_path)
    run_python(COUNT_VOTES, "4", metrics_dir=tmp_path)

    scraped = run_python(SCRAPE, metrics_dir=tmp_path)

    assert "chorus_votes_total 7.0" in scraped
