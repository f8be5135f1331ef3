"""Spectral distances shared by codec training and evaluation.

One definition of each distance serves both the training loss and the reported metric, so a number
in a training log and a number from `python -m generation.eval codec` mean the same thing, for our
codec and for Opus alike:

- `mel_distance`: mean L1 between log10 mel spectrograms at three resolutions (window 512, 1024,
  2048 samples at 24 kHz, with 32, 64 and 128 mel bands), as in DAC's multi-scale mel loss.
- `stft_distance`: multi-resolution STFT distance (spectral convergence plus L1 between log
  magnitudes) at windows 256, 512, 1024 and 2048, as in Parallel WaveGAN, except that spectral
  convergence is ||R - E|| / (||R|| + ||E||) per clip: bounded in [0, 1], so a silent reference
  crop (||R|| ~ 0) cannot blow the loss up, and still 0 only when E = R.
- `si_sdr`: scale-invariant signal-to-distortion ratio in dB (higher is better).

torchaudio is not a dependency, so the mel filterbank is written here (HTK mel scale, triangular
filters without area normalisation, like torchaudio's defaults).
"""

from __future__ import annotations

import functools

import torch
from torch import Tensor

MEL_SCALES: tuple[tuple[int, int], ...] = ((512, 32), (1024, 64), (2048, 128))
"""(window length, mel bands) of the multi-scale mel distance; hop is a quarter of the window."""

STFT_RESOLUTIONS: tuple[int, ...] = (256, 512, 1024, 2048)
"""Window lengths of the multi-resolution STFT distance; hop is a quarter of the window."""

LOG_FLOOR = 1e-5


def hz_to_mel(hz: Tensor | float) -> Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(hz, dtype=torch.float64) / 700.0)


def mel_to_hz(mel: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


@functools.lru_cache(maxsize=32)
def mel_filterbank(
    n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> Tensor:
    """Triangular mel filters as a [n_mels, n_fft // 2 + 1] float32 matrix (cached, do not mutate).

    Filter m rises linearly from mel point m to m+1 and falls to m+2, the points being equally
    spaced on the HTK mel scale between f_min and f_max (default: Nyquist).
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    bins_hz = torch.linspace(0.0, sample_rate / 2, n_fft // 2 + 1, dtype=torch.float64)
    points_hz = mel_to_hz(torch.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    lower, centre, upper = points_hz[:-2, None], points_hz[1:-1, None], points_hz[2:, None]
    rising = (bins_hz - lower) / (centre - lower)
    falling = (upper - bins_hz) / (upper - centre)
    return torch.clamp(torch.minimum(rising, falling), min=0.0).float()


@functools.lru_cache(maxsize=32)
def _hann(n_fft: int, device: torch.device) -> Tensor:
    return torch.hann_window(n_fft, device=device)


def magnitude(wave: Tensor, n_fft: int, hop: int | None = None) -> Tensor:
    """|STFT| of wave [B, T] as [B, n_fft // 2 + 1, frames], Hann window, centred, float32."""
    hop = hop or n_fft // 4
    spec = torch.stft(
        wave.float(),
        n_fft,
        hop_length=hop,
        window=_hann(n_fft, wave.device),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )
    return spec.abs()


def log_mel(wave: Tensor, sample_rate: int, n_fft: int, n_mels: int) -> Tensor:
    """log10 mel spectrogram [B, n_mels, frames] of wave [B, T]."""
    fb = mel_filterbank(n_fft, n_mels, sample_rate).to(wave.device)
    return torch.log10(torch.clamp(fb @ magnitude(wave, n_fft), min=LOG_FLOOR))


def mel_distance(ref: Tensor, est: Tensor, sample_rate: int = 24000) -> Tensor:
    """Multi-scale log-mel L1 distance, averaged over scales; per item, shape [B].

    Inputs are [B, T] or [T] (then the result is a scalar tensor). Lower is better; identical
    signals give 0. This one function is both the training mel loss and the reported metric.
    """
    ref, est, squeeze = _as_batch(ref, est)
    total = ref.new_zeros(ref.shape[0])
    for n_fft, n_mels in MEL_SCALES:
        diff = log_mel(ref, sample_rate, n_fft, n_mels) - log_mel(est, sample_rate, n_fft, n_mels)
        total = total + diff.abs().mean(dim=(1, 2))
    total = total / len(MEL_SCALES)
    return total[0] if squeeze else total


def stft_distance(ref: Tensor, est: Tensor) -> Tensor:
    """Multi-resolution STFT distance (symmetric spectral convergence + log-magnitude L1); [B]."""
    ref, est, squeeze = _as_batch(ref, est)
    total = ref.new_zeros(ref.shape[0])
    for n_fft in STFT_RESOLUTIONS:
        mag_ref, mag_est = magnitude(ref, n_fft), magnitude(est, n_fft)
        norm = torch.linalg.vector_norm(mag_ref, dim=(1, 2))
        norm = norm + torch.linalg.vector_norm(mag_est, dim=(1, 2))
        convergence = torch.linalg.vector_norm(mag_ref - mag_est, dim=(1, 2)) / (norm + LOG_FLOOR)
        log_l1 = (
            (torch.log(mag_ref.clamp(min=LOG_FLOOR)) - torch.log(mag_est.clamp(min=LOG_FLOOR)))
            .abs()
            .mean(dim=(1, 2))
        )
        total = total + convergence + log_l1
    total = total / len(STFT_RESOLUTIONS)
    return total[0] if squeeze else total


def si_sdr(ref: Tensor, est: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB, per item [B] (zero-mean signals, as in Le Roux et al. 2019)."""
    ref, est, squeeze = _as_batch(ref, est)
    ref = ref.double() - ref.double().mean(dim=-1, keepdim=True)
    est = est.double() - est.double().mean(dim=-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ((ref * ref).sum(-1, keepdim=True) + eps)
    target = scale * ref
    noise = est - target
    value = 10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))
    value = value.float()
    return value[0] if squeeze else value


def clip_metrics(ref: Tensor, est: Tensor, sample_rate: int = 24000) -> dict[str, float]:
    """The reported distances between one reference clip [T] and its reconstruction [T']."""
    return {
        "mel_distance": float(mel_distance(ref, est, sample_rate)),
        "stft_distance": float(stft_distance(ref, est)),
        "si_sdr": float(si_sdr(ref, est)),
    }


def _as_batch(ref: Tensor, est: Tensor) -> tuple[Tensor, Tensor, bool]:
    """Both signals as [B, T], trimmed to the shorter length; whether the input was unbatched."""
    squeeze = ref.dim() == 1
    if squeeze:
        ref, est = ref[None], est[None]
    length = min(ref.shape[-1], est.shape[-1])
    return ref[..., :length], est[..., :length], squeeze
