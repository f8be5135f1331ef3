"""Reading tempo and key back from audio, to check that captions match what is heard.

Small, dependency-light estimators (numpy only):

* tempo: a spectral-flux onset envelope, searched over a fine BPM grid for the beat that its
  Fourier tempogram and its autocorrelation agree on best;
* key: a chromagram (STFT bins folded onto pitch classes) correlated with the Krumhansl-Kessler
  major and minor key profiles in all twelve rotations.

They are checks on the corpus, not analysis tools for arbitrary music: the tempo estimator, like
every autocorrelation method, can report half or double the tempo when the music is ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
"""Krumhansl-Kessler probe-tone profiles, index 0 = tonic."""


def _stft_magnitude(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT| with a Hann window, frames x bins."""
    audio = np.asarray(audio, dtype=np.float64)
    if audio.size < n_fft:
        audio = np.pad(audio, (0, n_fft - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, n_fft)[::hop]
    return np.abs(np.fft.rfft(frames * np.hanning(n_fft), axis=1))


def onset_envelope(
    audio: np.ndarray, sample_rate: int, *, n_fft: int = 1024, hop: int = 256
) -> tuple[np.ndarray, float]:
    """Onset strength per frame (positive spectral flux of log magnitudes, local mean removed)
    and the envelope's frame rate in Hz."""
    magnitude = _stft_magnitude(audio, n_fft, hop)
    log_mag = np.log1p(1000.0 * magnitude)
    flux = np.maximum(0.0, np.diff(log_mag, axis=0)).sum(axis=1)
    fps = sample_rate / hop
    width = max(1, int(0.4 * fps))
    local_mean = np.convolve(flux, np.ones(width) / width, mode="same")
    envelope = np.maximum(0.0, flux - local_mean)
    return envelope, fps


def _pulse_strength(envelope: np.ndarray, fps: float, bpm: np.ndarray) -> np.ndarray:
    """Magnitude of the envelope's Fourier component at each tempo (a Fourier tempogram)."""
    frames = np.arange(envelope.size)
    phases = np.exp(-2j * np.pi * np.outer(bpm / 60.0 / fps, frames))
    return np.abs(phases @ envelope) / envelope.size


def estimate_tempo(
    audio: np.ndarray,
    sample_rate: int,
    *,
    bpm_range: tuple[float, float] = (60.0, 180.0),
    resolution: float = 0.05,
) -> float:
    """The tempo in BPM within ``bpm_range`` that best explains the onset envelope.

    Two views of periodicity are combined, each scaled to a maximum of 1:

    * pulse strength: the envelope's Fourier magnitude at the beat rate plus half of it at twice
      and a quarter at four times the rate (beats and their subdivisions);
    * self-similarity: the mean normalised autocorrelation at one to four beat periods,
      interpolated between lags, so the period is resolved far more finely than one frame.

    Fourier magnitudes favour fast pulses and autocorrelation favours slow ones (multiples of a
    period repeat too); together they pick the beat level on drum-driven music. Music whose
    eighth notes are louder than its beats can still come out at double tempo.
    """
    envelope, fps = onset_envelope(audio, sample_rate)
    envelope = envelope - envelope.mean()
    n = envelope.size
    spectrum = np.fft.rfft(envelope, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if ac[0] <= 0:
        return float("nan")
    ac = ac / ac[0] * n / (n - np.arange(n))  # unbiased: long lags overlap fewer frames

    def views(bpm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pulse = (
            _pulse_strength(envelope, fps, bpm)
            + 0.5 * _pulse_strength(envelope, fps, 2 * bpm)
            + 0.25 * _pulse_strength(envelope, fps, 4 * bpm)
        )
        periods = 60.0 * fps / bpm
        similarity = sum(np.interp(k * periods, np.arange(n), ac) for k in (1, 2, 3, 4)) / 4
        return pulse, similarity

    # A coarse pass over the whole range fixes the scale of both views and the best region;
    # a fine pass around it finds the tempo to ``resolution``.
    low, high = bpm_range
    coarse = np.arange(low, high + 0.125, 0.25)
    pulse, similarity = views(coarse)
    pulse_scale, similarity_scale = pulse.max(), np.abs(similarity).max()
    best = coarse[int(np.argmax(pulse / pulse_scale + similarity / similarity_scale))]
    fine = np.arange(max(low, best - 0.5), min(high, best + 0.5) + resolution / 2, resolution)
    pulse, similarity = views(fine)
    score = pulse / pulse_scale + similarity / similarity_scale
    return float(fine[int(np.argmax(score))])


def chroma(
    audio: np.ndarray, sample_rate: int, *, n_fft: int = 8192, hop: int = 2048
) -> np.ndarray:
    """Energy per pitch class (C = 0) over the whole clip, normalised to sum 1.

    Bins between 50 Hz and 1 kHz (fundamentals, few overtones) are folded onto the nearest
    equal-tempered pitch class; each frame's spectrum has its median subtracted first, which keeps
    tonal peaks and drops most of the broadband energy of drums.
    """
    magnitude = _stft_magnitude(audio, n_fft, hop)
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (freqs >= 50.0) & (freqs <= 1000.0)
    magnitude = magnitude[:, band]
    magnitude = np.maximum(0.0, magnitude - np.median(magnitude, axis=1, keepdims=True))
    pitch_class = np.round(69 + 12 * np.log2(freqs[band] / 440.0)).astype(int) % 12
    profile = np.zeros(12)
    np.add.at(profile, pitch_class, magnitude.sum(axis=0))
    total = profile.sum()
    return profile / total if total > 0 else profile


@dataclass(frozen=True)
class KeyEstimate:
    """A key as tonic pitch class and mode, with its profile correlation (-1..1)."""

    tonic: int
    mode: str
    score: float


def estimate_key(audio: np.ndarray, sample_rate: int) -> KeyEstimate:
    """The major or minor key whose Krumhansl-Kessler profile best matches the clip's chroma."""
    profile = chroma(audio, sample_rate)
    best = KeyEstimate(0, "major", -2.0)
    for mode, template in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            score = float(np.corrcoef(profile, np.roll(template, tonic))[0, 1])
            if score > best.score:
                best = KeyEstimate(tonic, mode, score)
    return best
