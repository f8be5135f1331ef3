"""Rooms benchmark: joining, a crowd of listeners, votes, and how soon a vote is heard.

    python -m tests.bench.bench_rooms [--clients 2000] [--workers 2] [--listen-s 20]
                                      [--vote-s 15] [--vote-rate 1.1] [--rounds 8] [--no-ratelimit]

Service mode as production runs it, on this machine (127.0.0.1 only):

1. Drops and creates the PostgreSQL database `chorus_bench_rooms` (owned by the connection-
   limited role of bench_api), flushes Redis db 4, migrates, and seeds (a subprocess with
   Django): a host, a public audience room, and one signed-out session per client.
2. Starts uvicorn (webapp.asgi, --workers N, the pub/sub channel layer of service mode), a
   Celery worker on queue `gpu` with the real default model, and `manage.py conductor`.
3. A *keeper* listener joins first and stays to the end, so the room plays throughout; its
   wait for the first chunk is the cold start (the worker loads the model on its first job).
4. `join_first_chunk_*`: sequential joins, each timed from opening the socket to holding a
   chunk URL (the snapshot's, if it lists chunks), once with the room quiet and once while the
   crowd listens.
5. The crowd (tests/bench/rooms_clients.py, one asyncio process, niced): --clients sockets,
   each its own signed-out participant. They listen for --listen-s seconds: each `chunk` frame's
   receipt is compared with its Chunk row's created_at (the moment the conductor recorded it;
   the frame goes out on commit) and every client must get every chunk. Then the host opens a
   fresh round with three ideas and every client votes --vote-rate times a second at random
   moments for --vote-s seconds; `votes_per_s` is acknowledged votes over the time from the
   first vote to the last answer, and `votes_lost` compares each client's last acknowledged vote
   with its row in PostgreSQL (a missing or different row is a lost vote).
6. Steering: the crowd leaves; the host proposes a fresh idea, three listeners vote for it and
   the host skips (closing the round) --rounds times, a few seconds apart. For each round, the
   first chunk whose steering (Chunk.steering) is the round's result is found in PostgreSQL;
   `steer_latency` is when it is heard (timeline_origin + start_s, plus its splice_s if it is a
   remake spliced into the chunk: the same music until there) minus Round.closed_at.
7. Stops everything (process groups, bounded) and prints a summary; the LAST line is JSON.

Rate limits stay ON by default: every client is a participant of its own and votes within the
per-connection and per-person limits (2 frames/s sustained; `room_vote` 4/s, 120/min). The
JSON says which (`ratelimit`); --no-ratelimit turns them off (CHORUS_RATELIMIT_ENABLED=0).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from tests.bench.bench_api import (
    BENCH_ROLE,
    HOST,
    PG_ADMIN,
    PG_APP,
    free_port,
    group_cpu_s,
    log,
    stop_server,
    tail,
)

REPO = Path(__file__).resolve().parents[2]
BENCH_DB = "chorus_bench_rooms"
DB_CONNECTION_LIMIT = 60
REDIS_URL = os.environ.get("CHORUS_BENCH_ROOMS_REDIS", "redis://127.0.0.1:6379/4")
NAMESPACE = "chorus-bench-rooms"
START_TIMEOUT_S = 90
COLD_START_TIMEOUT_S = 180
IDEAS = (
    "dreamy synthwave with arpeggios",
    "dark techno pulse",
    "acoustic folk guitar",
    "funky disco groove",
    "cinematic strings",
    "chiptune arcade melody",
    "mellow saxophone jazz",
    "heavy rock drums",
)
TARGETS = {
    "join_first_chunk_p50_ms": 300,
    "announce_p99_ms": 250,
    "votes_per_s": 2000,
    "steer_latency_p50_s": 1.0,
    "steer_latency_p95_s": 1.5,
}


def bench_env(media: Path, ratelimit: bool) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="webapp.settings",
        DATABASE_URL=f"{PG_APP}/{BENCH_DB}",
        REDIS_URL=REDIS_URL,
        CHORUS_CACHE_NAMESPACE=NAMESPACE,
        CHORUS_MEDIA_ROOT=str(media),
        DJANGO_SECRET_KEY="bench",
        DJANGO_DEBUG="0",
        CHORUS_RATELIMIT_ENABLED="1" if ratelimit else "0",
        DJANGO_ALLOWED_HOSTS=f"{HOST},localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        CHORUS_LOG_LEVEL=os.environ.get("CHORUS_BENCH_LOG_LEVEL", "WARNING"),
        PYTHONUNBUFFERED="1",
    )
    env.pop("CELERY_BROKER_URL", None)
    return env


# --- Database, seed ---------------------------------------------------------------------------


def reset_stores() -> None:
    """Drop and create the benchmark database (the bench role, connection-limited); flush the
    benchmark Redis db."""
    import psycopg
    import redis
    from psycopg import sql

    with psycopg.connect(f"{PG_ADMIN}/postgres", autocommit=True, connect_timeout=10) as conn:
        db, role = sql.Identifier(BENCH_DB), sql.Identifier(BENCH_ROLE)
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(db))
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (BENCH_ROLE,)).fetchone():
            pass
        else:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(role))
        limit = sql.Literal(DB_CONNECTION_LIMIT)
        conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(role, limit))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(db, role))
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=10)
    try:
        client.flushdb()
    finally:
        client.close()


def run_django(env: dict[str, str], *args: str, timeout: int = 300) -> str:
    proc = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, timeout=timeout, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


def seed(clients: int) -> dict:
    """The host, the room and the sessions. Runs in a subprocess with Django set up."""
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

    host = get_user_model().objects.create_user("bench_host", password="bench-host-password")
    room = services.room_create(
        host=host,
        title="Bench stream",
        anchor_prompt="warm lo-fi beat with soft piano",
        mode="audience",
        visibility="public",
        round_length_s=120,
    )
    browser = Client()
    browser.force_login(host)
    expires = timezone.now() + timedelta(days=1)
    empty = SessionStore().encode({})
    keys = [get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(clients)]
    Session.objects.bulk_create(
        [Session(session_key=k, session_data=empty, expire_date=expires) for k in keys],
        batch_size=1000,
    )
    return {
        "room": str(room.pk),
        "origin": room.created_at.timestamp(),
        "host_session": browser.cookies["sessionid"].value,
        "sessions": keys,
    }


# --- Processes --------------------------------------------------------------------------------


def start(cmd: list[str], env: dict[str, str], log_path: Path, nice: int = 0) -> subprocess.Popen:
    log_file = log_path.open("wb")
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=(lambda: os.nice(nice)) if nice else None,
    )
    log_file.close()
    return proc


def start_services(env: dict[str, str], workers: int, tmp: Path) -> tuple[dict, int]:
    port = free_port()
    uvicorn = [sys.executable, "-m", "uvicorn", "webapp.asgi:application", "--host", HOST]
    uvicorn += ["--port", str(port), "--workers", str(workers), "--no-access-log"]
    uvicorn += ["--loop", "uvloop", "--http", "httptools", "--lifespan", "off"]
    uvicorn += ["--backlog", "4096", "--log-level", "warning"]
    celery = [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu", "-c", "1"]
    celery += ["--prefetch-multiplier", "1", "-n", "gpu-bench@%h", "--without-mingle"]
    celery += ["--without-gossip", "--loglevel", env["CHORUS_LOG_LEVEL"]]
    procs = {
        "web": start(uvicorn, env, tmp / "web.log"),
        "worker": start(celery, env, tmp / "worker.log"),
        "conductor": start([sys.executable, "manage.py", "conductor"], env, tmp / "conductor.log"),
    }
    wait_healthy(procs, port, tmp)
    return procs, port


def wait_healthy(procs: dict, port: int, tmp: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{tail(tmp / f'{name}.log')}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=2) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server did not answer within {START_TIMEOUT_S} s")


class CpuSampler:
    """CPU seconds used so far by each service's process group, sampled every `every_s` in a
    thread: what each phase of the run cost the server, read back by time window."""

    def __init__(self, procs: dict, every_s: float = 0.5) -> None:
        self.procs = {name: procs[name] for name in ("web", "worker", "conductor")}
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            used = {name: group_cpu_s(proc.pid) for name, proc in self.procs.items()}
            self.samples.append((time.time(), used))

    def cores(self, start: float, end: float) -> dict[str, float]:
        """Cores each service used on average between two moments."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return {}
        (t0, first), (t1, last) = inside[0], inside[-1]
        return {name: round((last[name] - first[name]) / (t1 - t0), 2) for name in first}

    def stop(self) -> None:
        self._stop.set()


def stop_all(procs: dict) -> None:
    for proc in procs.values():
        stop_server(proc)


def clients(phase: str, config: dict, tmp: Path, env, *, timeout: int, wait: bool = True):
    """Run a phase of tests/bench/rooms_clients.py (niced: it is the load, not the server)."""
    config_path, out_path = tmp / f"{phase}.json", tmp / f"{phase}.out.json"
    config_path.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "tests.bench.rooms_clients", phase, str(config_path)]
    proc = start([*cmd, str(out_path)], env, tmp / f"{phase}.log", nice=5)
    if not wait:
        return proc, out_path
    try:
        proc.wait(timeout=timeout)
    finally:
        stop_server(proc)
    if proc.returncode != 0 or not out_path.exists():
        raise RuntimeError(f"{phase} clients failed:\n{tail(tmp / f'{phase}.log')}")
    return json.loads(out_path.read_text())


# --- Reading the outcome ------------------------------------------------------------------------


def db_rows(query: str, *params) -> list[tuple]:
    import psycopg

    with psycopg.connect(f"{PG_APP}/{BENCH_DB}", connect_timeout=10) as conn:
        return conn.execute(query, params).fetchall()


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def join_figures(result: dict) -> dict:
    times = [j["first_chunk_s"] * 1000 for j in result["joins"] if j.get("ok")]
    return {
        "p50_ms": round(percentile(times, 0.5), 1) if times else None,
        "p90_ms": round(percentile(times, 0.9), 1) if times else None,
        "failed": sum(1 for j in result["joins"] if not j.get("ok")),
        "n": len(result["joins"]),
    }


def announce_figures(crowd: dict, room: str, window: tuple[float, float]) -> dict:
    """Latency from each chunk's record time to its receipt, and chunks a client never got
    (every client that connected counts, also one whose socket closed)."""
    rows = db_rows(
        "SELECT sequence, extract(epoch FROM created_at) FROM collab_chunk"
        " WHERE room_id = %s AND revision = 0 ORDER BY sequence",
        room,
    )
    due = {seq: float(at) for seq, at in rows if window[0] <= float(at) <= window[1]}
    latencies, missed, closed = [], 0, 0
    receipts: dict[int, list[float]] = {seq: [] for seq in due}
    for listener in crowd["listeners"]:
        if listener["closed"] and listener["closed"].startswith("connect"):
            continue
        closed += bool(listener["closed"])
        got = {seq: t for seq, rev, t in listener["chunks"] if rev == 0}
        for seq, recorded in due.items():
            if seq in got:
                latencies.append((got[seq] - recorded) * 1000)
                receipts[seq].append(got[seq])
            else:
                missed += 1
    # The fan-out alone: from the first client's receipt of a chunk to each client's.
    fanout = [(t - min(ts)) * 1000 for ts in receipts.values() for t in ts]
    return {
        "chunks": len(due),
        "fanout_p99_ms": round(percentile(fanout, 0.99), 1) if fanout else None,
        "p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "max_ms": round(max(latencies), 1) if latencies else None,
        "missed": missed,
        "sockets_closed": closed,
    }


def vote_figures(crowd: dict, room: str, round_number: int) -> dict:
    """Acknowledged votes per second, and each client's last acknowledged vote against its row."""
    rows = db_rows(
        "SELECT v.voter_key, v.proposal_id FROM collab_vote v JOIN collab_round r"
        " ON r.id = v.round_id WHERE r.room_id = %s AND r.number = %s",
        room,
        round_number,
    )
    stored = dict(rows)
    acked, latencies, lost, voters, errors = 0, [], 0, 0, {}
    last_answer = crowd["vote_window"][0]
    for listener in crowd["listeners"]:
        for code, count in listener["errors"].items():
            errors[code] = errors.get(code, 0) + count
        if not listener["acked"]:
            continue
        voters += 1
        acked += len(listener["acked"])
        latencies += [latency * 1000 for _, latency, _, _ in listener["acked"]]
        last_answer = max(last_answer, max(at for _, _, _, at in listener["acked"]))
        if stored.get(f"anon:{listener['session']}") not in possible_votes(listener):
            lost += 1
    seconds = max(1e-9, last_answer - crowd["vote_window"][0])
    return {
        "acked": acked,
        "per_s": round(acked / seconds, 1),
        "seconds": round(seconds, 2),
        "voters": voters,
        "rows": len(stored),
        "lost": lost,
        "unanswered": sum(x["unanswered"] for x in crowd["listeners"]),
        "ack_p50_ms": round(percentile(latencies, 0.5), 1) if latencies else None,
        "ack_p99_ms": round(percentile(latencies, 0.99), 1) if latencies else None,
        "errors": errors,
    }


def possible_votes(listener: dict) -> set[int]:
    """What a client's row may hold without losing an acknowledged vote: its last acknowledged
    vote, or one it sent after that which was never answered (stored, but the answer was lost
    with the socket)."""
    last_id, _, last_proposal, _ = max(listener["acked"])  # the highest id: the latest
    refused = set(listener["refused"])
    later = {p for i, p in listener["history"] if i > last_id and i not in refused}
    return {last_proposal} | later


def same_steering(a: dict, b: dict) -> bool:
    """Two steerings alike up to rounding: the same prompts and weights, the same controls."""

    def prompts(steering: dict) -> dict:
        return {str(t): round(float(w), 3) for t, w in (steering or {}).get("prompts", [])}

    return prompts(a) == prompts(b) and (a or {}).get("controls") == (b or {}).get("controls")


def heard_all(steer: dict, room: str, timeout_s: float) -> bool:
    """Wait (bounded) until every round's steering has reached a chunk: the listeners stay
    meanwhile, so the room keeps playing."""
    wanted = [r["steering"] for r in steer["rounds"] if "steering" in r]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        made = [
            json.loads(st)
            for (st,) in db_rows("SELECT steering::text FROM collab_chunk WHERE room_id = %s", room)
        ]
        if all(any(same_steering(m, w) for m in made) for w in wanted):
            return True
        time.sleep(0.5)
    return False


def steer_figures(steer: dict, room: str, origin: float) -> dict:
    # a spliced remake is heard from its splice point (the same music as before up to there)
    chunks = db_rows(
        "SELECT sequence, revision, start_s + coalesce((provenance->>'splice_s')::float, 0),"
        " steering::text FROM collab_chunk WHERE room_id = %s",
        room,
    )
    closed = dict(
        db_rows(
            "SELECT number, extract(epoch FROM closed_at) FROM collab_round"
            " WHERE room_id = %s AND closed_at IS NOT NULL",
            room,
        )
    )
    samples = []
    for result in steer["rounds"]:
        if "round" not in result:
            continue
        close = float(closed[result["round"]])
        under = [
            (s, rev, start)
            for s, rev, start, st in chunks
            if same_steering(json.loads(st), result["steering"])
        ]
        if not under:
            samples.append({"round": result["round"], "latency_s": None})
            continue
        sequence, revision, start = min(under, key=lambda c: c[2])
        samples.append(
            {
                "round": result["round"],
                "latency_s": round(origin + start - close, 3),
                "sequence": sequence,
                "revision": revision,
                "skip_to_close_ms": round((close - result["skip_sent"]) * 1000, 1),
            }
        )
    latencies = [s["latency_s"] for s in samples if s["latency_s"] is not None]
    return {
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
        "never_heard": sum(1 for s in samples if s["latency_s"] is None),
        "rounds": samples,
    }


# --- The run ------------------------------------------------------------------------------------


def wait_for_file(path: Path, proc: subprocess.Popen, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists():
            return True
        time.sleep(0.1)
    return path.exists()


def run(args, tmp: Path, env: dict, seeded: dict) -> dict:
    config = {
        "url": "",
        "origin": "",
        "sessions": seeded["sessions"],
        "host_session": seeded["host_session"],
    }
    procs, port = start_services(env, args.workers, tmp)
    sampler = CpuSampler(procs)
    figures: dict = {}
    try:
        config["url"] = f"ws://{HOST}:{port}/ws/rooms/{seeded['room']}/"
        config["origin"] = f"http://{HOST}:{port}"
        log(f"   services up on {HOST}:{port} (uvicorn x{args.workers}, worker, conductor)")

        keeper, keeper_out = clients(
            "keep",
            {
                **config,
                "sessions": seeded["sessions"][-1:],
                "stay_s": 3600,
                "stop_file": str(tmp / "stop"),
                "ready_file": str(tmp / "ready"),
            },
            tmp,
            env,
            timeout=0,
            wait=False,
        )
        procs["keeper"] = keeper
        if not wait_for_file(tmp / "ready", keeper, COLD_START_TIMEOUT_S):
            raise RuntimeError(f"no chunk reached the first listener:\n{tail(tmp / 'worker.log')}")
        figures["cold_first_chunk_s"] = json.loads((tmp / "ready").read_text())["first_chunk_s"]
        log(f"   cold start: first chunk {figures['cold_first_chunk_s']:.2f} s after joining")

        quiet = clients("joins", {**config, "joins": args.joins}, tmp, env, timeout=300)
        figures["join_quiet"] = join_figures(quiet)
        log(f"   joins, quiet room: {figures['join_quiet']}")

        figures.update(run_crowd(args, config, tmp, env, procs, seeded, sampler))

        steer = clients(
            "steer",
            {
                **config,
                "voters": 3,
                "rounds": args.rounds,
                "round_gap_s": args.round_gap_s,
                "ideas": list(IDEAS),
            },
            tmp,
            env,
            timeout=60 + args.rounds * (args.round_gap_s + 30),
        )
        heard_all(steer, seeded["room"], args.steer_wait_s)
        figures["steer"] = steer_figures(steer, seeded["room"], seeded["origin"])
        log(f"   steering: {figures['steer']}")
        (tmp / "stop").touch()
        keeper.wait(timeout=10)
    finally:
        sampler.stop()
        stop_all(procs)
    figures["server_log_errors"] = error_lines(tmp)
    return figures


def run_crowd(args, config, tmp, env, procs, seeded, sampler) -> dict:
    crowd_config = {
        **config,
        "clients": args.clients,
        "settle_s": 3,
        "listen_s": args.listen_s,
        "vote_s": args.vote_s,
        "vote_rate": args.vote_rate,
        "ideas": list(IDEAS[:3]),
        "listening_file": str(tmp / "listening"),
    }
    started = time.time()
    crowd_proc, crowd_out = clients("crowd", crowd_config, tmp, env, timeout=0, wait=False)
    procs["crowd"] = crowd_proc
    figures: dict = {}
    if wait_for_file(tmp / "listening", crowd_proc, 300):
        loaded = clients("joins", {**config, "joins": args.joins}, tmp, env, timeout=300)
        figures["join_crowd"] = join_figures(loaded)
        log(f"   joins, {args.clients} listening: {figures['join_crowd']}")
    budget = 300 + args.listen_s + args.vote_s
    crowd_proc.wait(timeout=budget)
    if crowd_proc.returncode != 0 or not crowd_out.exists():
        raise RuntimeError(f"crowd clients failed:\n{tail(tmp / 'crowd.log')}")
    crowd = json.loads(crowd_out.read_text())
    listen_from, listen_to = crowd["listen_window"]
    votes_from, _, votes_to = crowd["vote_window"]
    figures["crowd"] = {
        "clients": crowd["clients"],
        "connected": crowd["connected"],
        "connect_s": round(crowd["connect_s"], 2),
        "handshake_p99_ms": round(percentile(crowd["handshake_s"], 0.99) * 1000, 1)
        if crowd["handshake_s"]
        else None,
        "server_cores_connecting": sampler.cores(started, listen_from),
        "server_cores_listening": sampler.cores(listen_from, listen_to),
        "server_cores_voting": sampler.cores(votes_from, votes_to),
        "client_cores": client_cores(crowd, started, listen_from, listen_to, votes_to),
    }
    figures["announce"] = announce_figures(crowd, seeded["room"], (listen_from, listen_to - 1.0))
    figures["announce_while_voting"] = announce_figures(
        crowd, seeded["room"], (votes_from, votes_to - 3.0)
    )
    figures["votes"] = vote_figures(crowd, seeded["room"], crowd["vote_round"])
    for name in ("crowd", "announce", "announce_while_voting", "votes"):
        log(f"   {name}: {figures[name]}")
    return figures


def client_cores(crowd: dict, started, listen_from, listen_to, votes_to) -> dict:
    """Cores the crowd's own process used while connecting, listening and voting."""
    marks = crowd["cpu_s"]
    return {
        "connecting": round(marks["connected"] / max(1e-9, listen_from - started), 2),
        "listening": round(
            (marks["listened"] - marks["connected"]) / max(1e-9, listen_to - listen_from), 2
        ),
        "voting": round((marks["voted"] - marks["listened"]) / max(1e-9, votes_to - listen_to), 2),
    }


def error_lines(tmp: Path, top: int = 5) -> list[str]:
    lines: dict[str, int] = {}
    for name in ("web", "worker", "conductor"):
        path = tmp / f"{name}.log"
        if not path.exists():
            continue
        for line in path.read_text(errors="replace").splitlines():
            if "Error" in line or "Traceback" in line or "ERROR" in line:
                key = f"{name}: {line.strip()[:160]}"
                lines[key] = lines.get(key, 0) + 1
    return [f"{n} x {k}" for k, n in sorted(lines.items(), key=lambda kv: -kv[1])[:top]]


def summary(args, figures: dict, loadavg, loadavg_after) -> dict:
    votes, announce, steer = figures["votes"], figures["announce"], figures["steer"]
    join = figures.get("join_crowd") or figures["join_quiet"]
    return {
        "join_first_chunk_p50_ms": join["p50_ms"],
        "join_first_chunk_quiet_p50_ms": figures["join_quiet"]["p50_ms"],
        "cold_first_chunk_s": round(figures["cold_first_chunk_s"], 3),
        "ws_clients": figures["crowd"]["connected"],
        "announce_p50_ms": announce["p50_ms"],
        "announce_p99_ms": announce["p99_ms"],
        "announce_fanout_p99_ms": announce["fanout_p99_ms"],
        "announce_p99_while_voting_ms": figures["announce_while_voting"]["p99_ms"],
        "chunks_announced": announce["chunks"] + figures["announce_while_voting"]["chunks"],
        "chunks_missed": announce["missed"] + figures["announce_while_voting"]["missed"],
        "votes_per_s": votes["per_s"],
        "votes_acked": votes["acked"],
        "votes_lost": votes["lost"],
        "vote_ack_p99_ms": votes["ack_p99_ms"],
        "vote_errors": votes["errors"],
        "steer_latency_p50_s": steer["p50_s"],
        "steer_latency_p95_s": steer["p95_s"],
        "steer_rounds": len(steer["rounds"]),
        "steer_never_heard": steer["never_heard"],
        "web_workers": args.workers,
        "server_cores_listening": figures["crowd"]["server_cores_listening"],
        "client_cores_listening": figures["crowd"]["client_cores"]["listening"],
        "ratelimit": "on" if not args.no_ratelimit else "off",
        "channel_layer": "channels_redis.pubsub.RedisPubSubChannelLayer",
        "load_avg_1m": round(loadavg[0], 2),
        "load_avg_1m_after": round(loadavg_after[0], 2),
        "targets": TARGETS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--joins", type=int, default=15, help="timed joins per phase")
    parser.add_argument("--listen-s", type=float, default=20.0)
    parser.add_argument("--vote-s", type=float, default=15.0)
    parser.add_argument("--vote-rate", type=float, default=1.1, help="votes per client per s")
    parser.add_argument("--rounds", type=int, default=8, help="steering rounds")
    parser.add_argument("--round-gap-s", type=float, default=8.0)
    parser.add_argument(
        "--steer-wait-s", type=float, default=60.0, help="how long to wait for the last rounds"
    )
    parser.add_argument("--no-ratelimit", action="store_true")
    parser.add_argument("--keep-logs", action="store_true", help="keep the processes' logs")
    parser.add_argument("--seed-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.seed_only is not None:  # the seeding subprocess
        print("SEED_JSON " + json.dumps(seed(args.seed_only)), flush=True)
        return 0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # children inherit it
    loadavg = os.getloadavg()
    log(f"load average: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f} ({os.cpu_count()} CPUs)")
    tmp = Path(tempfile.mkdtemp(prefix="chorus-bench-rooms-"))
    try:
        env = bench_env(tmp / "media", ratelimit=not args.no_ratelimit)
        reset_stores()
        run_django(env, "manage.py", "migrate", "--noinput", "-v", "0")
        out = run_django(
            env, "-m", "tests.bench.bench_rooms", "--seed-only", str(args.clients + 10)
        )
        seeded = json.loads(next(x for x in out.splitlines() if x.startswith("SEED_JSON "))[10:])
        log(f"   database {BENCH_DB} ready; room {seeded['room']}, {args.clients} sessions")
        figures = run(args, tmp, env, seeded)
    except BaseException:
        log(f"   logs kept in {tmp}")
        raise
    loadavg_after = os.getloadavg()
    for line in figures["server_log_errors"]:
        log(f"   log: {line}")
    result = summary(args, figures, loadavg, loadavg_after)
    log("\n== Rooms benchmark: " + ", ".join(f"{k} {result[k]}" for k in TARGETS))
    if args.keep_logs:
        log(f"   logs kept in {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
