"""Multi-host test on one machine: two web nodes, two gpu workers, the conductor, PostgreSQL
and Redis, each on a host of its own (a network namespace: tests/bench/netns.py); a crowd of
listeners across several rooms on both web nodes; one worker killed with SIGKILL mid-run.

    python -m tests.bench.bench_scale [--listeners 600] [--rooms 2] [--chunk-s 1.0]
                                      [--baseline-s 30] [--after-kill-s 45] [--keep-logs]

Needs root, iproute2, `redis-server` and PostgreSQL's `initdb`/`postgres` (the Debian
packages). Run by `make -s bench-scale`; opt-in in pytest (tests/bench/test_scale.py, marker
`scale`). In order:

1. Hosts on a bridge of a free 10.77.N.0/24: `db` (a PostgreSQL cluster of its own, initdb'd
   into a temp dir), `redis`, `web1` and `web2` (uvicorn, one process each), `gpu1` and `gpu2`
   (Celery on queue `gpu` with the shipped model, one torch thread each), `conductor`, and
   `load` (the clients). Nothing touches the machine's own PostgreSQL or Redis, and nothing
   listens outside the bridge.
2. Migrates, then seeds --rooms public rooms (a host each, three ideas on each ballot, rounds
   of 120 s) and a signed-out session per listener.
3. The crowd (tests/bench/scale_clients.py, niced): --listeners sockets, each room's listeners
   split evenly between the two web nodes. Every --vote-share'th listener votes every
   --vote-every-s on average; one listener per room and node fetches every chunk's audio;
   each room's host (a client too) puts three ideas on the ballot of every new round.
4. Once both workers have loaded the model and every room plays: --baseline-s of listening,
   then worker `gpu1` is killed with SIGKILL (its whole process group, as if its machine went
   away), at a moment it is computing (a batch of rooms in hand), then --after-kill-s more.
5. The crowd stops, the figures are computed, and everything is torn down (also on failure,
   SIGTERM or Ctrl-C): processes stopped, namespaces and the bridge deleted, temp dir removed
   (after an error, the logs are copied to /tmp/chorus-lab-logs-* first).

Figures (the LAST line is JSON):
- `chunks_missed_after_worker_kill`: per room, the most chunks any of its listeners missed
  between the kill and the end (tests/bench/listening.py defines a missed chunk: a chunk's
  length of the room's timeline the listener does not hear: a silent hole, a chunk never
  announced, announced after its start, or not in its final revision); `max_per_room`, `total`
  (the sum over rooms) and `per_room`. The same for the baseline window, before the kill.
- `errors`: websocket `error` frames (other than a vote racing a round's close), sockets the
  server or the network closed, failed connections, client exceptions, audio fetches that did
  not answer 200, and the 5xx answers each web node's /metrics counted. Each is in
  `error_detail`.
- `announce_p99_ms` per web node: from a chunk's row being written (Chunk.created_at, the
  conductor records it and announces on commit) to a listener of that node receiving its frame.
- `web_cores` and `listeners_per_web_core`: CPU of each web process while the crowd listens
  (baseline window), and the listeners one core would carry at the rate they add above the
  process's idle use (measured for IDLE_S before anyone connects); `web_kb_per_listener`, the
  resident memory they add; `web_frames_per_s`, the frames its listeners received a second,
  and `web_cpu_us_per_frame`, that added CPU per frame (chunks, tallies, presence, answers).
- `votes`: acknowledged votes, per second, and votes lost (tests/bench/listening.votes_lost).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

from tests.bench import scale_cluster as cluster
from tests.bench.listening import (
    Missed,
    Receipt,
    TimelineChunk,
    connection_windows,
    missed_chunks,
    percentile,
    votes_lost,
)
from tests.bench.netns import Lab, PostgresServer, RedisServer, tail

REPO = Path(__file__).resolve().parents[2]
IDEAS = ("add strings", "slower and darker", "more drums")
READY_TIMEOUT_S = 300
WARM_TIMEOUT_S = 240
BUSY_TIMEOUT_S = 20
IDLE_S = 8  # the servers, measured before anyone connects
REQUIRED = ("ip", "redis-server", "initdb", "postgres", "runuser")


def log(message: str = "") -> None:
    print(message, flush=True)


def preflight() -> str | None:
    """Why this cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    missing = [tool for tool in REQUIRED if shutil.which(tool) is None]
    if missing:
        return f"needs {', '.join(missing)} on PATH"
    return None


# --- The crowd ----------------------------------------------------------------------------------


def client_specs(args, seeded: dict, webs: list[cluster.WebNode]) -> list[dict]:
    """Listener i joins room i mod R through node (i div R) mod 2: each room's listeners are
    split evenly between the nodes. The first listener of each room on each node fetches
    audio; every vote_share'th votes. Each room's host is a client too (on web1): it puts
    ideas on the ballot of every new round."""
    rooms = seeded["rooms"]
    specs = [
        {
            "session": room["host_session"],
            "room": room["id"],
            "node": webs[0].host.name,
            "url": webs[0].room_url(room["id"]),
            "origin": webs[0].origin,
            "host": True,
        }
        for room in rooms
    ]
    for i, session in enumerate(seeded["sessions"][: args.listeners]):
        room = rooms[i % len(rooms)]["id"]
        node = webs[(i // len(rooms)) % len(webs)]
        specs.append(
            {
                "session": session,
                "room": room,
                "node": node.host.name,
                "url": node.room_url(room),
                "origin": node.origin,
                "fetch": i < len(rooms) * len(webs),
                "vote_every_s": args.vote_every_s if i % args.vote_share == 0 else 0,
            }
        )
    return specs


def start_crowd(lab: Lab, specs: list[dict], env: dict, *, ideas, max_s: float):
    """The clients (tests/bench/scale_clients.py), niced, in the lab's `load` host. They stop
    when the lab's `stop` file appears, or after `max_s`."""
    config = {
        "clients": specs,
        "ideas": list(ideas),
        "stop_file": str(lab.tmp / "stop"),
        "ready_file": str(lab.tmp / "ready"),
        "max_s": max_s,
    }
    (lab.tmp / "crowd.json").write_text(json.dumps(config))
    command = [sys.executable, "-m", "tests.bench.scale_clients"]
    command += [str(lab.tmp / "crowd.json"), str(lab.tmp / "crowd.out.json")]
    return lab.hosts["load"].spawn(command, log=lab.tmp / "crowd.log", env=env, cwd=REPO, nice=5)


def wait_until(predicate, timeout_s: float, what: str, *, alive=()) -> float:
    """Poll (bounded) until predicate() holds; the moment it did. `alive`: processes that must
    not exit meanwhile."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in alive:
            if not process.alive():
                raise RuntimeError(
                    f"{process.name} exited while waiting for {what}:\n{tail(process.log)}"
                )
        if predicate():
            return time.time()
        time.sleep(0.25)
    raise RuntimeError(f"gave up waiting for {what} after {timeout_s} s")


def every_room_plays(pg_url: str, rooms: list[str]) -> bool:
    rows = cluster.chunk_rows(pg_url)
    return all(len(rows.get(room, [])) >= 3 for room in rooms)


def kill_mid_batch(worker) -> tuple[float, bool]:
    """SIGKILL the worker's whole process group at a moment it computes (bounded: after
    BUSY_TIMEOUT_S it is killed anyway). (when, whether it was computing)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    busy = False
    while time.monotonic() < deadline and not busy:
        busy = cluster.pool_busy(worker)
    at = time.time()
    worker.kill_group(signal.SIGKILL)
    return at, busy


# --- Figures ------------------------------------------------------------------------------------


def timeline(rows: list[tuple]) -> list[TimelineChunk]:
    return [TimelineChunk(i, seq, rev, start, dur) for i, seq, rev, start, dur, _ in rows]


def missed_figures(crowd: dict, rows: dict, origins: dict, window, chunk_s: float) -> dict:
    """Per room, the most chunks one of its listeners missed over `window`; and in all."""
    per_room: dict[str, list[Missed]] = {room: [] for room in rows}
    for client in crowd["clients"]:
        room = client["room"]
        chunks = timeline(rows.get(room, []))
        receipts = [Receipt(i, rev, at) for i, rev, at in client["receipts"]]
        total = Missed()
        for span in connection_windows(
            [(c[0], c[1]) for c in client["connections"]], start=window[0], end=window[1]
        ):
            total += missed_chunks(
                chunks, receipts, origin=origins[room], window=span, chunk_s=chunk_s
            )
        per_room.setdefault(room, []).append(total)
    worst = {
        room: max(found, key=lambda m: m.total) if found else Missed()
        for room, found in per_room.items()
    }
    return {
        "max_per_room": max((m.total for m in worst.values()), default=0),
        "total": sum(m.total for m in worst.values()),
        "listener_chunks_missed": sum(m.total for found in per_room.values() for m in found),
        "per_room": [
            {
                "room": room[:8],
                "missed": m.total,
                "silent": m.silent,
                "silent_s": m.silent_s,
                "longest_silence_s": m.longest_silence_s,
                "never": m.never,
                "late": m.late,
                "stale": m.stale,
            }
            for room, m in sorted(worst.items())
        ],
    }


def announce_figures(crowd: dict, rows: dict, window) -> dict:
    """Per web node, from each chunk row's created_at to its frame reaching each listener."""
    created = {r[0]: r[5] for found in rows.values() for r in found if r[2] == 0}
    by_node: dict[str, list[float]] = {}
    for client in crowd["clients"]:
        latencies = by_node.setdefault(client["node"], [])
        for chunk_id, revision, at in client["receipts"]:
            made = created.get(chunk_id)
            if revision == 0 and made is not None and window[0] <= made <= window[1]:
                latencies.append((at - made) * 1000)
    return {
        node: {
            "p50_ms": round(percentile(values, 0.5), 1) if values else None,
            "p99_ms": round(percentile(values, 0.99), 1) if values else None,
            "n": len(values),
        }
        for node, values in sorted(by_node.items())
    }


def error_figures(crowd: dict, server_5xx: dict) -> dict:
    codes: dict[str, int] = {}
    detail = {
        "ws_error_frames": 0,
        "sockets_lost": 0,
        "connect_failures": 0,
        "client_exceptions": 0,
        "http_not_200": 0,
        "server_5xx": sum(v or 0 for v in server_5xx.values()),
    }
    for client in crowd["clients"]:
        for code, n in {**client["errors"], **client["proposal_errors"]}.items():
            codes[code] = codes.get(code, 0) + n
            detail["ws_error_frames"] += n
        detail["sockets_lost"] += len(client["lost"])
        detail["connect_failures"] += len(client["connect_failures"])
        detail["client_exceptions"] += len(client["exceptions"])
        detail["http_not_200"] += sum(1 for f in client["fetches"] if f[1] != 200)
    examples = [x for c in crowd["clients"] for x in c["lost"] + c["exceptions"]][:3]
    return {"total": sum(detail.values()), **detail, "codes": codes, "examples": examples}


def fetch_figures(crowd: dict) -> dict:
    fetches = [f for c in crowd["clients"] for f in c["fetches"]]
    ahead = [(start - done) * 1000 for _, status, done, start, _ in fetches if status == 200]
    return {
        "fetched": len(fetches),
        "late": sum(1 for a in ahead if a < 0),
        "ahead_p5_ms": round(percentile(ahead, 0.05), 1) if ahead else None,
    }


def vote_figures(crowd: dict, pg_url: str, window) -> dict:
    stored, round_of, closed_at = cluster.vote_rows(pg_url)
    acked = [a for c in crowd["clients"] for a in c["acked"]]
    lost = []
    for client in crowd["clients"]:
        if client["acked"]:
            mine = {r: p for (r, key), p in stored.items() if key == f"anon:{client['session']}"}
            lost += votes_lost(
                acked=[tuple(a) for a in client["acked"]],
                history=[tuple(h) for h in client["history"]],
                refused=client["refused"],
                stored=mine,
                round_of=round_of,
            )
    for example in lost:  # from the vote's answer to the close of each round it concerns
        example["close_after_ack_s"] = {
            r: round(closed_at[r] - example["acked_at"], 3) if closed_at.get(r) else None
            for r in {example["round"], *example["rounds_held"]}
        }
    seconds = max(1e-9, window[1] - window[0])
    return {
        "acked": len(acked),
        "per_s": round(sum(1 for a in acked if window[0] <= a[3] <= window[1]) / seconds, 1),
        "lost": len(lost),
        "lost_examples": lost[:3],
        "unanswered": sum(c["unanswered"] for c in crowd["clients"]),
        "ack_p99_ms": round(percentile([a[1] * 1000 for a in acked], 0.99), 1) if acked else None,
    }


def capacity_figures(crowd: dict, sampler: cluster.Sampler, window, idle) -> dict:
    """Web CPU and memory while the crowd listens, per node: in all, and above what the node
    used idle (`idle`: a window before the crowd came), per listener."""
    cores, idle_cores = sampler.cores(*window), sampler.cores(*idle)
    listeners = {}
    for client in crowd["clients"]:
        if not client["host"]:
            listeners[client["node"]] = listeners.get(client["node"], 0) + bool(
                client["connections"]
            )
    rss_before, rss_during = sampler.rss_at(idle[1]), sampler.rss_at(window[1])
    seconds = [s for s in crowd["frames_per_s"] if window[0] <= int(s) < int(window[1])]
    per_node = {}
    for node, count in sorted(listeners.items()):
        used, extra = cores.get(node), None
        if used is not None and node in idle_cores:
            extra = max(0.0, used - idle_cores[node])
        frames = sum(crowd["frames_per_s"][s].get(node, 0) for s in seconds) / max(1, len(seconds))
        per_node[node] = {
            "listeners": count,
            "cores": used,
            "idle_cores": idle_cores.get(node),
            "listeners_per_core": round(count / extra) if extra else None,
            "frames_per_s": round(frames),
            "cpu_us_per_frame": round(extra / frames * 1e6, 1) if extra and frames else None,
            "rss_mb": rss_during.get(node),
            "kb_per_listener": round(
                (rss_during.get(node, 0) - rss_before.get(node, 0)) * 1024 / max(1, count), 1
            ),
        }
    return {"web": per_node, "cores": cores, "idle_cores": idle_cores}


# --- The run ------------------------------------------------------------------------------------


def run(args, lab: Lab) -> dict:
    started = time.time()
    names = ("db", "redis", "web1", "web2", "gpu1", "gpu2", "conductor", "load")
    hosts = {name: lab.host(name) for name in names}
    log(
        f"   {len(hosts)} hosts on {lab.subnet}.0/24: "
        + ", ".join(f"{h.name} {h.address}" for h in hosts.values())
    )
    pg = PostgresServer(lab, hosts["db"])
    redis = RedisServer(lab, hosts["redis"])
    env = cluster.chorus_env(lab, pg, redis, [hosts["web1"], hosts["web2"]])
    env["CHORUS_ROOM_CHUNK_S"] = str(args.chunk_s)  # the workers' chunk length
    cluster.prepare_database(pg, env, log=log)
    fetchers = args.rooms * 2
    seeded = cluster.seed(
        env,
        rooms=args.rooms,
        sessions=args.listeners,
        round_length_s=120,
        ideas=list(IDEAS),
    )
    rooms = [r["id"] for r in seeded["rooms"]]
    log(f"   seeded {len(rooms)} rooms and {args.listeners} sessions ({fetchers} fetch audio)")

    webs = [cluster.start_web(hosts[n], env, lab) for n in ("web1", "web2")]
    # one torch thread each: the two workers share this machine's two cores
    workers = {n: cluster.start_worker(hosts[n], env, lab, threads=1) for n in ("gpu1", "gpu2")}
    conductor = cluster.start_conductor(hosts["conductor"], env, lab)
    for web in webs:
        cluster.wait_ready(web)
    servers = [*(w.process for w in webs), *workers.values(), conductor]
    groups = {w.host.name: w.process for w in webs} | workers | {"conductor": conductor}
    sampler = cluster.Sampler(groups | {"redis": redis.process}, every_s=1.0, postgres=pg)
    log("   web1, web2, gpu1, gpu2 and the conductor are up")
    try:
        return measure(args, lab, env, pg, webs, workers, servers, sampler, seeded, started)
    finally:
        sampler.stop()


def measure(args, lab, env, pg, webs, workers, servers, sampler, seeded, started) -> dict:
    rooms = [r["id"] for r in seeded["rooms"]]
    idle_from = time.time()  # the servers with nobody connected: what listeners add is above
    time.sleep(IDLE_S)
    before_crowd = time.time()
    specs = client_specs(args, seeded, webs)
    crowd_proc = start_crowd(lab, specs, env, ideas=IDEAS, max_s=args.max_s)
    alive = (*servers, crowd_proc)
    ready_at = wait_until(
        lambda: (lab.tmp / "ready").exists(), READY_TIMEOUT_S, "the crowd to connect", alive=alive
    )
    ready = json.loads((lab.tmp / "ready").read_text())
    log(f"   {ready['connected']} of {len(specs)} clients connected in {ready['connect_s']:.1f} s")
    warm_at = wait_until(
        lambda: (
            all(cluster.worker_warm(w) for w in workers.values())
            and every_room_plays(pg.url, rooms)
        ),
        WARM_TIMEOUT_S,
        "both workers to load the model and every room to play",
        alive=alive,
    )
    log(f"   both workers warm, every room playing ({warm_at - ready_at:.0f} s after connecting)")
    baseline_from = warm_at + 2.0
    time.sleep(max(0.0, baseline_from + args.baseline_s - time.time()))
    kill_at, busy = kill_mid_batch(workers["gpu1"])
    log(f"   killed gpu1 with SIGKILL ({'mid-batch' if busy else 'not seen computing'})")
    deadline = kill_at + args.after_kill_s
    while time.time() < deadline:
        for process in (*servers, crowd_proc):
            if process is not workers["gpu1"] and not process.alive():
                raise RuntimeError(f"{process.name} exited:\n{tail(process.log)}")
        time.sleep(0.5)
    stop_at = time.time()
    (lab.tmp / "stop").touch()
    out = lab.tmp / "crowd.out.json"
    wait_until(out.exists, 90, "the crowd's results")
    crowd = json.loads(out.read_text())
    log("   crowd stopped; reading the rooms' timelines")

    rows = cluster.chunk_rows(pg.url)
    origins = cluster.origins(pg.url)
    marks = {"baseline_from": baseline_from, "kill_at": kill_at, "stop_at": stop_at}
    (lab.tmp / "timeline.json").write_text(json.dumps({"rows": rows, "origins": origins, **marks}))
    chunk_s = statistics.median(r[4] for found in rows.values() for r in found)
    end = stop_at - 0.5  # the listeners' last moment, with room for frames in flight
    baseline = (baseline_from, kill_at)
    after = (kill_at, end)
    server_5xx = {w.host.name: cluster.http_5xx(w) for w in webs}
    figures = {
        "missed_before": missed_figures(crowd, rows, origins, baseline, chunk_s),
        "missed_after": missed_figures(crowd, rows, origins, after, chunk_s),
        "announce": announce_figures(crowd, rows, (baseline_from, end)),
        "errors": error_figures(crowd, server_5xx),
        "fetch": fetch_figures(crowd),
        "votes": vote_figures(crowd, pg.url, (baseline_from, end)),
        "capacity": capacity_figures(crowd, sampler, baseline, (idle_from + 1, before_crowd)),
        "cores_after_kill": sampler.cores(kill_at + 2, end),
        "worker_batches": {n: cluster.batch_times(w) for n, w in workers.items()},
        "connected": sum(1 for c in crowd["clients"] if c["connections"] and not c["host"]),
        "connect_s": round(ready["connect_s"], 1),
        "killed_mid_batch": busy,
        "chunk_s": chunk_s,
        "baseline_s": round(kill_at - baseline_from, 1),
        "after_kill_s": round(end - kill_at, 1),
        "wall_s": round(time.time() - started, 1),
        "server_log_errors": cluster.error_lines({p.name.split(":")[0]: p.log for p in servers}),
    }
    return figures


def summary(args, figures: dict, loadavg) -> dict:
    after, before = figures["missed_after"], figures["missed_before"]
    web = figures["capacity"]["web"]
    return {
        "hosts": 8,
        "host_names": ["db", "redis", "web1", "web2", "gpu1", "gpu2", "conductor", "load"],
        "listeners": figures["connected"],
        "rooms": args.rooms,
        "web_nodes": 2,
        "gpu_workers": 2,
        "chunk_s": figures["chunk_s"],
        "chunks_missed_after_worker_kill": {
            "max_per_room": after["max_per_room"],
            "total": after["total"],
            "per_room": after["per_room"],
        },
        "chunks_missed_before_kill": {
            "max_per_room": before["max_per_room"],
            "total": before["total"],
            "per_room": before["per_room"],
        },
        "killed_mid_batch": figures["killed_mid_batch"],
        "errors": figures["errors"]["total"],
        "error_detail": figures["errors"],
        "announce_p99_ms": {n: a["p99_ms"] for n, a in figures["announce"].items()},
        "announce_p50_ms": {n: a["p50_ms"] for n, a in figures["announce"].items()},
        "web_cores": {n: w["cores"] for n, w in web.items()},
        "web_idle_cores": {n: w["idle_cores"] for n, w in web.items()},
        "listeners_per_web_core": {n: w["listeners_per_core"] for n, w in web.items()},
        "web_kb_per_listener": {n: w["kb_per_listener"] for n, w in web.items()},
        "web_frames_per_s": {n: w["frames_per_s"] for n, w in web.items()},
        "web_cpu_us_per_frame": {n: w["cpu_us_per_frame"] for n, w in web.items()},
        "cores_listening": figures["capacity"]["cores"],
        "cores_after_kill": figures["cores_after_kill"],
        "worker_batch_s": figures["worker_batches"],
        "audio_fetches": figures["fetch"],
        "votes_acked": figures["votes"]["acked"],
        "votes_per_s": figures["votes"]["per_s"],
        "votes_lost": figures["votes"]["lost"],
        "votes_lost_examples": figures["votes"]["lost_examples"],
        "vote_ack_p99_ms": figures["votes"]["ack_p99_ms"],
        "connect_s": figures["connect_s"],
        "baseline_s": figures["baseline_s"],
        "after_kill_s": figures["after_kill_s"],
        "load_avg_1m": round(loadavg[0], 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "wall_s": figures["wall_s"],
    }


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--listeners", type=int, default=600)
    # Two rooms: what two one-thread workers keep at real time on two cores shared with the
    # rest (tests/bench/bench_worker.py: a 2-thread worker makes 4 rooms' 1 s chunks in 0.76 s)
    parser.add_argument("--rooms", type=int, default=2)
    parser.add_argument("--baseline-s", type=float, default=30.0, help="listening before the kill")
    parser.add_argument("--after-kill-s", type=float, default=45.0)
    parser.add_argument(
        "--chunk-s", type=float, default=1.0, help="seconds per room chunk (CHORUS_ROOM_CHUNK_S)"
    )
    parser.add_argument("--vote-every-s", type=float, default=5.0, help="per voting listener")
    parser.add_argument("--vote-share", type=int, default=5, help="every Nth listener votes")
    parser.add_argument("--max-s", type=float, default=900.0, help="the crowd stops by itself")
    parser.add_argument(
        "--keep-logs", action="store_true", help="keep the lab's temp dir (logs, database, audio)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    why = preflight()
    if why:
        log(f"bench-scale: {why}")
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
    per_room = result["chunks_missed_after_worker_kill"]["per_room"]
    log(
        "\n== Scale: {} listeners, {} rooms, 2 web nodes, 2 gpu workers (gpu1 killed)".format(
            result["listeners"], result["rooms"]
        )
    )
    log(
        f"   chunks missed after the kill, per room: {[r['missed'] for r in per_room]}"
        f" (before: max {result['chunks_missed_before_kill']['max_per_room']})"
    )
    longest = [r["longest_silence_s"] for r in result["chunks_missed_before_kill"]["per_room"]]
    log(
        f"   longest silence per room before the kill {longest} s,"
        f" after {[r['longest_silence_s'] for r in per_room]} s"
    )
    log(
        f"   errors {result['errors']}; announce p99 {result['announce_p99_ms']} ms;"
        f" listeners per web core {result['listeners_per_web_core']}"
    )
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
