"""Prometheus metrics: the `/metrics` endpoint, request metrics, and the objects the rest of the
service updates (docs/deploy.md, *Observability*, lists every metric).

- Requests: `RequestMetricsMiddleware` counts what Django answers, by method, URL pattern and
  status, with a latency histogram. Anonymous reads that webapp/public_cache.py answers from
  memory never reach Django and are not counted here.
- Rooms: the conductor (collab/conductor.py) reports each tick (`rooms_observe`,
  `chunk_leads_observe`), each batch it asks for (`BATCH_ROOMS`) and each remade chunk that
  lands (`STEERING_LATENCY`).
- Votes: collab/votes.py counts the votes it stores (`VOTES`; votes per second is its rate).
- The engine: generation/metrics.py (no Django there), updated where chunks are made.
- Queue depth: read from the broker when scraped (`QueueDepthCollector`).

Who may read `/metrics`: a request with `Authorization: Bearer <CHORUS_METRICS_TOKEN>` (when
that variable is set), or one from the loopback address that no proxy forwarded. Everyone else
gets a 403.

Several processes: uvicorn with `--workers N`, and Celery's prefork children, each keep their own
counters. With `PROMETHEUS_MULTIPROC_DIR` set (an empty directory, wiped at start; the images
do it) every process writes its values there and a scrape adds them up. Processes that are not
web servers (the conductor, Celery workers) expose the same on a port of their own when
`CHORUS_METRICS_PORT` is set (`serve_from_env`).
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily

from generation.metrics import ROOM_BUCKETS

logger = logging.getLogger(__name__)

LOOPBACK = frozenset({"127.0.0.1", "::1"})
FORWARDING_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")
QUEUES = ("gpu", "default")

# --- Requests ---------------------------------------------------------------------------------

REQUESTS = Counter(
    "chorus_http_requests",
    "HTTP requests answered by Django, by method, URL pattern and status.",
    ["method", "route", "status"],
)
REQUEST_SECONDS = Histogram(
    "chorus_http_request_duration_seconds",
    "Time Django took to answer, by method and URL pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

# --- Rooms (the conductor) --------------------------------------------------------------------

# Only the leading conductor ticks; "livemostrecent" keeps the value of the process that set it
# last, among those alive, when several write to one multiprocess directory.
ROOMS = Gauge(
    "chorus_rooms",
    "Rooms on air by status (live, paused), and live rooms with listeners (heard).",
    ["status"],
    multiprocess_mode="livemostrecent",
)
LISTENERS = Gauge(
    "chorus_room_listeners",
    "Listeners connected to rooms on air.",
    multiprocess_mode="livemostrecent",
)
CHUNK_LEAD = Histogram(
    "chorus_room_chunk_lead_seconds",
    "Audio made ahead of a heard room's playback clock, per room per conductor tick (0: the "
    "room has run out and its listeners hear silence).",
    buckets=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0),
)
BATCH_ROOMS = Histogram(
    "chorus_conductor_batch_rooms",
    "Rooms in one batched chunk request the conductor sends (remakes included).",
    buckets=ROOM_BUCKETS,
)
STEERING_LATENCY = Histogram(
    "chorus_steering_latency_seconds",
    "From the conductor asking for a chunk to be remade under a room's new steering (the "
    "first tick after the round closed) to the start of that remake on the room's clock.",
    buckets=(0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0, 10.0),
)
VOTES = Counter("chorus_votes", "Votes stored (rate() of it is votes per second).")


def rooms_observe(on_air: dict, listeners: dict) -> None:
    """A conductor tick's rooms: `on_air` {room: status}, `listeners` {room: count}."""
    statuses = list(on_air.values())
    for status in ("live", "paused"):
        ROOMS.labels(status).set(statuses.count(status))
    ROOMS.labels("heard").set(
        sum(1 for room, status in on_air.items() if status == "live" and listeners.get(room, 0))
    )
    LISTENERS.set(sum(listeners.get(room, 0) for room in on_air))


def chunk_leads_observe(clocks, now: float) -> None:
    """The audio ahead of each heard room's clock (collab.conductor.RoomClock) at `now`."""
    for clock in clocks:
        if clock.last is not None:
            CHUNK_LEAD.observe(max(0.0, clock.last.end_s - (now - clock.origin)))


# --- Requests, measured -----------------------------------------------------------------------


class RequestMetricsMiddleware:
    """Counts and times every request Django answers. The label is the URL pattern that matched
    (`api/v1/songs/<uuid:song_id>/`), never the path, so the series stay few."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "<unmatched>"
        REQUEST_SECONDS.labels(request.method, route).observe(time.perf_counter() - started)
        REQUESTS.labels(request.method, route, str(response.status_code)).inc()
        return response


# --- Queue depth, read at scrape time ---------------------------------------------------------


class QueueDepthCollector:
    """Messages waiting in each Celery queue (a Redis list per queue with the Redis broker).
    Nothing is reported without a Redis broker (the embedded default runs tasks in process)."""

    def __init__(self, broker_url: str, queues=QUEUES) -> None:
        self.broker_url, self.queues = broker_url, queues

    def collect(self):
        if urlsplit(self.broker_url).scheme not in ("redis", "rediss"):
            return
        import redis

        family = GaugeMetricFamily(
            "chorus_celery_queue_depth", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        try:
            client = redis.Redis.from_url(self.broker_url, socket_timeout=0.5)
            with client.pipeline(transaction=False) as pipe:
                for queue in self.queues:
                    pipe.llen(queue)
                depths = pipe.execute()
        except redis.RedisError:
            logger.warning("metrics: could not read queue depths from the broker", exc_info=True)
            return
        for queue, depth in zip(self.queues, depths, strict=True):
            family.add_metric([queue], depth)
        yield family


# --- Exposing them ----------------------------------------------------------------------------


def process_registry():
    """What this process exposes: every process's values when PROMETHEUS_MULTIPROC_DIR is set
    (added up from the files there), else this process's own."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return registry
    return REGISTRY


def metrics_allowed(request) -> bool:
    """The bearer token, if one is configured; else (or also) a direct loopback connection."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode()):
            return True
    if any(request.META.get(header) for header in FORWARDING_HEADERS):
        return False  # a proxy on this host: the loopback address says nothing of the client
    return request.META.get("REMOTE_ADDR") in LOOPBACK


def metrics_view(request):
    """`GET /metrics`: Prometheus' text format (webapp/urls.py)."""
    if not metrics_allowed(request):
        return HttpResponse(
            "Metrics need a bearer token (CHORUS_METRICS_TOKEN) or a loopback connection.\n",
            status=403,
            content_type="text/plain",
        )
    queues = CollectorRegistry(auto_describe=False)
    queues.register(QueueDepthCollector(settings.CELERY_BROKER_URL))
    body = generate_latest(process_registry()) + generate_latest(queues)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def serve_from_env() -> int | None:
    """For processes that are not web servers (the conductor, Celery workers): serve the metrics
    on CHORUS_METRICS_PORT (all interfaces: it is scraped by pod or container address; keep the
    port off public networks). Returns the port, or None when the variable is not set."""
    port = os.environ.get("CHORUS_METRICS_PORT")
    if not port:
        return None
    start_http_server(int(port), addr="0.0.0.0", registry=process_registry())  # noqa: S104  # nosec B104
    logger.info("metrics: serving on port %s", port)
    return int(port)


def process_exited(pid: int) -> None:
    """A process of this pod that wrote to PROMETHEUS_MULTIPROC_DIR is gone: its live gauges
    stop counting (its counters and histograms stay in the sums, as they should)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
