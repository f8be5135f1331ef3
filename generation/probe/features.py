"""A fixed, hand-designed feature vector for one audio clip: what the attribute probe reads.

The probe has to tell 17 styles and a few dozen instruments apart on anything from 1.5 s chunks
to 10 s clips, train in minutes on two CPU cores and give the same answer every time, so the
features are summary statistics of a log-mel spectrogram and a handful of classic descriptors
rather than a learned front end. Everything is numpy, float64, with no randomness.

The clip is first scaled to a fixed RMS level: loudness is not a style, and a generator's output
level should not move the probe. Then, from one STFT (2048-point Hann window, 20 ms hop):

* log-mel statistics over time, 64 bands from 40 Hz to 11 kHz: the mean (timbre and spectral
  balance), the standard deviation (how much each band moves) and the mean absolute frame-to-frame
  change (how percussive each band is);
* spectral shape per frame, summarised by mean and standard deviation: centroid (log Hz) and
  flatness (log of geometric over arithmetic mean power of the mel bands), plus the mean 85 %
  roll-off (log Hz);
* band energy shares (log): below 150 Hz, 150-500 Hz and above 4 kHz, of the whole clip;
* rhythm: onsets per second (peaks of the log-mel flux), the flux's mean and relative spread, and
  the flux's normalised autocorrelation at 16 lags spaced logarithmically from 0.1 s to 1 s, a
  tempo-invariant-enough picture of how regular and how fast the pulse is;
* dynamics: the standard deviation of frame energy in dB, and the zero-crossing rate;
* tonality without the key: the chroma profile (``generation.data.analysis.chroma``) sorted in
  descending order, and its entropy, which separate diatonic from chromatic and drone music
  whatever the tonic.

:data:`FEATURE_NAMES` names every column, in order.
"""

from __future__ import annotations

import numpy as np

from generation.data.analysis import chroma

FEATURES_VERSION = 1
"""Bumped whenever a change alters feature values: probes and feature caches check it."""

SAMPLE_RATE = 24_000
"""The rate features are computed at; other rates are resampled first."""

N_FFT = 2048
HOP = 480  # 20 ms at 24 kHz: 50 frames per second
N_MELS = 64
F_MIN, F_MAX = 40.0, 11_000.0
TARGET_RMS = 0.1  # -20 dBFS
MEL_FLOOR = 1e-3  # ~40 dB below white noise at TARGET_RMS: hides window leakage in empty bands
ONSET_MIN_FLUX = 3.0  # an onset raises the log-mel spectrum by at least this much, summed
MIN_SECONDS = 0.5
"""Shortest clip accepted; the probe is trained for 1.5 s and longer."""

AUTOCORR_LAGS_S = np.geomspace(0.1, 1.0, 16)
_EPS = 1e-10


def _names() -> tuple[str, ...]:
    names = [f"mel_mean_{i}" for i in range(N_MELS)]
    names += [f"mel_std_{i}" for i in range(N_MELS)]
    names += [f"mel_flux_{i}" for i in range(N_MELS)]
    names += ["centroid_mean", "centroid_std", "flatness_mean", "flatness_std", "rolloff_mean"]
    names += ["share_below_150", "share_150_500", "share_above_4k"]
    names += ["onset_rate", "flux_mean", "flux_spread"]
    names += [f"flux_autocorr_{lag:.2f}s" for lag in AUTOCORR_LAGS_S]
    names += ["energy_db_std", "zero_crossing_rate"]
    names += [f"chroma_sorted_{i}" for i in range(12)] + ["chroma_entropy"]
    return tuple(names)


FEATURE_NAMES: tuple[str, ...] = _names()
N_FEATURES = len(FEATURE_NAMES)


def _mel_filterbank() -> np.ndarray:
    """Triangular HTK-mel filters, [N_MELS, N_FFT // 2 + 1], each normalised to sum 1."""
    freqs = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
    to_mel = lambda f: 2595.0 * np.log10(1.0 + f / 700.0)  # noqa: E731
    edges_mel = np.linspace(to_mel(F_MIN), to_mel(F_MAX), N_MELS + 2)
    edges = 700.0 * (10.0 ** (edges_mel / 2595.0) - 1.0)
    low, centre, high = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs[None, :] - low) / (centre - low)
    falling = (high - freqs[None, :]) / (high - centre)
    weights = np.maximum(0.0, np.minimum(rising, falling))
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), _EPS)


_MEL = _mel_filterbank()
_FREQS = np.fft.rfftfreq(N_FFT, 1.0 / SAMPLE_RATE)
_WINDOW = np.hanning(N_FFT)


def resample(audio: np.ndarray, sample_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling by zero-padding or truncating the spectrum (whole clip at once)."""
    audio = np.asarray(audio, dtype=np.float64)
    if sample_rate == target_rate:
        return audio
    n_out = int(round(audio.size * target_rate / sample_rate))
    spectrum = np.fft.rfft(audio)
    return np.fft.irfft(spectrum, n_out)[:n_out] * (n_out / audio.size)


def _power_spectrogram(audio: np.ndarray) -> np.ndarray:
    """|STFT|^2, frames x bins, for a clip padded to at least one window."""
    if audio.size < N_FFT:
        audio = np.pad(audio, (0, N_FFT - audio.size))
    frames = np.lib.stride_tricks.sliding_window_view(audio, N_FFT)[::HOP]
    spectrum = np.fft.rfft(frames * _WINDOW, axis=1)
    return spectrum.real**2 + spectrum.imag**2


def _autocorrelation(envelope: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """Normalised, unbiased autocorrelation of a mean-removed envelope at fractional lags."""
    x = envelope - envelope.mean()
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    if ac[0] <= _EPS:
        return np.zeros(lags.size)
    ac = ac / ac[0] * n / np.maximum(1, n - np.arange(n))
    return np.interp(lags, np.arange(n), ac, right=0.0)


def _onset_rate(flux: np.ndarray, seconds: float) -> float:
    """Peaks of the flux above its mean plus half a standard deviation (and above
    ONSET_MIN_FLUX, so that a steady tone has none), per second."""
    if flux.size < 3:
        return 0.0
    threshold = max(flux.mean() + 0.5 * flux.std(), ONSET_MIN_FLUX)
    inner = flux[1:-1]
    peaks = (inner > flux[:-2]) & (inner >= flux[2:]) & (inner > threshold)
    return float(peaks.sum()) / seconds


def extract(audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The feature vector of one mono clip, float32 [N_FEATURES] (see the module docstring)."""
    audio = resample(np.asarray(audio, dtype=np.float64).reshape(-1), sample_rate)
    seconds = audio.size / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise ValueError(f"clip of {seconds:.2f} s is too short for the probe (>= {MIN_SECONDS} s)")
    rms = float(np.sqrt(np.mean(audio**2)))
    if rms > 1e-6:
        audio = audio * (TARGET_RMS / rms)

    power = _power_spectrogram(audio)  # [T, F]
    log_mel = np.log(power @ _MEL.T + MEL_FLOOR)  # [T, N_MELS], T >= 20 for MIN_SECONDS
    mel_diff = np.diff(log_mel, axis=0)

    frame_power = power.sum(axis=1) + _EPS
    centroid = np.log((power @ _FREQS) / frame_power + 1.0)
    mel_power = np.exp(log_mel)
    flatness = log_mel.mean(axis=1) - np.log(mel_power.mean(axis=1))  # <= 0, 0 for flat
    cumulative = np.cumsum(power, axis=1)
    rolloff = _FREQS[np.argmax(cumulative >= 0.85 * cumulative[:, -1:], axis=1)]

    band_power = power.sum(axis=0)
    total = band_power.sum() + _EPS
    shares = [
        band_power[_FREQS < 150.0].sum() / total,
        band_power[(_FREQS >= 150.0) & (_FREQS < 500.0)].sum() / total,
        band_power[_FREQS >= 4000.0].sum() / total,
    ]

    flux = np.maximum(0.0, mel_diff).sum(axis=1)  # onset strength per frame
    fps = SAMPLE_RATE / HOP
    flux_mean = float(flux.mean())
    rhythm = [
        _onset_rate(flux, seconds),
        np.log1p(flux_mean),
        float(flux.std() / (flux_mean + _EPS)) if flux_mean > _EPS else 0.0,
    ]
    autocorr = _autocorrelation(flux, AUTOCORR_LAGS_S * fps)

    energy_db = 10.0 * np.log10(frame_power)
    zero_crossings = float(np.mean(np.abs(np.diff(np.signbit(audio).astype(np.int8)))))

    profile = chroma(audio, SAMPLE_RATE)
    entropy = float(-np.sum(profile * np.log(profile + _EPS)) / np.log(12))

    vector = np.concatenate(
        [
            log_mel.mean(axis=0),
            log_mel.std(axis=0),
            np.abs(mel_diff).mean(axis=0),
            [centroid.mean(), centroid.std(), flatness.mean(), flatness.std()],
            [np.log(rolloff.mean() + 1.0)],
            np.log(np.asarray(shares) + 1e-6),
            rhythm,
            autocorr,
            [energy_db.std(), zero_crossings],
            np.sort(profile)[::-1],
            [entropy],
        ]
    )
    assert vector.size == N_FEATURES
    return vector.astype(np.float32)


def extract_batch(clips: list[np.ndarray], sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Features of several clips stacked, float32 [N, N_FEATURES]."""
    if not clips:
        return np.zeros((0, N_FEATURES), dtype=np.float32)
    return np.stack([extract(clip, sample_rate) for clip in clips])
