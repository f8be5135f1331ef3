"""Chorus in service mode across the hosts of a lab (tests/bench/netns.py): PostgreSQL and
Redis of their own, uvicorn web nodes, Celery `gpu` workers with the shipped model, the
conductor. Shared by bench_scale.py and soak.py.

Every process is started as deploy/ runs it, with the same settings, but each in a host of its
own and talking to the others over the lab's bridge. The media directory is one directory in
the lab's temp dir, which every host sees (a shared volume, as deploy/ mounts one).

Also here: how each server process is sampled (CPU seconds and resident memory of its whole
process group, from /proc, so a Celery worker counts its pool child too), and the Prometheus
counters each web node answered with.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.netns import Host, Lab, PostgresServer, Process, RedisServer, tail

REPO = Path(__file__).resolve().parents[2]
APP_DB = "chorus"
WEB_PORT = 8000
METRICS_TOKEN = "lab-metrics"  # noqa: S105 (a throwaway lab's)
START_TIMEOUT_S = 90
WARM_RSS_MB = 600  # a gpu worker's child above this has loaded the model (about 1.1 GB)
PAGE = os.sysconf("SC_PAGE_SIZE")
TICK = os.sysconf("SC_CLK_TCK")
ANCHORS = (
    "warm lo-fi beat with soft piano",
    "dark techno pulse",
    "acoustic folk guitar",
    "funky disco groove",
    "cinematic strings",
    "chiptune arcade melody",
    "mellow saxophone jazz",
    "heavy rock drums",
)


def chorus_env(lab: Lab, pg: PostgresServer, redis: RedisServer, web_hosts: list[Host]) -> dict:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DATABASE_URL=f"{pg.url}/{APP_DB}",
        REDIS_URL=redis.url(0),
        CHORUS_CACHE_NAMESPACE="chorus-lab",
        CHORUS_MEDIA_ROOT=str(lab.tmp / "media"),
        DJANGO_SECRET_KEY="lab-secret-key-not-used-anywhere-else",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS=",".join(h.address for h in web_hosts),
        DJANGO_SECURE_SSL_REDIRECT="0",
        CHORUS_METRICS_TOKEN=METRICS_TOKEN,
        CHORUS_LOG_LEVEL=os.environ.get("CHORUS_LAB_LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
    )
    for name in ("CELERY_BROKER_URL", "PROMETHEUS_MULTIPROC_DIR", "CHORUS_METRICS_PORT"):
        env.pop(name, None)
    return env


def prepare_database(pg: PostgresServer, env: dict, *, log) -> None:
    """Create the app's database and migrate it (from this namespace, over the bridge)."""
    import psycopg

    with psycopg.connect(f"{pg.url}/postgres", autocommit=True, connect_timeout=10) as conn:
        conn.execute(f"CREATE DATABASE {APP_DB}")
    started = time.monotonic()
    run_python(env, "manage.py", "migrate", "--noinput", "-v", "0", timeout=600)
    log(f"   migrated in {time.monotonic() - started:.0f} s")


def run_python(env: dict, *args: str, timeout: int = 300) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, timeout=timeout, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def seed(env: dict, **spec) -> dict:
    """Rooms (each with a host of its own, signed in, and a few ideas on its ballot) and
    signed-out sessions, made in a subprocess with Django set up; what it made."""
    out = run_python(env, "-m", "tests.bench.scale_cluster", "seed", json.dumps(spec))
    return json.loads(next(x for x in out.splitlines() if x.startswith("SEED_JSON "))[10:])


def _seed(
    rooms: int, sessions: int, round_length_s: int, ideas: list[str], mode: str = "friends"
) -> dict:
    import django

    django.setup()

    from datetime import timedelta

    from django.contrib.auth import get_user_model
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.test import Client
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    from collab import services

    made = []
    for n in range(rooms):
        host = get_user_model().objects.create_user(f"lab_host_{n}", password="lab-host-password")
        room = services.room_create(
            host=host,
            title=f"Lab room {n + 1}",
            anchor_prompt=ANCHORS[n % len(ANCHORS)],
            mode=mode,
            visibility="public",
            round_length_s=round_length_s,
            seed=n + 1,
        )
        proposals = [services.proposal_create(room=room, user=host, text=t).pk for t in ideas]
        browser = Client()
        browser.force_login(host)
        made.append(
            {
                "id": str(room.pk),
                "proposals": proposals,
                "host_session": browser.cookies["sessionid"].value,
            }
        )
    expires = timezone.now() + timedelta(days=1)
    empty = SessionStore().encode({})
    keys = [get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(sessions)]
    Session.objects.bulk_create(
        [Session(session_key=k, session_data=empty, expire_date=expires) for k in keys],
        batch_size=1000,
    )
    return {"rooms": made, "sessions": keys}


# --- The server processes -------------------------------------------------------------------


@dataclass
class WebNode:
    host: Host
    process: Process

    @property
    def origin(self) -> str:
        return f"http://{self.host.address}:{WEB_PORT}"

    def room_url(self, room: str) -> str:
        return f"ws://{self.host.address}:{WEB_PORT}/ws/rooms/{room}/"


def start_web(host: Host, env: dict, lab: Lab) -> WebNode:
    """One uvicorn process on the host's address, as the web image runs it."""
    command = [sys.executable, "-m", "uvicorn", "webapp.asgi:application"]
    command += ["--host", host.address, "--port", str(WEB_PORT), "--no-access-log"]
    command += ["--loop", "uvloop", "--http", "httptools", "--lifespan", "off"]
    command += ["--backlog", "4096", "--log-level", "warning"]
    process = host.spawn(command, log=lab.tmp / f"{host.name}.log", env=env, cwd=REPO)
    return WebNode(host, process)


def wait_ready(node: WebNode, timeout_s: float = START_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not node.process.alive():
            raise RuntimeError(f"{node.host.name} exited:\n{tail(node.process.log)}")
        try:
            with urllib.request.urlopen(f"{node.origin}/readyz", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{node.host.name} was not ready within {timeout_s} s")


def start_worker(host: Host, env: dict, lab: Lab, *, threads: int) -> Process:
    """A Celery worker on queue `gpu` (concurrency 1, prefetch 1, acks late), the shipped model
    on this CPU with `threads` torch threads."""
    command = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu", "-c", "1"]
    command += ["--prefetch-multiplier", "1", "-n", f"{host.name}@%h", "--without-mingle"]
    # INFO: Celery logs each task's run time ("succeeded in"), which batch_times reads back
    command += ["--without-gossip", "--loglevel", "INFO"]
    worker_env = {**env, "CHORUS_TORCH_THREADS": str(threads), "CHORUS_LOG_LEVEL": "INFO"}
    return host.spawn(command, log=lab.tmp / f"{host.name}.log", env=worker_env, cwd=REPO)


BATCH_DONE = re.compile(r"rooms_next_chunks\[[^\]]+\] succeeded in ([0-9.]+)s")


def batch_times(worker: Process) -> dict:
    """How long the worker took over each batch of rooms' chunks (Celery's own timing, from
    its log): the compute, without the broker, the store and the conductor's tick around it."""
    try:
        text = worker.log.read_text(errors="replace")
    except OSError:
        return {}
    times = sorted(float(t) for t in BATCH_DONE.findall(text))
    if not times:
        return {"batches": 0}
    return {
        "batches": len(times),
        "p50_s": round(times[len(times) // 2], 3),
        "p90_s": round(times[int(len(times) * 0.9)], 3),
        "max_s": round(times[-1], 3),
    }


def start_conductor(host: Host, env: dict, lab: Lab) -> Process:
    return host.spawn(
        [sys.executable, "manage.py", "conductor"],
        log=lab.tmp / f"{host.name}.log",
        env=env,
        cwd=REPO,
    )


# --- Sampling processes ---------------------------------------------------------------------


def proc_table() -> dict[int, tuple[int, int, int, int, int]]:
    """Every process: pid -> (process group, parent, CPU ticks, resident pages, CPU ticks of
    its children that have exited and been waited for)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        # fields[0] is field 3 of proc(5): ppid 4, pgrp 5, utime 14, stime 15, cutime 16,
        # cstime 17, rss 24
        table[int(stat.parent.name)] = (
            int(fields[2]),
            int(fields[1]),
            int(fields[11]) + int(fields[12]),
            int(fields[21]),
            int(fields[13]) + int(fields[14]),
        )
    return table


def group_usage(table: dict, pgid: int) -> tuple[float, float, list[float]]:
    """(CPU seconds, resident MB, each process's resident MB) of a process group."""
    members = [v for v in table.values() if v[0] == pgid]
    cpu = sum(m[2] for m in members) / TICK
    each = [m[3] * PAGE / 2**20 for m in members]
    return cpu, sum(each), each


def tree_usage(table: dict, pid: int) -> tuple[float, float]:
    """(CPU seconds, resident MB) of a process and its children (PostgreSQL's backends run in
    sessions of their own). CPU includes the children that have exited (the parent's cutime
    and cstime), so it only grows as backends come and go."""
    members = [v for p, v in table.items() if p == pid or v[1] == pid]
    return (
        (sum(m[2] for m in members) + table.get(pid, (0, 0, 0, 0, 0))[4]) / TICK,
        sum(m[3] for m in members) * PAGE / 2**20,
    )


@dataclass
class Sample:
    at: float
    cpu_s: dict[str, float]
    rss_mb: dict[str, float]


@dataclass
class Sampler:
    """CPU seconds and resident memory of named process groups (and of PostgreSQL's tree),
    every `every_s`, in a thread."""

    groups: dict[str, Process]
    every_s: float = 1.0
    postgres: PostgresServer | None = None
    samples: list[Sample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.every_s):
                return

    def sample(self) -> Sample:
        table = proc_table()
        cpu, rss = {}, {}
        for name, process in self.groups.items():
            if process.alive():
                cpu[name], rss[name], _ = group_usage(table, process.pid)
        if self.postgres is not None and (pid := self.postgres.postmaster_pid()):
            cpu["postgres"], rss["postgres"] = tree_usage(table, pid)
        sample = Sample(time.time(), cpu, rss)
        self.samples.append(sample)
        return sample

    def cores(self, start: float, end: float) -> dict[str, float]:
        """Cores each group used on average between two moments (groups alive throughout)."""
        inside = [s for s in self.samples if start <= s.at <= end]
        if len(inside) < 2:
            return {}
        first, last = inside[0], inside[-1]
        span = max(1e-9, last.at - first.at)
        return {
            name: round((last.cpu_s[name] - first.cpu_s[name]) / span, 3)
            for name in first.cpu_s
            if name in last.cpu_s
        }

    def rss_at(self, moment: float) -> dict[str, float]:
        before = [s for s in self.samples if s.at <= moment] or self.samples[:1]
        return {name: round(mb, 1) for name, mb in before[-1].rss_mb.items()}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def worker_warm(process: Process) -> bool:
    """Whether a gpu worker's pool child has loaded the model (its resident memory)."""
    _, _, each = group_usage(proc_table(), process.pid)
    return any(mb > WARM_RSS_MB for mb in each)


def pool_busy(process: Process, window_s: float = 0.04) -> bool:
    """Whether a worker's processes are computing right now: at least 3/4 of a core's worth of
    CPU ticks over `window_s` (an idle worker uses none)."""
    before = group_usage(proc_table(), process.pid)[0]
    time.sleep(window_s)
    return group_usage(proc_table(), process.pid)[0] - before >= 0.75 * window_s


def http_5xx(node: WebNode) -> int | None:
    """5xx answers the node's Django counted (`chorus_http_requests_total`); None if the node
    did not answer."""
    request = urllib.request.Request(  # noqa: S310 (http, to the lab)
        f"{node.origin}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (the lab)
            text = resp.read().decode()
    except OSError:
        return None
    total = 0
    for line in text.splitlines():
        if line.startswith("chorus_http_requests_total{") and 'status="5' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def error_lines(logs: dict[str, Path], top: int = 8) -> list[str]:
    """The most frequent error lines of the servers' logs (for the report, not a verdict)."""
    lines: dict[str, int] = {}
    for name, path in logs.items():
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if "Error" in line or "Traceback" in line or "ERROR" in line:
                key = f"{name}: {line.strip()[:160]}"
                lines[key] = lines.get(key, 0) + 1
    return [f"{n} x {k}" for k, n in sorted(lines.items(), key=lambda kv: -kv[1])[:top]]


def chunk_rows(pg_url: str) -> dict[str, list[tuple]]:
    """Every room's final chunk rows: room -> [(id, sequence, revision, start_s, duration_s,
    created_at)]."""
    import psycopg

    rows: dict[str, list[tuple]] = {}
    with psycopg.connect(f"{pg_url}/{APP_DB}", connect_timeout=10) as conn:
        for room, *row in conn.execute(
            "SELECT room_id::text, id, sequence, revision, start_s, duration_s,"
            " extract(epoch FROM created_at)::float8 FROM collab_chunk ORDER BY sequence"
        ):
            rows.setdefault(room, []).append(tuple(row))
    return rows


def origins(pg_url: str) -> dict[str, float]:
    """Every room's timeline origin (its creation time, as room_view gives it)."""
    import psycopg

    with psycopg.connect(f"{pg_url}/{APP_DB}", connect_timeout=10) as conn:
        return dict(
            conn.execute("SELECT id::text, extract(epoch FROM created_at)::float8 FROM collab_room")
        )


def vote_rows(pg_url: str) -> tuple[dict[tuple[int, str], int], dict[int, int], dict]:
    """({(round id, voter key): proposal id}, {proposal id: round id}, {round id: closed at})."""
    import psycopg

    with psycopg.connect(f"{pg_url}/{APP_DB}", connect_timeout=10) as conn:
        votes = {
            (r, k): p
            for r, k, p in conn.execute("SELECT round_id, voter_key, proposal_id FROM collab_vote")
        }
        rounds = dict(conn.execute("SELECT id, round_id FROM collab_proposal"))
        closed = dict(
            conn.execute("SELECT id, extract(epoch FROM closed_at)::float8 FROM collab_round")
        )
    return votes, rounds, closed


if __name__ == "__main__":
    if sys.argv[1:2] == ["seed"]:
        print("SEED_JSON " + json.dumps(_seed(**json.loads(sys.argv[2]))), flush=True)
