"""API benchmark: the public feed (list) and song detail under 50 concurrent HTTP connections.

    python -m tests.bench.bench_api [--songs 10000] [--duration 15] [--connections 50]
                                    [--threads 2] [--workers 2] [--server uvicorn]

What it does, in order:

1. Drops and creates the PostgreSQL database `chorus_bench` (never `test`, which the test suite
   uses), owned by a role of the same name with a connection limit (the server is shared; see
   BENCH_ROLE), flushes Redis db 2, and runs `manage.py migrate` against them in service mode.
2. Loads --songs songs across ~200 users with bulk_create, in a subprocess with the same
   environment: mostly ready, 60 % public / 20 % unlisted / 20 % private, a long-tailed
   like_count, 800 peaks per ready song, created_at spread over 90 days. No audio files: list
   and detail never open them.
3. Starts the server on 127.0.0.1 (a free port), by default as production runs it: uvicorn
   serving webapp.asgi with uvloop, httptools and --workers N (--server picks gunicorn with
   uvicorn workers, or a WSGI variant for comparison), and waits for /healthz and every worker.
4. Drives it with wrk (Debian package `wrk`) and tests/bench/wrk_paths.lua: a warm-up run, then
   --duration seconds each against `GET /api/v1/feed/`, `GET /api/v1/feed/?sort=liked` and
   `GET /api/v1/songs/<id>/` over every public ready song (a random id per request).
5. Stops the server (always: the whole process group, bounded in time) and prints a summary,
   then, as the LAST line, one JSON object (api_list_p99_ms, api_detail_p99_ms, ...).

Besides latency and req/s it reports the server's CPU time per request (all its processes, from
/proc): on a shared 2-core machine latency moves with other people's load, CPU per request much
less. With a closed loop of C connections, latency ~= C / throughput: p99 <= 20 ms at 50
connections needs well over 2,500 req/s.

Requests are anonymous, as most feed traffic is. Rate limits are OFF for the run
(CHORUS_RATELIMIT_ENABLED=0): every request comes from one address and would otherwise hit the
per-address `api` limit (50 requests/s) within the first second; the benchmark measures the
endpoints, not the limiter. `--workers 1,2,3` runs one pass per worker count and reports the best.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import importlib.util
import json
import os
import random
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WRK_SCRIPT = Path(__file__).with_name("wrk_paths.lua")

BENCH_DB = "chorus_bench"
PG_HOST = os.environ.get("CHORUS_BENCH_PG_HOST", "127.0.0.1:5432")
PG_ADMIN = f"postgres://postgres@{PG_HOST}"  # drops and creates the database and its role
# The app connects as its own role, not as the superuser: PostgreSQL exempts superusers from
# connection limits, and this server is shared (the test suite uses `test` on it). An app that
# opens too many connections then fails in its own database instead of starving everyone else,
# and the superuser_reserved_connections stay free.
BENCH_ROLE = "chorus_bench"
DB_CONNECTION_LIMIT = 40  # of PostgreSQL's max_connections (100 by default)
PG_APP = f"postgres://{BENCH_ROLE}@{PG_HOST}"
REDIS_URL = os.environ.get("CHORUS_BENCH_REDIS", "redis://127.0.0.1:6379/2")
HOST = "127.0.0.1"

TARGET_LIST_P99_MS = 50
TARGET_DETAIL_P99_MS = 20

LIST_PATH = "/api/v1/feed/"
LIST_LIKED_PATH = "/api/v1/feed/?sort=liked"
DETAIL_PATH = "/api/v1/songs/{id}/"

SERVER_START_TIMEOUT_S = 90
SERVER_STOP_TIMEOUT_S = 10
MIGRATE_TIMEOUT_S = 300
LOAD_TIMEOUT_S = 600


def log(message: str = "") -> None:
    print(message, flush=True)


def bench_env() -> dict[str, str]:
    """Service mode against the benchmark database and Redis db, production-like settings."""
    env = dict(os.environ)
    env.update(
        # An experimental settings module (e.g. a copy under /tmp on PYTHONPATH) can be named here.
        DJANGO_SETTINGS_MODULE=os.environ.get("CHORUS_BENCH_SETTINGS", "webapp.settings"),
        DATABASE_URL=f"{PG_APP}/{BENCH_DB}",
        REDIS_URL=REDIS_URL,
        DJANGO_SECRET_KEY="bench",
        DJANGO_DEBUG="0",
        CHORUS_RATELIMIT_ENABLED="0",
        DJANGO_ALLOWED_HOSTS=f"{HOST},localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        CHORUS_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


# --- Database and data ----------------------------------------------------------------------


def reset_stores() -> None:
    """Drop and create the benchmark database; flush the benchmark Redis db."""
    import psycopg
    import redis
    from psycopg import sql

    with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True, connect_timeout=10) as conn:
        db, role = sql.Identifier(BENCH_DB), sql.Identifier(BENCH_ROLE)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BENCH_ROLE,))
        if exists.fetchone() is None:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        conn.execute(
            sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(
                role, sql.Literal(DB_CONNECTION_LIMIT)
            )
        )
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
        timeout=MIGRATE_TIMEOUT_S,
    )


def load(env: dict[str, str], songs: int, users: int) -> dict:
    """Run the loader (below) in a subprocess with Django set up against the benchmark db."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.bench.bench_api",
            "--load-only",
            "--songs",
            str(songs),
            "--users",
            str(users),
        ],
        cwd=REPO,
        env=env,
        timeout=LOAD_TIMEOUT_S,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"loader failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    for line in proc.stdout.splitlines():
        if line.startswith("LOAD_JSON "):
            return json.loads(line[len("LOAD_JSON ") :])
    raise RuntimeError(f"loader printed no LOAD_JSON line:\n{proc.stdout}\n{proc.stderr}")


# Vocabulary for titles, prompts and tags (split into words by the loader).
WORDS_TEXT = (
    "warm lo-fi beat soft piano rainy night jazz trio upbeat synthwave driving bass "
    "cinematic strings slow ambient pads acoustic guitar folk ballad funky disco groove "
    "dreamy shoegaze heavy drums chiptune arcade melody orchestral choir epic rise "
    "mellow saxophone late train bossa nova sunset dark techno pulse vinyl crackle"
)
TAGS_TEXT = (
    "lo-fi jazz ambient synthwave folk techno house cinematic piano guitar chill upbeat "
    "acoustic orchestral chiptune disco funk dreamy dark epic"
)
MODEL_VERSIONS = ("chorus-music-1.2.0", "chorus-music-1.3.1", "chorus-music-1.3.2", "placeholder")


def load_songs(n_songs: int, n_users: int) -> dict:
    """Users and songs with bulk_create. Runs inside the loader subprocess (Django set up)."""
    import django

    django.setup()

    import numpy as np
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection, transaction
    from django.utils import timezone

    from webapp.songs.models import PEAKS_PER_SONG, Song

    started = time.perf_counter()
    words, tags = WORDS_TEXT.split(), TAGS_TEXT.split()
    rng = random.Random(20240611)
    nprng = np.random.default_rng(20240611)
    now = timezone.now()
    span_s = 90 * 24 * 3600

    # created_at and updated_at are auto_now(_add): let the loader set them (this process only).
    for name in ("created_at", "updated_at"):
        field = Song._meta.get_field(name)
        field.auto_now = field.auto_now_add = False

    user_model = get_user_model()
    unusable = make_password(None)
    with transaction.atomic():
        users = user_model.objects.bulk_create(
            [
                user_model(
                    username=f"bench_user_{i:03d}",
                    email=f"bench_user_{i:03d}@example.com",
                    password=unusable,
                    date_joined=now - timedelta(days=120),
                )
                for i in range(n_users)
            ]
        )
        # Some users make far more songs than others.
        weights = [1.0 / (rank + 1) ** 0.7 for rank in range(n_users)]
        owners = rng.choices(users, weights=weights, k=n_songs)

        statuses = rng.choices(
            [Song.Status.READY, Song.Status.FAILED, Song.Status.GENERATING, Song.Status.QUEUED],
            weights=[92, 4, 2, 2],
            k=n_songs,
        )
        visibilities = rng.choices(
            [Song.Visibility.PUBLIC, Song.Visibility.UNLISTED, Song.Visibility.PRIVATE],
            weights=[60, 20, 20],
            k=n_songs,
        )
        # Peaks: a loudness envelope with noise, 3 decimals, as audio.compute_peaks writes them.
        x = np.linspace(0.0, 1.0, PEAKS_PER_SONG)
        batch: list[Song] = []
        written = 0
        for i in range(n_songs):
            status = statuses[i]
            ready = status == Song.Status.READY
            created = now - timedelta(seconds=rng.uniform(0, span_s))
            duration = round(rng.uniform(10.0, 240.0), 1)
            prompt = " ".join(rng.choices(words, k=rng.randint(6, 30)))
            if ready:
                envelope = 0.35 + 0.4 * np.sin(np.pi * x) ** 0.5
                peaks = np.clip(envelope + nprng.normal(0.0, 0.12, PEAKS_PER_SONG), 0.0, 1.0)
                peaks_list = np.round(peaks, 3).tolist()
            else:
                peaks_list = []
            # Long-tailed likes: most songs have a handful, a few have thousands.
            likes = min(int(rng.paretovariate(1.1)) - 1 + rng.randint(0, 3), 50_000)
            model_version = rng.choice(MODEL_VERSIONS) if ready else ""
            batch.append(
                Song(
                    # Ids and tokens from the seeded generator: every run loads the same data.
                    id=uuid.UUID(int=rng.getrandbits(128), version=4),
                    share_token=secrets_like_token(rng),
                    owner=owners[i],
                    title=" ".join(w.capitalize() for w in rng.choices(words, k=rng.randint(2, 5))),
                    prompt=prompt,
                    duration_s=duration,
                    seed=rng.randint(0, 2**31 - 1),
                    guidance=round(rng.uniform(1.0, 6.0), 1),
                    style_tags=rng.sample(tags, k=rng.randint(0, 4)),
                    status=status,
                    progress=1.0 if ready else round(rng.uniform(0.0, 0.9), 2),
                    error="Generation failed: out of memory." if status == "failed" else "",
                    attempts=1 if status != Song.Status.QUEUED else 0,
                    sample_rate=rng.choice((32000, 44100)) if ready else None,
                    audio_duration_s=duration if ready else None,
                    peaks=peaks_list,
                    model_version=model_version,
                    is_placeholder=model_version == "placeholder",
                    provenance={"backend": model_version, "steps": 50} if ready else {},
                    visibility=visibilities[i],
                    like_count=likes,
                    created_at=created,
                    updated_at=created,
                    started_at=created if status != Song.Status.QUEUED else None,
                    finished_at=created + timedelta(seconds=duration) if ready else None,
                )
            )
            if len(batch) >= 500:
                Song.objects.bulk_create(batch)
                written += len(batch)
                batch = []
        if batch:
            Song.objects.bulk_create(batch)
            written += len(batch)

    with connection.cursor() as cursor:  # fresh statistics, as on a long-lived database
        for table in (Song._meta.db_table, user_model._meta.db_table):
            cursor.execute(f"VACUUM ANALYZE {connection.ops.quote_name(table)}")

    by_visibility = {v: visibilities.count(v) for v in Song.Visibility.values}
    by_status = {s: statuses.count(s) for s in Song.Status.values}
    return {
        "songs": written,
        "users": n_users,
        "by_visibility": by_visibility,
        "by_status": by_status,
        "seconds": round(time.perf_counter() - started, 2),
    }


def existing_stats() -> dict:
    """What an earlier run loaded (for --reuse-db)."""
    import psycopg

    with psycopg.connect(f"{PG_APP}/{BENCH_DB}", connect_timeout=10) as conn:
        by_visibility = dict(
            conn.execute("SELECT visibility, count(*) FROM songs_song GROUP BY 1").fetchall()
        )
        by_status = dict(
            conn.execute("SELECT status, count(*) FROM songs_song GROUP BY 1").fetchall()
        )
        users = conn.execute("SELECT count(*) FROM auth_user").fetchone()[0]
    return {
        "songs": sum(by_visibility.values()),
        "users": users,
        "by_visibility": by_visibility,
        "by_status": by_status,
        "seconds": "(reused)",
    }


def secrets_like_token(rng: random.Random) -> str:
    """A share token of the real shape (token_urlsafe(16)), from the seeded generator."""
    return base64.urlsafe_b64encode(rng.randbytes(16)).rstrip(b"=").decode()


def write_detail_paths(path: Path) -> int:
    """Every public, ready song's detail path, one a line (wrk picks one at random per request)."""
    import psycopg

    with psycopg.connect(f"{PG_APP}/{BENCH_DB}", connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT id FROM songs_song WHERE visibility = 'public' AND status = 'ready'"
        ).fetchall()
    path.write_text("".join(DETAIL_PATH.format(id=row[0]) + "\n" for row in rows))
    return len(rows)


# --- Server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


SERVERS = ("uvicorn", "gunicorn", "uvicorn-wsgi", "gunicorn-sync", "gunicorn-gthread")


def server_command(server: str, workers: int, port: int) -> tuple[list[str], str]:
    """The command, and the log line that each worker prints once it has loaded the app.

    uvicorn (the default) and gunicorn (uvicorn workers) serve webapp.asgi, as production does.
    The WSGI variants serve webapp.wsgi, for comparison: the API is synchronous Django, which
    ASGI runs in a fresh thread per request. gunicorn is not a project dependency; the gunicorn
    variants need it installed.
    """
    bind = f"{HOST}:{port}"
    uvicorn = [sys.executable, "-m", "uvicorn", "--host", HOST, "--port", str(port)]
    uvicorn += ["--workers", str(workers), "--no-access-log", "--log-level", "info"]
    uvicorn += ["--loop", "uvloop", "--http", "httptools", "--lifespan", "off"]
    gunicorn = [sys.executable, "-m", "gunicorn", "--bind", bind, "--workers", str(workers)]
    gunicorn += ["--log-level", "info", "--backlog", "2048"]
    if server == "uvicorn":
        return [*uvicorn, "webapp.asgi:application"], "Started server process"
    if server == "uvicorn-wsgi":
        return [*uvicorn, "--interface", "wsgi", "webapp.wsgi:application"], (
            "Started server process"
        )
    if server == "gunicorn":
        worker = ["--worker-class", "uvicorn.workers.UvicornWorker"]
        return [*gunicorn, *worker, "webapp.asgi:application"], "Started server process"
    # The sync variants load the app once, before forking (--preload): a worker that has booted
    # is ready.
    if server == "gunicorn-sync":
        worker = ["--worker-class", "sync", "--preload"]
        return [*gunicorn, *worker, "webapp.wsgi:application"], "Booting worker with pid"
    if server == "gunicorn-gthread":
        worker = ["--worker-class", "gthread", "--threads", "4", "--preload"]
        return [*gunicorn, *worker, "webapp.wsgi:application"], "Booting worker with pid"
    raise ValueError(f"unknown server {server!r}")


def start_server(
    server: str, workers: int, env: dict[str, str], log_path: Path
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    cmd, ready_line = server_command(server, workers, port)
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop_server kills every worker
    )
    log_file.close()
    try:
        wait_for_server(proc, port, workers, ready_line, log_path)
    except BaseException:
        stop_server(proc)
        raise
    return proc, port


def wait_for_server(
    proc: subprocess.Popen, port: int, workers: int, ready_line: str, log_path: Path
) -> None:
    """/healthz answers, and every worker has loaded the app (none joins mid-run)."""
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    healthy = False
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{tail(log_path)}")
        if not healthy:
            url = f"http://{HOST}:{port}/healthz"
            with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
                healthy = resp.status == 200
        if healthy and log_path.read_text(errors="replace").count(ready_line) >= workers:
            return
        time.sleep(0.25)
    raise RuntimeError(
        f"server not ready within {SERVER_START_TIMEOUT_S} s (healthz={healthy}):\n{tail(log_path)}"
    )


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM to the whole process group, SIGKILL after SERVER_STOP_TIMEOUT_S."""
    pgid = proc.pid  # start_new_session: the group id is the leader's pid
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    try:
        proc.wait(timeout=SERVER_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        proc.wait(timeout=5)
    # Workers outlive a leader killed hard: make sure nothing of the group is left.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


# --- Load generation ------------------------------------------------------------------------


def preflight(port: int, detail_paths: Path) -> dict[str, int]:
    """One request to each endpoint: 200, the expected shape, and the response sizes."""
    sizes = {}
    first_detail = detail_paths.read_text().split("\n", 1)[0]
    endpoints = (("list", LIST_PATH), ("list_liked", LIST_LIKED_PATH), ("detail", first_detail))
    for name, path in endpoints:
        request = urllib.request.Request(
            f"http://{HOST}:{port}{path}", headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 (http to 127.0.0.1)
            if resp.status != 200:
                raise RuntimeError(f"{path} answered {resp.status}")
            body = resp.read()
        data = json.loads(body)
        if name.startswith("list") and len(data.get("results", [])) == 0:
            raise RuntimeError(f"{path} returned no songs: {body[:200]!r}")
        if name == "detail" and len(data.get("peaks", [])) == 0:
            raise RuntimeError(f"{path} returned a song without peaks")
        sizes[name] = len(body)
    return sizes


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited meanwhile
        if int(fields[2]) == pgid:  # fields[2]: pgrp; [11], [12]: utime, stime
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def run_wrk(
    port: int,
    paths_file: Path,
    *,
    duration: int,
    connections: int,
    threads: int,
    server_pgid: int | None = None,
) -> dict:
    cmd = [
        "wrk",
        "--threads",
        str(threads),
        "--connections",
        str(connections),
        "--duration",
        f"{duration}s",
        "--timeout",
        "10s",
        "--script",
        str(WRK_SCRIPT),
        f"http://{HOST}:{port}",
        "--",
        str(paths_file),
    ]
    server_cpu0 = group_cpu_s(server_pgid) if server_pgid else 0.0
    wrk_cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    wrk_cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_cpu = (group_cpu_s(server_pgid) - server_cpu0) if server_pgid else 0.0
    wrk_cpu = (wrk_cpu1.ru_utime + wrk_cpu1.ru_stime) - (wrk_cpu0.ru_utime + wrk_cpu0.ru_stime)
    for line in proc.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            raw = json.loads(line[len("WRK_JSON ") :])
            break
    else:
        raise RuntimeError(
            f"wrk printed no WRK_JSON line (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    lat = raw["latency_us"]
    errors = raw["errors"]
    seconds = raw["duration_us"] / 1e6
    return {
        "requests": raw["requests"],
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "p999_ms": round(lat["p999"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "mean_ms": round(lat["mean"] / 1000, 2),
        "non_2xx": raw["non_2xx"],
        "socket_errors": errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        "kb_per_response": round(raw["bytes"] / max(raw["requests"], 1) / 1024, 2),
        # CPU per request, robust to other load on the machine (latency and req/s are not):
        # the server's processes (all workers), and wrk itself. PostgreSQL's is not counted.
        "server_cpu_ms_per_req": round(server_cpu * 1000 / max(raw["requests"], 1), 2),
        "wrk_cpu_ms_per_req": round(wrk_cpu * 1000 / max(raw["requests"], 1), 3),
        "server_cpu_cores": round(server_cpu / seconds, 2) if seconds else 0.0,
    }


def bench_one_config(args, server: str, workers: int, env, paths: dict[str, Path], tmp: Path):
    """Start the server with `workers`, warm up, measure each endpoint, stop the server."""
    log_path = tmp / f"server-{server}-{workers}.log"
    log(f"\n== {server}, {workers} worker(s): starting")
    proc, port = start_server(server, workers, env, log_path)
    try:
        sizes = preflight(port, paths["detail"])
        log(f"   up on {HOST}:{port}; response bytes: {sizes}")
        if args.warmup > 0:
            for name in ("list", "list_liked", "detail"):
                run_wrk(
                    port,
                    paths[name],
                    duration=args.warmup,
                    connections=args.connections,
                    threads=args.threads,
                )
            log(f"   warm-up done ({args.warmup} s per endpoint)")
        results = {}
        for name in ("list", "list_liked", "detail"):
            results[name] = run_wrk(
                port,
                paths[name],
                duration=args.duration,
                connections=args.connections,
                threads=args.threads,
                server_pgid=proc.pid,
            )
            r = results[name]
            log(
                f"   {name:<11} {r['rps']:>8.1f} req/s  p50 {r['p50_ms']:>7.2f} ms  "
                f"p99 {r['p99_ms']:>7.2f} ms  non-2xx {r['non_2xx']}  "
                f"socket errors {r['socket_errors']}  "
                f"server CPU {r['server_cpu_ms_per_req']:.2f} ms/req "
                f"({r['server_cpu_cores']:.2f} cores)"
            )
        return results
    finally:
        stop_server(proc)
        log(f"   server stopped ({server}, {workers} worker(s))")
        for count, line in error_digest(log_path):
            log(f"   server log: {count} x {line}")


ERROR_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Warning)\b.*")


def error_digest(log_path: Path, top: int = 3) -> list[tuple[int, str]]:
    """The commonest exception lines of the server log (why requests failed, if they did)."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    counts = collections.Counter(
        m.group(0)[:200] for m in map(ERROR_LINE.match, text.splitlines()) if m
    )
    return [(count, line) for line, count in counts.most_common(top)]


def score(results: dict) -> tuple[bool, float]:
    """Lower is better: error-free first, then each p99 against its target, summed."""
    failed = any(r["non_2xx"] or r["socket_errors"] for r in results.values())
    ratio = (
        results["list"]["p99_ms"] / TARGET_LIST_P99_MS
        + results["detail"]["p99_ms"] / TARGET_DETAIL_P99_MS
    )
    return failed, ratio


def print_summary(
    args, sweep: dict[int, dict], best: int, load_stats: dict, loadavg, loadavg_after
) -> None:
    log("\n== API benchmark summary")
    log(
        f"   {load_stats['songs']} songs, {load_stats['users']} users "
        f"(visibility {load_stats['by_visibility']}, status {load_stats['by_status']}), "
        f"load time {load_stats['seconds']} s"
    )
    log(
        f"   wrk: {args.connections} connections, {args.threads} threads, {args.duration} s per "
        f"endpoint after a {args.warmup} s warm-up; server {args.server}; anonymous requests"
    )
    log(
        "   rate limits disabled (CHORUS_RATELIMIT_ENABLED=0): one client address would hit the "
        "per-address api limit"
    )
    log(
        f"   load average before the run: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f}, "
        f"after: {loadavg_after[0]:.2f} {loadavg_after[1]:.2f} {loadavg_after[2]:.2f} "
        f"({os.cpu_count()} CPUs; the benchmark itself adds about 2-3)"
    )
    log("")
    log(
        f"   {'workers':>7}  {'endpoint':<11} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'non-2xx':>7} {'sock err':>8} {'srv CPU ms/req':>14}"
    )
    for workers, results in sweep.items():
        for name, r in results.items():
            log(
                f"   {workers:>7}  {name:<11} {r['rps']:>8.1f} {r['p50_ms']:>8.2f} "
                f"{r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['max_ms']:>8.2f} "
                f"{r['non_2xx']:>7} {r['socket_errors']:>8} {r['server_cpu_ms_per_req']:>14.2f}"
            )
    results = sweep[best]
    log("")
    if len(sweep) > 1:
        log(f"   best worker count: {best}")
    for name, r in results.items():
        if r["non_2xx"] or r["socket_errors"]:
            log(
                f"   {name}: {r['non_2xx']} non-2xx responses and {r['socket_errors']} socket "
                "errors: its figures are not a valid measurement (see the server log lines above)"
            )
    list_ok = results["list"]["p99_ms"] <= TARGET_LIST_P99_MS and not score(results)[0]
    detail_ok = results["detail"]["p99_ms"] <= TARGET_DETAIL_P99_MS and not score(results)[0]
    log(
        f"   list   p99 {results['list']['p99_ms']:.2f} ms (target <= {TARGET_LIST_P99_MS}): "
        f"{'MET' if list_ok else 'MISSED'}"
    )
    log(
        f"   detail p99 {results['detail']['p99_ms']:.2f} ms (target <= {TARGET_DETAIL_P99_MS}): "
        f"{'MET' if detail_ok else 'MISSED'}"
    )


def parse_workers(value: str) -> list[int]:
    workers = [int(part) for part in value.split(",") if part.strip()]
    if not workers or any(w < 1 or w > 16 for w in workers):
        raise argparse.ArgumentTypeError("workers: one or more integers in 1..16, comma-separated")
    return workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--songs", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--duration", type=int, default=15, help="seconds per endpoint")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per endpoint")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument(
        "--workers",
        type=parse_workers,
        default=[2],
        help="server workers; a comma-separated list runs one pass each",
    )
    parser.add_argument("--server", choices=SERVERS, default="uvicorn")
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="keep an already loaded chorus_bench (for repeated runs)",
    )
    parser.add_argument("--load-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.load_only:  # the loader subprocess
        stats = load_songs(args.songs, args.users)
        print("LOAD_JSON " + json.dumps(stats), flush=True)
        return 0

    if shutil.which("wrk") is None:
        log("wrk not found: install the Debian package `wrk` (apt-get install -y wrk)")
        return 2
    if args.server.startswith("gunicorn") and importlib.util.find_spec("gunicorn") is None:
        log("gunicorn is not installed (it is not a project dependency): pip install gunicorn")
        return 2
    if args.duration < 1 or args.connections < 1 or args.threads < 1:
        parser.error("--duration, --connections and --threads must be positive")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections")

    # SIGTERM (CI timeouts, make being stopped) unwinds through the finally blocks too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    loadavg = os.getloadavg()
    log(f"load average: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f} ({os.cpu_count()} CPUs)")
    env = bench_env()
    if args.reuse_db:
        log(f"reusing database {BENCH_DB} (--reuse-db)")
        load_stats = existing_stats()
    else:
        started = time.perf_counter()
        reset_stores()
        migrate(env)
        log(f"database {BENCH_DB} created and migrated in {time.perf_counter() - started:.1f} s")
        load_stats = load(env, args.songs, args.users)
        log(
            f"loaded {load_stats['songs']} songs, {load_stats['users']} users in "
            f"{load_stats['seconds']} s: {load_stats['by_visibility']}, {load_stats['by_status']}"
        )

    with tempfile.TemporaryDirectory(prefix="chorus-bench-api-") as tmpdir:
        tmp = Path(tmpdir)
        paths = {
            "list": tmp / "list.txt",
            "list_liked": tmp / "list_liked.txt",
            "detail": tmp / "detail.txt",
        }
        paths["list"].write_text(LIST_PATH + "\n")
        paths["list_liked"].write_text(LIST_LIKED_PATH + "\n")
        n_detail = write_detail_paths(paths["detail"])
        log(f"detail requests spread over {n_detail} public, ready songs")

        sweep: dict[int, dict] = {}
        for workers in args.workers:
            sweep[workers] = bench_one_config(args, args.server, workers, env, paths, tmp)

    loadavg_after = os.getloadavg()
    best = min(sweep, key=lambda w: score(sweep[w]))
    print_summary(args, sweep, best, load_stats, loadavg, loadavg_after)
    results = sweep[best]
    summary = {
        "api_list_p99_ms": results["list"]["p99_ms"],
        "api_detail_p99_ms": results["detail"]["p99_ms"],
        "api_list_rps": results["list"]["rps"],
        "api_detail_rps": results["detail"]["rps"],
        "api_list_p50_ms": results["list"]["p50_ms"],
        "api_detail_p50_ms": results["detail"]["p50_ms"],
        "api_list_liked_p99_ms": results["list_liked"]["p99_ms"],
        "api_list_liked_rps": results["list_liked"]["rps"],
        "api_list_server_cpu_ms": results["list"]["server_cpu_ms_per_req"],
        "api_detail_server_cpu_ms": results["detail"]["server_cpu_ms_per_req"],
        "songs": load_stats["songs"],
        "connections": args.connections,
        "workers": best,
        "server": args.server,
        "non_2xx": sum(r["non_2xx"] for r in results.values()),
        "socket_errors": sum(r["socket_errors"] for r in results.values()),
        "ratelimit": "off",
        "load_avg_1m": round(loadavg[0], 2),
        "load_avg_1m_after": round(loadavg_after[0], 2),
        "target_list_p99_ms": TARGET_LIST_P99_MS,
        "target_detail_p99_ms": TARGET_DETAIL_P99_MS,
    }
    if len(sweep) > 1:
        summary["workers_sweep"] = {
            str(w): {
                "list_p99_ms": r["list"]["p99_ms"],
                "detail_p99_ms": r["detail"]["p99_ms"],
                "list_rps": r["list"]["rps"],
                "detail_rps": r["detail"]["rps"],
            }
            for w, r in sweep.items()
        }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
