"""Clock maths for hearing the same moment at the same time: pure functions, seconds as floats.

A client sends `ping(t0)` by its clock, the server answers `pong(t0, server_time)`, the client
reads t1 on arrival. Assuming the two legs take equally long, the server clock is ahead of the
client's by `server_time - (t0 + t1) / 2`, with an error of at most half the round trip. So the
sample with the smallest round trip is the best one (NTP's and Snapcast's rule); a few of the
smallest are averaged against jitter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockSample:
    client_sent: float  # t0, client clock
    server_time: float  # server clock when it answered
    client_received: float  # t1, client clock

    @property
    def rtt(self) -> float:
        return self.client_received - self.client_sent

    @property
    def offset(self) -> float:
        """server clock minus client clock, by this sample."""
        return self.server_time - (self.client_sent + self.client_received) / 2


def estimate_offset(samples: Iterable[ClockSample], *, best_of: int = 3) -> tuple[float, float]:
    """(offset, error bound): the mean offset of the `best_of` lowest-RTT samples, and half the
    largest RTT among them. Samples with a negative RTT (a clock stepped mid-probe) are ignored."""
    usable = sorted((s for s in samples if s.rtt >= 0), key=lambda s: s.rtt)[:best_of]
    if not usable:
        raise ValueError("no usable clock samples")
    offset = sum(s.offset for s in usable) / len(usable)
    return offset, usable[-1].rtt / 2


@dataclass(frozen=True)
class ChunkSlot:
    sequence: int
    start: float  # server time at which its first sample plays
    duration: float


def playback_position(
    chunks: Sequence[ChunkSlot], server_now: float
) -> tuple[ChunkSlot, float] | None:
    """The chunk playing at `server_now` and how far into it, for a late joiner to start
    mid-chunk; None if nothing announced covers that moment."""
    for chunk in chunks:
        into = server_now - chunk.start
        if 0 <= into < chunk.duration:
            return chunk, into
    return None


def lead_time(chunks: Sequence[ChunkSlot], server_now: float) -> float:
    """How much generated audio lies ahead of the playback clock (the conductor keeps this
    between one and two chunks)."""
    if not chunks:
        return 0.0
    end = max(c.start + c.duration for c in chunks)
    return max(0.0, end - server_now)
