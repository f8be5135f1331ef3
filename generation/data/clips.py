"""Cutting rendered pieces into fixed-length clips, and telling silent ones apart."""

from __future__ import annotations

import numpy as np


def clip_windows(n_samples: int, sample_rate: int, clip_seconds: float) -> list[tuple[int, int]]:
    """Consecutive, non-overlapping (start, end) sample ranges of exactly ``clip_seconds``.

    A remainder shorter than one clip at the end of the piece is dropped.
    """
    length = round(clip_seconds * sample_rate)
    if length <= 0:
        raise ValueError("clip_seconds must be positive")
    return [(start, start + length) for start in range(0, n_samples - length + 1, length)]


def is_silent(
    clip: np.ndarray,
    sample_rate: int,
    *,
    floor_dbfs: float = -50.0,
    min_active: float = 0.5,
) -> bool:
    """True when less than ``min_active`` of the clip's 100 ms frames are louder than
    ``floor_dbfs`` (RMS): rests, fade-outs and reverb tails, which teach a model nothing."""
    frame = max(1, sample_rate // 10)
    usable = clip[: clip.size - clip.size % frame]
    if usable.size == 0:
        return True
    rms = np.sqrt(np.mean(np.square(usable.reshape(-1, frame), dtype=np.float64), axis=1))
    active = rms > 10 ** (floor_dbfs / 20)
    return float(np.mean(active)) < min_active
