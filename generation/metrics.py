"""The engine's Prometheus metrics. No Django here (generation/ never imports it).

`generation.tasks.run_room_jobs` reports each batched call for room chunks. Whoever runs it (a
`gpu` worker, or the web process in the embedded default) exposes them: webapp/metrics.py on
`/metrics`, `webapp.metrics.serve_from_env` on a port of its own for workers (docs/deploy.md).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ROOM_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 192, 256)

BATCH_ROOMS = Histogram(
    "chorus_generation_batch_rooms",
    "Room chunks made by one batched engine call.",
    buckets=ROOM_BUCKETS,
)
BATCH_SECONDS = Histogram(
    "chorus_generation_batch_seconds",
    "Wall time of one batched engine call for room chunks (codec decode included).",
    buckets=(0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
)
REALTIME_FACTOR = Histogram(
    "chorus_generation_realtime_factor",
    "Seconds of music each room got per second of its batched engine call: below 1, the "
    "rooms in that batch fall behind their listeners.",
    buckets=(0.5, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0),
)
CHUNKS = Counter("chorus_generation_chunks", "Room chunks made by the engine.")


def room_batch_observe(chunks, *, elapsed_s: float) -> None:
    """One batched call made `chunks` (generation.lm.stream chunks, one per room) in
    `elapsed_s` seconds."""
    if not chunks:
        return
    BATCH_ROOMS.observe(len(chunks))
    BATCH_SECONDS.observe(elapsed_s)
    REALTIME_FACTOR.observe(chunks[0].duration_s / max(elapsed_s, 1e-6))
    CHUNKS.inc(len(chunks))
