"""What a listener heard: chunks missed on a room's timeline, as bench_scale.py and soak.py
count them. Plain functions over plain data (no Django, no sockets); tests in
tests/bench/test_listening.py.

A room's music is a timeline: chunk n plays from `origin + start_s` for `duration_s` (unix
seconds; docs/protocol.md). The final rows of the room's Chunk table say what the timeline
became (a remade chunk keeps its id and gets a higher `revision`). Over a window of a
listener's connection, a **missed chunk** is a chunk's length of that timeline the listener
does not hear. It is one of:

- *silent*: a stretch of the timeline that no chunk covers, because a chunk came back after
  its planned start and the conductor placed it later (collab.conductor.record_start), or
  never came back. Each stretch longer than TOLERANCE_S counts ⌈(length - TOLERANCE_S) /
  chunk length⌉ chunks: a 4.8 s hole in 1 s chunks is 5 missed chunks.
- *never*: a chunk starting inside the window that the listener never got announced (neither
  in a `chunk` frame nor in a snapshot);
- *late*: announced only after its start (the listener cannot play it from the start);
- *stale*: the listener got the chunk, but not its final revision (it plays the old version).

The window of a connection starts SETTLE_S after the socket opened (the snapshot's chunks
cover what was announced before) and ends when the listener stopped listening.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

TOLERANCE_S = 0.05  # joins between chunks below this are rounding, not silence
SETTLE_S = 0.5


@dataclass(frozen=True)
class TimelineChunk:
    """A final row of the room's Chunk table."""

    id: int
    sequence: int
    revision: int
    start_s: float  # on the room's timeline (seconds after its origin)
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class Receipt:
    """A chunk as a listener got it: from a `chunk` frame or a snapshot, at unix time `at`."""

    id: int
    revision: int
    at: float


@dataclass(frozen=True)
class Missed:
    silent: int = 0
    never: int = 0
    late: int = 0
    stale: int = 0
    silent_s: float = 0.0
    longest_silence_s: float = 0.0

    @property
    def total(self) -> int:
        return self.silent + self.never + self.late + self.stale

    def __add__(self, other: Missed) -> Missed:
        return Missed(
            self.silent + other.silent,
            self.never + other.never,
            self.late + other.late,
            self.stale + other.stale,
            round(self.silent_s + other.silent_s, 3),
            max(self.longest_silence_s, other.longest_silence_s),
        )


def silent_stretches(
    chunks: Iterable[TimelineChunk], start_s: float, end_s: float
) -> list[tuple[float, float]]:
    """The stretches of [start_s, end_s) (room time) that no chunk covers, longer than
    TOLERANCE_S."""
    holes, cursor = [], start_s
    for chunk in sorted(chunks, key=lambda c: c.start_s):
        if chunk.end_s <= cursor:
            continue
        if chunk.start_s >= end_s:
            break
        if chunk.start_s - cursor > TOLERANCE_S:
            holes.append((cursor, chunk.start_s))
        cursor = max(cursor, chunk.end_s)
    if end_s - cursor > TOLERANCE_S:
        holes.append((cursor, end_s))
    return holes


def slots(length_s: float, chunk_s: float) -> int:
    """Chunks' worth of a silent stretch: at least one for any hole above the tolerance."""
    return max(1, math.ceil((length_s - TOLERANCE_S) / chunk_s - 1e-9))


def missed_chunks(
    chunks: list[TimelineChunk],
    receipts: Iterable[Receipt],
    *,
    origin: float,
    window: tuple[float, float],
    chunk_s: float,
) -> Missed:
    """Chunks one listener missed over `window` (unix seconds: from, to) of a room whose
    timeline starts at `origin`."""
    start_s, end_s = window[0] - origin, window[1] - origin
    if end_s <= start_s:
        return Missed()
    holes = silent_stretches(chunks, start_s, end_s)
    got: dict[int, list[Receipt]] = {}
    for receipt in receipts:
        got.setdefault(receipt.id, []).append(receipt)
    never = late = stale = 0
    for chunk in chunks:
        if not start_s <= chunk.start_s < end_s:
            continue
        mine = got.get(chunk.id, [])
        final = [r.at for r in mine if r.revision == chunk.revision]
        if not mine:
            never += 1
        elif not final:
            stale += 1
        elif min(final) > origin + chunk.start_s:
            late += 1
    return Missed(
        silent=sum(slots(b - a, chunk_s) for a, b in holes),
        never=never,
        late=late,
        stale=stale,
        silent_s=round(sum(b - a for a, b in holes), 3),
        longest_silence_s=round(max((b - a for a, b in holes), default=0.0), 3),
    )


def connection_windows(
    connections: Iterable[tuple[float, float | None]], *, start: float, end: float
) -> list[tuple[float, float]]:
    """The parts of a listener's connections (opened, closed or None while open) inside
    [start, end], each starting SETTLE_S after its socket opened."""
    windows = []
    for opened, closed in connections:
        a = max(start, opened + SETTLE_S)
        b = min(end, closed if closed is not None else end)
        if b > a:
            windows.append((a, b))
    return windows


def percentile(values: list[float], q: float) -> float | None:
    """The q-quantile (0..1) by nearest rank; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def votes_lost(
    *,
    acked: list[tuple[int, float, int, float]],
    history: list[tuple[int, int]],
    refused: list[int],
    stored: dict[int, int],
    round_of: dict[int, int],
) -> list[dict]:
    """A client's acknowledged votes that PostgreSQL does not hold, one per round: what the
    round holds and what it should.

    `acked`: (message id, latency, proposal, when) of each acknowledged vote; `history`:
    (message id, proposal) of every vote sent; `refused`: ids answered with an error;
    `stored`: the client's row per round (round -> proposal); `round_of`: proposal -> round.
    In each round, the row must be the client's last acknowledged vote, or a vote it sent
    after that which was never answered (stored, but the answer was lost with the socket)."""
    lost = []
    rounds = {round_of.get(proposal) for _, _, proposal, _ in acked}
    for round_id in rounds:
        mine = [a for a in acked if round_of.get(a[2]) == round_id]
        last_id, _, last_proposal, last_at = max(mine)
        later = {
            p
            for i, p in history
            if i > last_id and i not in refused and round_of.get(p) == round_id
        }
        if stored.get(round_id) not in {last_proposal} | later:
            lost.append(
                {
                    "round": round_id,
                    "stored": stored.get(round_id),
                    "acked": last_proposal,
                    "acked_at": last_at,
                    "rounds_held": sorted(r for r, p in stored.items() if p == last_proposal),
                }
            )
    return lost
