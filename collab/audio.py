"""Audio work for keeping a stretch of a room as a song: read chunks, join them, keep the tail.

Chunks are consecutive pieces of one stream (the codec decodes across their edges), so joining
them end to end gives back exactly what listeners heard: no crossfade is needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from math import gcd

import numpy as np
from scipy.signal import resample_poly

from webapp.songs import audio as song_audio


def read_clip(file) -> tuple[np.ndarray, int]:
    """Mono float32 samples and the sample rate of an audio file (any format soundfile reads)."""
    return song_audio.decode(file.read())


def _resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    if src_rate == dst_rate:
        return pcm
    g = gcd(src_rate, dst_rate)
    return resample_poly(pcm, dst_rate // g, src_rate // g).astype(np.float32)


def join_tail(
    clips: Sequence[tuple[np.ndarray, int]], seconds: float
) -> tuple[np.ndarray, int, float]:
    """The last `seconds` of `clips` played back to back (all of them if they are shorter), at
    the sample rate of the last clip; and how many seconds of the first clip were left out."""
    if not clips:
        raise ValueError("no clips to join")
    rate = clips[-1][1]
    pcm = np.concatenate([_resample(np.asarray(p, dtype=np.float32), r, rate) for p, r in clips])
    keep = min(len(pcm), int(round(seconds * rate)))
    return pcm[len(pcm) - keep :], rate, (len(pcm) - keep) / rate
