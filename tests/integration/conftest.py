"""Real Celery workers for integration tests: separate processes on the test database and Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, name: str, queues: str) -> None:
        db = connection.settings_dict
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webapp.settings",
            # The test database, not the configured one: the worker must see the test's rows.
            "DATABASE_URL": (
                f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
                f"/{db['NAME']}"
            ),
            "CHORUS_MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "CHORUS_TASKS_INPROCESS": "0",
            # the backend the test chose (the instant tone unless a test asks for the model)
            "CHORUS_GENERATION_BACKEND": settings.GENERATION_BACKEND,
            # this run's Redis keys (the engine's room-state store lives under them too)
            "CHORUS_CACHE_NAMESPACE": settings.CACHE_NAMESPACE,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "webapp",
                "worker",
                "-Q",
                queues,
                "-c",
                "1",
                "--pool",
                "prefork",
                "--prefetch-multiplier",
                "1",
                "-n",
                f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "--loglevel",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def kill(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)

    def output(self) -> str:
        return self.process.stdout.read() if self.process.stdout else ""


@pytest.fixture
def celery_worker(transactional_db, settings):
    """Start a real `gpu`+`default` worker; tasks go through the Redis broker to it."""
    from webapp import celery as celery_module

    settings.TASKS_INPROCESS = False
    # Drop messages a previous test run left on the broker (queues are this suite's own).
    with celery_module.app.connection_for_write() as conn:
        for queue in ("gpu", "default"):
            conn.default_channel.queue_purge(queue)
    workers: list[Worker] = []

    def start(name: str = "gpu-test") -> Worker:
        worker = Worker(name, "gpu,default")
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()


def wait_for(predicate, *, timeout_s: float, every_s: float = 0.2, what: str = "condition"):
    """Poll until predicate() is truthy; a bounded wait, not a timing assertion."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"gave up waiting for {what} after {timeout_s} s")


@pytest.fixture
def store():
    """The generation store of service mode (Redis), emptied of this run's keys afterwards."""
    from generation import tasks

    st = tasks.RedisStore(os.environ["REDIS_URL"], settings.CACHE_NAMESPACE + ":gen:")
    yield st
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in client.scan_iter(settings.CACHE_NAMESPACE + ":gen:*"):
        client.delete(key)


def chunk_result(store, room: str, seq: int) -> dict | None:
    """A room chunk job's stored result, or None while there is none."""
    raw = store.get(f"chunk:{room}:{seq}")
    return json.loads(raw) if raw else None
