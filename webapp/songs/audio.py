"""Audio file work for songs: master encoding, transcodes for download, waveform peaks.

The master is FLAC (lossless, half the size of WAV). Downloads in WAV, FLAC or Ogg Opus are made
from the master on first request and kept beside it in storage.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from math import gcd

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


@dataclass(frozen=True)
class AudioFormat:
    name: str
    extension: str
    content_type: str
    sf_format: str
    sf_subtype: str


FORMATS: dict[str, AudioFormat] = {
    "wav": AudioFormat("wav", "wav", "audio/wav", "WAV", "PCM_16"),
    "flac": AudioFormat("flac", "flac", "audio/flac", "FLAC", "PCM_16"),
    "opus": AudioFormat("opus", "opus", "audio/ogg", "OGG", "OPUS"),
}


def compute_peaks(pcm: np.ndarray, buckets: int) -> list[float]:
    """Peak absolute amplitude per bucket, for drawing a waveform; 3 decimals keep JSON small."""
    if len(pcm) == 0:
        return []
    buckets = min(buckets, len(pcm))
    edges = np.linspace(0, len(pcm), buckets + 1).astype(np.int64)
    peaks = np.maximum.reduceat(np.abs(pcm.astype(np.float32)), edges[:-1])
    return [round(float(p), 3) for p in np.clip(peaks, 0.0, 1.0)]


def _resample(pcm: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    if src_rate == dst_rate:
        return pcm
    g = gcd(src_rate, dst_rate)
    return resample_poly(pcm, dst_rate // g, src_rate // g).astype(np.float32)


def encode(pcm: np.ndarray, sample_rate: int, fmt: AudioFormat) -> bytes:
    pcm = np.clip(np.asarray(pcm, dtype=np.float32), -1.0, 1.0)
    if fmt.name == "opus" and sample_rate not in OPUS_RATES:
        pcm, sample_rate = _resample(pcm, sample_rate, 48000), 48000
    buffer = io.BytesIO()
    sf.write(buffer, pcm, sample_rate, format=fmt.sf_format, subtype=fmt.sf_subtype)
    return buffer.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, int]:
    pcm, sample_rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    if pcm.ndim == 2:
        pcm = pcm.mean(axis=1)
    return pcm, sample_rate
