"""Soak: one room, 200 simulated clients, 30 minutes; memory of every server process over time,
chunks lost, errors.

    python -m tests.bench.soak [--minutes 30] [--clients 200] [--sample-s 10] [--keep-logs]

`make soak` runs it (`SOAK_MINUTES=3 make soak` for a short look). Needs what bench_scale.py
needs: root, iproute2, `redis-server`, PostgreSQL's `initdb`/`postgres`. The services run in
network namespaces (tests/bench/netns.py), on a PostgreSQL cluster and a Redis of their own,
so their memory is the soak's alone and nothing touches the machine's own stores: hosts `db`,
`redis`, `web` (one uvicorn process), `gpu` (one Celery worker on queue `gpu` with the shipped
model), `conductor`, and `load` (the clients).

The room is public, in friends mode, with rounds of 20 s: its steering changes every 20 s, so
chunks are remade (rewinds) and proposals get previews, as in a real room. Every client
(tests/bench/scale_clients.py) listens throughout (the room's host too, who puts two ideas on
every new ballot) and, at random moments (Poisson):
- votes for a proposal on the open ballot, on average every --vote-every-s (15 s);
- proposes an idea of its own, on average every --propose-every-s (3,600 s: one a round);
- leaves and comes back (a reload), on average every --reconnect-every-s (300 s);
- two of them fetch every chunk's audio over HTTP, as a browser does.

Every --sample-s the resident memory (and CPU) of each server's process group is read from
/proc: web, gpu (the Celery parent and its pool child, which holds the model), conductor; Redis
and PostgreSQL (the postmaster and its backends) are reported too.

Figures (the LAST line is JSON):
- `memory_growth_pct`, per process: the first --warmup-min minutes (5, or a third of a shorter
  run) are left out; of the samples after, the mean of the last fifth against the mean of the
  first fifth (`(last - first) / first`). `memory_slope_mb_per_h` is the least-squares slope
  over the same samples. The bar: under 5 % for web, gpu and conductor. Redis grows by design
  for an hour (chunk results are kept RESULT_TTL_S = 3,600 s), so it is reported, not judged.
- `lost_chunks`: chunks missed by a client while connected, from the room playing to the end,
  as tests/bench/listening.py defines them (silent holes, never announced, late, stale
  revision), summed over clients and connections. The bar: 0.
- `errors`: as bench_scale.py counts them (error frames other than a vote racing a round's
  close, sockets lost, failed connections, client exceptions, audio fetches that did not
  answer 200, 5xx answers the web node counted). Planned reloads are not errors. The bar: 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from tests.bench import scale_cluster as cluster
from tests.bench.bench_scale import (
    error_figures,
    fetch_figures,
    log,
    missed_figures,
    preflight,
    start_crowd,
    vote_figures,
    wait_until,
)
from tests.bench.netns import Lab, PostgresServer, RedisServer, tail

REPO = Path(__file__).resolve().parents[2]
IDEAS = (
    "add strings",
    "slower and darker",
    "more drums",
    "bright synth arpeggios",
    "soft piano",
    "funky bass",
    "ambient pads",
    "faster, more energy",
)
JUDGED = ("web", "gpu", "conductor")
GROWTH_LIMIT_PCT = 5.0
WINDOW_SHARE = 0.2  # the first and last fifth of the samples after warm-up


def memory_growth(samples: list[tuple[float, float]], warmup_end: float) -> dict:
    """Growth of one process's memory after warm-up: `samples` are (unix time, MB). The mean of
    the last fifth of the samples after `warmup_end` against the mean of the first fifth, in
    per cent; and the least-squares slope in MB per hour."""
    after = [(t, mb) for t, mb in samples if t >= warmup_end]
    if len(after) < 4:
        return {"growth_pct": None, "slope_mb_per_h": None, "samples": len(after)}
    k = max(2, round(len(after) * WINDOW_SHARE))
    first = statistics.fmean(mb for _, mb in after[:k])
    last = statistics.fmean(mb for _, mb in after[-k:])
    slope = statistics.linear_regression([t for t, _ in after], [mb for _, mb in after]).slope
    return {
        "growth_pct": round((last - first) / first * 100, 2),
        "first_mb": round(first, 1),
        "last_mb": round(last, 1),
        "slope_mb_per_h": round(slope * 3600, 1),
        "samples": len(after),
    }


def client_specs(args, seeded: dict, web: cluster.WebNode) -> list[dict]:
    """The clients, and the room's host (a client too: two ideas on every new ballot)."""
    room = seeded["rooms"][0]["id"]
    host = {
        "session": seeded["rooms"][0]["host_session"],
        "room": room,
        "node": "web",
        "url": web.room_url(room),
        "origin": web.origin,
        "host": True,
        "host_ideas": 2,  # with rounds of 20 s: 6 a minute, inside the host's proposal limit
    }
    return [host] + [
        {
            "session": session,
            "room": room,
            "node": "web",
            "url": web.room_url(room),
            "origin": web.origin,
            "fetch": i < 2,
            "vote_every_s": args.vote_every_s,
            "propose_every_s": args.propose_every_s,
            "reconnect_every_s": args.reconnect_every_s,
        }
        for i, session in enumerate(seeded["sessions"][: args.clients])
    ]


def room_figures(pg_url: str) -> dict:
    import psycopg

    with psycopg.connect(f"{pg_url}/{cluster.APP_DB}", connect_timeout=10) as conn:
        one = lambda q: conn.execute(q).fetchone()[0]  # noqa: E731
        return {
            "chunks": one("SELECT count(*) FROM collab_chunk"),
            "remade": one("SELECT count(*) FROM collab_chunk WHERE revision > 0"),
            "rounds_closed": one("SELECT count(*) FROM collab_round WHERE closed_at IS NOT NULL"),
            "proposals": one("SELECT count(*) FROM collab_proposal"),
            "auditions": one("SELECT count(*) FROM collab_audition WHERE audio <> ''"),
            "votes": one("SELECT count(*) FROM collab_vote"),
        }


def redis_memory_mb(url: str) -> float | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        return round(client.info("memory")["used_memory"] / 2**20, 1)
    except Exception:
        return None


def run(args, lab: Lab) -> dict:
    started = time.time()
    names = ("db", "redis", "web", "gpu", "conductor", "load")
    hosts = {name: lab.host(name) for name in names}
    log(f"   {len(hosts)} hosts on {lab.subnet}.0/24")
    pg = PostgresServer(lab, hosts["db"])
    redis = RedisServer(lab, hosts["redis"])
    env = cluster.chorus_env(lab, pg, redis, [hosts["web"]])
    cluster.prepare_database(pg, env, log=log)
    seeded = cluster.seed(
        env, rooms=1, sessions=args.clients, round_length_s=20, ideas=list(IDEAS[:3])
    )
    web = cluster.start_web(hosts["web"], env, lab)
    worker = cluster.start_worker(hosts["gpu"], env, lab, threads=2)  # a 2-vCPU worker
    conductor = cluster.start_conductor(hosts["conductor"], env, lab)
    cluster.wait_ready(web)
    servers = {"web": web.process, "gpu": worker, "conductor": conductor}
    sampler = cluster.Sampler(
        servers | {"redis": redis.process}, every_s=args.sample_s, postgres=pg
    )
    try:
        return soak(args, lab, env, pg, redis, web, servers, sampler, seeded, started)
    finally:
        sampler.stop()


def soak(args, lab, env, pg, redis, web, servers, sampler, seeded, started) -> dict:
    room = seeded["rooms"][0]["id"]
    specs = client_specs(args, seeded, web)
    crowd_proc = start_crowd(lab, specs, env, ideas=IDEAS, max_s=args.minutes * 60 + 600)
    alive = (*servers.values(), crowd_proc)
    wait_until(lambda: (lab.tmp / "ready").exists(), 300, "the clients to connect", alive=alive)
    warm_at = wait_until(
        lambda: cluster.worker_warm(servers["gpu"]) and bool(cluster.chunk_rows(pg.url).get(room)),
        240,
        "the worker to load the model and the room to play",
        alive=alive,
    )
    end_at = warm_at + args.minutes * 60
    warmup_end = warm_at + args.warmup_min * 60
    log(f"   {len(specs)} clients in the room, which plays; soaking {args.minutes:g} min")
    next_report = time.time() + 60
    while time.time() < end_at:
        for process in alive:
            if not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{tail(process.log)}")
        if time.time() >= next_report:
            next_report += 60
            rss = sampler.rss_at(time.time())
            log(
                f"   {(time.time() - warm_at) / 60:4.1f} min: "
                + ", ".join(f"{n} {rss.get(n, 0):.0f} MB" for n in (*JUDGED, "redis"))
                + f"; redis data {redis_memory_mb(redis.url())} MB"
            )
        time.sleep(1.0)
    stop_at = time.time()
    (lab.tmp / "stop").touch()
    out = lab.tmp / "crowd.out.json"
    wait_until(out.exists, 120, "the clients' results")
    crowd = json.loads(out.read_text())

    rows = cluster.chunk_rows(pg.url)
    origins = cluster.origins(pg.url)
    chunk_s = statistics.median(r[4] for found in rows.values() for r in found)
    window = (warm_at + 2.0, stop_at - 0.5)
    series = {
        name: [(s.at, s.rss_mb[name]) for s in sampler.samples if name in s.rss_mb]
        for name in (*JUDGED, "redis", "postgres")
    }
    return {
        "missed": missed_figures(crowd, rows, origins, window, chunk_s),
        "errors": error_figures(crowd, {"web": cluster.http_5xx(web)}),
        "votes": vote_figures(crowd, pg.url, window),
        "fetch": fetch_figures(crowd),
        "room": room_figures(pg.url),
        "memory": {name: memory_growth(s, warmup_end) for name, s in series.items()},
        "cores": sampler.cores(warmup_end, stop_at),
        "worker_batches": cluster.batch_times(servers["gpu"]),
        "redis_data_mb": redis_memory_mb(redis.url()),
        "reloads": sum(
            1 for c in crowd["clients"] for conn in c["connections"] if conn[2] == "reload"
        ),
        "proposals_sent": sum(c["proposals"]["sent"] for c in crowd["clients"]),
        "proposal_errors": {
            code: sum(c["proposal_errors"].get(code, 0) for c in crowd["clients"])
            for code in {k for c in crowd["clients"] for k in c["proposal_errors"]}
        },
        "vote_races": sum(sum(c["races"].values()) for c in crowd["clients"]),
        "chunk_s": chunk_s,
        "minutes": round((stop_at - warm_at) / 60, 2),
        "warmup_min": args.warmup_min,
        "wall_s": round(time.time() - started, 1),
        "server_log_errors": cluster.error_lines({n: p.log for n, p in servers.items()}),
    }


def summary(args, figures: dict, loadavg) -> dict:
    memory = figures["memory"]
    judged = [memory[n]["growth_pct"] for n in JUDGED if memory[n]["growth_pct"] is not None]
    return {
        "minutes": figures["minutes"],
        "clients": args.clients,
        "rooms": 1,
        "memory_growth_pct": {n: m["growth_pct"] for n, m in memory.items()},
        "memory_growth_max_pct": max(judged) if judged else None,
        "memory_growth_ok": bool(judged) and max(judged) < GROWTH_LIMIT_PCT,
        "memory_mb": {n: (m.get("first_mb"), m.get("last_mb")) for n, m in memory.items()},
        "memory_slope_mb_per_h": {n: m["slope_mb_per_h"] for n, m in memory.items()},
        "lost_chunks": figures["missed"]["listener_chunks_missed"],
        "lost_chunks_max_per_listener_room": figures["missed"]["max_per_room"],
        "lost_detail": figures["missed"]["per_room"],
        "errors": figures["errors"]["total"],
        "error_detail": figures["errors"],
        "vote_races": figures["vote_races"],
        "votes_acked": figures["votes"]["acked"],
        "votes_lost": figures["votes"]["lost"],
        "votes_lost_examples": figures["votes"]["lost_examples"],
        "proposals_sent": figures["proposals_sent"],
        "proposal_errors": figures["proposal_errors"],
        "reloads": figures["reloads"],
        "audio_fetches": figures["fetch"],
        "room": figures["room"],
        "cores": figures["cores"],
        "worker_batch_s": figures["worker_batches"],
        "redis_data_mb": figures["redis_data_mb"],
        "chunk_s": figures["chunk_s"],
        "warmup_min": figures["warmup_min"],
        "sample_s": args.sample_s,
        "load_avg_1m": round(loadavg[0], 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "wall_s": figures["wall_s"],
    }


def parse_args(argv):
    minutes = float(os.environ.get("SOAK_MINUTES", "30"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=minutes, help="after the room plays")
    parser.add_argument("--warmup-min", type=float, default=None, help="5, or a third of a run")
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--vote-every-s", type=float, default=15.0)
    parser.add_argument("--propose-every-s", type=float, default=3600.0)
    parser.add_argument("--reconnect-every-s", type=float, default=300.0)
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the lab's temp dir (logs, database, audio)"
    )
    args = parser.parse_args(argv)
    if args.warmup_min is None:
        args.warmup_min = min(5.0, args.minutes / 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = preflight()
    if why:
        log(f"soak: {why}")
        return 2
    loadavg = os.getloadavg()
    log(f"load average: {loadavg[0]:.2f} {loadavg[1]:.2f} {loadavg[2]:.2f} ({os.cpu_count()} CPUs)")
    with Lab() as lab:
        lab.keep_tmp = args.keep_logs
        try:
            figures = run(args, lab)
        except Exception:
            log(f"   logs kept in {lab.save_logs()}")
            raise
    log("   torn down: processes stopped, namespaces and bridge deleted")
    if args.keep_logs:
        log(f"   logs kept in {lab.tmp}")
    for line in figures["server_log_errors"]:
        log(f"   log: {line}")
    result = summary(args, figures, loadavg)
    log(
        f"\n== Soak: {result['minutes']} min, {args.clients} clients, 1 room: memory growth"
        f" after {args.warmup_min:g} min warm-up {result['memory_growth_pct']} %;"
        f" lost chunks {result['lost_chunks']}; errors {result['errors']}"
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
