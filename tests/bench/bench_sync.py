"""How closely two browsers play one room: `make -s bench-sync`.

Starts a real server (the embedded default, the shipped model conducting the room), opens the
room in two separate headless Chromium processes, presses Join in both and lets them play. Each
browser's local clock is skewed on purpose (?clock_skew_ms=, +1234 ms and -777 ms) so the figures
show the ping/pong offset estimator at work, not two processes sharing one clock.

For every chunk both browsers scheduled, the page records the performance time at which the
chunk's first sample is heard (output latency included). The bench turns that into the
machine's wall clock, which on one machine *is* the server's clock, measured in each page
without the skew and without the estimator: so the figures are ground truth.

- sync_p95_ms / sync_max_ms: |browser A's heard time - browser B's| over the chunks both played.
- abs_error_p95_ms: |heard time - the chunk's server start time| over both browsers.
- max_gap_ms: the largest gap or overlap between consecutive chunks in one browser (chunks
  that follow each other on the server's timeline), on its audio clock.
- underruns / max_underrun_ms: chunks whose audio arrived after their start time had passed
  (the server or the network was late; they start part-way in after a silence). Counted apart
  from max_gap_ms, which is the scheduler's own precision.

Prints figures; asserts nothing about time. The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from tests.e2e.server import (
    CHROMIUM,
    CHROMIUM_ARGS,
    chorus_server,
    missing_requirements,
    sign_up,
    start_room,
)

SKEWS_MS = (1234, -777)
CONTIGUOUS_S = 0.002

WALL_MINUS_PERF_JS = """() => {
  const samples = [];
  for (let i = 0; i < 41; i++) {
    const a = performance.now(); const wall = Date.now(); const b = performance.now();
    samples.push(wall - performance.timeOrigin - (a + b) / 2);
  }
  samples.sort((x, y) => x - y);
  return samples[20];
}"""


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def heard_server_times(page) -> tuple[dict[int, float], list[dict]]:
    """sequence -> the wall-clock (= server) time its first sample is heard, seconds; and the
    placement records it was computed from (one read, so both agree)."""
    correction_ms = page.evaluate(WALL_MINUS_PERF_JS)
    origin = page.evaluate("() => performance.timeOrigin")
    placed = page.evaluate("() => window.__chorus.placed.slice()")
    heard = {c["sequence"]: (origin + c["heardPerfMs"] + correction_ms) / 1000 for c in placed}
    return heard, placed


def gaps_ms(placed: list[dict]) -> tuple[list[float], list[float]]:
    """Gaps (+) or overlaps (-) between consecutive chunks that follow each other on the
    server's timeline, in ms: (scheduled in time, arrived too late to start on time). A chunk
    whose audio came in after its start had passed starts part-way in, after a silence: an
    underrun, the server's or the network's lateness rather than the scheduler's."""
    placed = sorted(placed, key=lambda c: c["sequence"])
    in_time, late = [], []
    for a, b in zip(placed, placed[1:], strict=False):
        server_end = a["serverStart"] + a["offsetS"] + a["playS"]
        if b["sequence"] == a["sequence"] + 1 and abs(b["serverStart"] - server_end) < CONTIGUOUS_S:
            gap = (b["ctxStart"] - (a["ctxStart"] + a["playS"])) * 1000
            (late if b["placement"] == "late" else in_time).append(gap)
    return in_time, late


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=45, help="how long both play")
    args = parser.parse_args()
    reason = missing_requirements()
    if reason:
        print(f"bench-sync cannot run: {reason}", file=sys.stderr)
        print(json.dumps({"skipped": reason}))
        return 1

    from playwright.sync_api import sync_playwright

    with chorus_server() as server, sync_playwright() as p:
        browsers = [
            p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS) for _ in SKEWS_MS
        ]
        pages = [b.new_context().new_page() for b in browsers]
        host, guest = pages
        sign_up(host, server.url, "bench_host")
        room_url = start_room(host, server.url, "Sync bench", "steady house beat with piano")
        for page, skew in zip(pages, SKEWS_MS, strict=True):
            sep = "&" if "?" in room_url else "?"
            page.goto(f"{room_url}{sep}clock_skew_ms={skew}")
            page.get_by_role("button", name="Join and listen").click()
        started = time.monotonic()
        print(f"server {server.url}; both joined; playing for {args.seconds:.0f} s", flush=True)
        while time.monotonic() - started < args.seconds:
            time.sleep(1)

        heard, placed = zip(*(heard_server_times(page) for page in pages), strict=True)
        estimates = [
            page.evaluate(
                "() => ({offset: window.__chorus.socket.clock.offset,"
                " rtt: window.__chorus.socket.clock.minRtt,"
                " latency: window.__chorus.audio.latencyS})"
            )
            for page in pages
        ]
        split = [gaps_ms(records) for records in placed]
        gaps = [g for in_time, _ in split for g in in_time]
        underruns = [g for _, late in split for g in late]
        for b in browsers:
            b.close()

    shared = sorted(set(heard[0]) & set(heard[1]))
    sync = [abs(heard[0][s] - heard[1][s]) * 1000 for s in shared]
    starts = {c["sequence"]: c["serverStart"] for c in placed[0] + placed[1]}
    errors = [abs(h[s] - starts[s]) * 1000 for h in heard for s in h]
    for i, (skew, est) in enumerate(zip(SKEWS_MS, estimates, strict=True)):
        print(
            f"browser {i}: clock skew {skew:+d} ms, estimated offset "
            f"{est['offset'] * 1000:+.1f} ms, min RTT {est['rtt'] * 1000:.1f} ms, output latency "
            f"{est['latency'] * 1000:.0f} ms, {len(placed[i])} chunks placed "
            f"({sum(c['placement'] == 'resync' for c in placed[i])} resyncs)"
        )
        if placed[i]:
            first, last = placed[i][0], placed[i][-1]
            errs = [(heard[i][c["sequence"]] - c["serverStart"]) * 1000 for c in placed[i]]
            print(
                f"  chunks {first['sequence']}..{last['sequence']}; audio-clock lag "
                f"{first['lagMs']:.1f} -> {last['lagMs']:.1f} ms; heard minus server start "
                f"{errs[0]:+.1f} -> {errs[-1]:+.1f} ms"
            )
    if not sync:
        print(json.dumps({"error": "the two browsers played no chunk in common"}))
        return 1
    durations = [c["offsetS"] + c["playS"] for c in placed[0]]
    result = {
        "sync_p95_ms": round(p95(sync), 2),
        "sync_max_ms": round(max(sync), 2),
        "sync_median_ms": round(statistics.median(sync), 2),
        "abs_error_p95_ms": round(p95(errors), 2),
        "max_gap_ms": round(max((abs(g) for g in gaps), default=0.0), 3),
        "underruns": len(underruns),
        "max_underrun_ms": round(max(underruns, default=0.0), 1),
        "chunks_compared": len(shared),
        "chunk_s": round(statistics.median(durations), 3),
        "played_s": args.seconds,
        "skews_ms": list(SKEWS_MS),
    }
    print(
        f"{len(shared)} chunks in both: sync p95 {result['sync_p95_ms']} ms (max "
        f"{result['sync_max_ms']}); heard vs server start p95 {result['abs_error_p95_ms']} ms; "
        f"largest gap/overlap between consecutive chunks {result['max_gap_ms']} ms; "
        f"{len(underruns)} chunks arrived too late to start on time (longest silence "
        f"{result['max_underrun_ms']} ms)"
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
