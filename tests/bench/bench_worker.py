"""Rooms one gpu worker keeps at real time on this CPU, through the job path the service runs.

    python -m tests.bench.bench_worker [--threads 2] [--sizes 1,2,4,8,16,24,32] [--chunks 4]
                                       [--paths restore,resident]

`python -m generation.eval lm` (`rooms_realtime`) times batches of sessions kept in memory with
a short context. A worker in service mode does more for each room and chunk:
`generation.tasks.run_room_jobs` restores the room's state from the store (a few tens of KB),
rebuilds its KV cache from the context window (one forward pass over up to the model's whole
context), generates the chunk, decodes it, writes Ogg Opus, and stores the result and the new
state. This benchmark runs exactly that function (with an in-memory store and a temp dir) for
batches of N rooms, after every room's context has filled the model's window (the steady state
of a room that has played for a while), and reports per batch size the wall time and the CPU
time of one batched call per chunk. `rooms_realtime` is the largest batch whose call takes
less than a chunk's duration; a worker also needs headroom for the round trip (broker, store,
the conductor's tick), so plan on less. The last line is JSON.

Two paths (`--paths`): `restore`, every chunk of every room restored from the store (a room
that moves between workers, or residency off: CHORUS_RESIDENT_ROOMS=0), and `resident`, the
room's session kept in the worker between chunks (generation/resident.py: what sticky routing
gives a room that stays on its worker). Each is timed on rooms of its own; 4 timed chunks
cover two window slides (a resident room rebuilds its cache only when its window slides).
Both paths make the same rooms (same seeds and steering), so `same_codes` counts the chunks
whose codes the two paths made identically (a float difference between a cache built step by
step and one rebuilt in one pass could flip a sampled token).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (a worker's vCPUs)")
    parser.add_argument("--sizes", default="1,2,4,8,16,24,32")
    parser.add_argument("--chunks", type=int, default=4, help="timed batches per size")
    parser.add_argument("--paths", default="restore,resident")
    parser.add_argument(
        "--slide-margin-s",
        type=float,
        default=None,
        help="seconds of context dropped beyond a chunk when the window slides (default: the "
        "engine's, one chunk): a resident room rebuilds its cache only when it slides",
    )
    args = parser.parse_args(argv)
    os.environ["CHORUS_TORCH_THREADS"] = str(args.threads)

    from generation import tasks
    from generation.resident import ResidentRooms

    engine = tasks.engine()
    if args.slide_margin_s is not None:
        engine.slide_margin = round(args.slide_margin_s * engine.frame_rate)
    store = tasks.MemoryStore()
    chunk_s = engine.chunk_frames / engine.frame_rate
    # chunks until the context window is full: the steady state (prefill of a whole window)
    fill = -(-engine.model.config.context // engine.chunk_frames) + 1
    out = tempfile.mkdtemp(prefix="chorus-bench-worker-")
    print(
        f"chunk {chunk_s:.1f} s, {args.threads} torch threads, context filled after {fill}, "
        f"slide margin {engine.slide_margin} steps"
    )
    load_before = round(os.getloadavg()[0], 2)
    paths: dict[str, dict] = {}
    codes: dict[str, dict[tuple[int, int, int], str]] = {}
    for path in args.paths.split(","):
        made = codes.setdefault(path, {})
        resident = ResidentRooms(10_000 if path == "resident" else 0)
        figures: dict[int, dict] = {}
        best = 0
        for size in (int(x) for x in args.sizes.split(",")):
            rooms = [f"bench-{path}-{size}-{i}" for i in range(size)]  # stream keys differ
            steering = {"prompts": [["warm lo-fi beat with soft piano", 1.0]], "controls": {}}

            def batch(
                sequence: int, rooms=rooms, steering=steering, resident=resident, made=made
            ) -> None:
                jobs = [
                    {"room": r, "sequence": sequence, "seed": i, "steering": steering}
                    for i, r in enumerate(rooms)
                ]
                results = tasks.run_room_jobs(jobs, out, engine, store, resident=resident)
                failed = [r for r in results if "error" in r]
                if failed:
                    raise RuntimeError(f"the engine refused a job: {failed[0]}")
                for i, r in enumerate(results):
                    made[(len(rooms), sequence, i)] = r["codes"]

            for sequence in range(fill):
                batch(sequence)
            wall0, cpu0 = time.perf_counter(), cpu_s()
            for sequence in range(fill, fill + args.chunks):
                batch(sequence)
            wall = (time.perf_counter() - wall0) / args.chunks
            cpu = (cpu_s() - cpu0) / args.chunks
            figures[size] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
            print(
                f"{path:>8} batch {size:>3}: {wall * 1000:6.0f} ms wall, "
                f"{cpu * 1000:6.0f} ms CPU per chunk"
            )
            resident.clear()
            if wall >= chunk_s:
                break
            best = size
        paths[path] = {"rooms_realtime": best, "batches": figures}
    same = total = 0
    if len(codes) == 2:
        one, two = codes.values()
        for key in one.keys() & two.keys():
            total += 1
            same += one[key] == two[key]
        print(f"same codes on both paths: {same} of {total} chunks")
    result = {
        "same_codes": {"same": same, "chunks": total},
        "rooms_realtime": {path: figures["rooms_realtime"] for path, figures in paths.items()},
        "chunk_s": chunk_s,
        "slide_margin_steps": engine.slide_margin,
        "threads": args.threads,
        "paths": paths,
        "load_avg_1m_before": load_before,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
