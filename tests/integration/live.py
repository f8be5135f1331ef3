"""Real server processes for integration tests: the web server (uvicorn serving webapp.asgi)
and the conductor, in service mode on the test database, on 127.0.0.1 only."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import suppress
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_env(redis_url: str) -> dict[str, str]:
    """Service mode on the test database (the rows the test made) and this run's Redis keys."""
    db = connection.settings_dict
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webapp.settings",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
        f"{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": redis_url,
        "CHORUS_CACHE_NAMESPACE": settings.CACHE_NAMESPACE,
        "CHORUS_MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "CHORUS_GENERATION_BACKEND": settings.GENERATION_BACKEND,
        "CHORUS_TASKS_INPROCESS": "0",
        "DJANGO_SECRET_KEY": os.environ.get("DJANGO_SECRET_KEY", "integration-test"),
        "DJANGO_SECURE_SSL_REDIRECT": "0",
        "CHORUS_LOG_LEVEL": "WARNING",
    }


class Process:
    """A child process in a session of its own, its output in `log`; stopped with its group."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            start_new_session=True,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        print(self.log.read_text(errors="replace")[-20000:])  # shown when the test fails


class WebServer(Process):
    """uvicorn serving webapp.asgi; ready once /healthz answers."""

    def __init__(self, redis_url: str, log: Path) -> None:
        self.port = free_port()
        command = [sys.executable, "-m", "uvicorn", "webapp.asgi:application"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--lifespan", "off"]
        super().__init__([*command, "--log-level", "warning"], service_env(redis_url), log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.alive(), self.log.read_text(errors="replace")
            with suppress(OSError), urllib.request.urlopen(self.url("/healthz"), timeout=1):  # noqa: S310
                return
            time.sleep(0.2)
        raise AssertionError("the web server did not start")

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"


class ConductorProcess(Process):
    """`manage.py conductor`, ticking while it holds this run's conductor lock."""

    def __init__(self, redis_url: str, log: Path) -> None:
        command = [sys.executable, "manage.py", "conductor"]
        super().__init__(command, service_env(redis_url), log)
