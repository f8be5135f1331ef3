"""Rooms one gpu worker keeps at real time on this CPU, through the job path the service runs.

    python -m tests.bench.bench_worker [--threads 2] [--sizes 1,2,4,8,16,24,32] [--chunks 4]

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
    args = parser.parse_args(argv)
    os.environ["CHORUS_TORCH_THREADS"] = str(args.threads)

    from generation import tasks

    engine = tasks.engine()
    store = tasks.MemoryStore()
    chunk_s = engine.chunk_frames / engine.frame_rate
    # chunks until the context window is full: the steady state (prefill of a whole window)
    fill = -(-engine.model.config.context // engine.chunk_frames) + 1
    out = tempfile.mkdtemp(prefix="chorus-bench-worker-")
    figures: dict[int, dict] = {}
    best = 0
    print(f"chunk {chunk_s:.1f} s, {args.threads} torch threads, context filled after {fill}")
    for size in (int(x) for x in args.sizes.split(",")):
        rooms = [f"bench-{size}-{i}" for i in range(size)]
        steering = {"prompts": [["warm lo-fi beat with soft piano", 1.0]], "controls": {}}

        def batch(sequence: int, rooms=rooms, steering=steering) -> None:
            jobs = [
                {"room": r, "sequence": sequence, "seed": i, "steering": steering}
                for i, r in enumerate(rooms)
            ]
            results = tasks.run_room_jobs(jobs, out, engine, store)
            failed = [r for r in results if "error" in r]
            if failed:
                raise RuntimeError(f"the engine refused a job: {failed[0]}")

        for sequence in range(fill):
            batch(sequence)
        wall0, cpu0 = time.perf_counter(), cpu_s()
        for sequence in range(fill, fill + args.chunks):
            batch(sequence)
        wall = (time.perf_counter() - wall0) / args.chunks
        cpu = (cpu_s() - cpu0) / args.chunks
        figures[size] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
        print(f"batch {size:>3}: {wall * 1000:6.0f} ms wall, {cpu * 1000:6.0f} ms CPU per chunk")
        if wall >= chunk_s:
            break
        best = size
    result = {
        "rooms_realtime": best,
        "chunk_s": chunk_s,
        "threads": args.threads,
        "batches": figures,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
