"""Discriminators for adversarial codec training (used only by the training loop).

- Multi-period (HiFi-GAN): the wave folded into [T / p, p] for p in (2, 3, 5, 7, 11), 2-D convs
  along time; sees periodic structure (pitch) at the sample level.
- Multi-resolution STFT (UnivNet / Vocos): 2-D convs over log-magnitude spectrograms at three
  window sizes; sees spectral texture (noise, harmonics) that spectral losses average away.

Losses are the hinge GAN loss and L1 feature matching normalised per layer (as in Vocos / DAC).
Channel widths are smaller than HiFi-GAN's so that a CPU smoke run stays tolerable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

Features = list[Tensor]


def _conv_stack(x: Tensor, layers: nn.ModuleList, out: nn.Module) -> tuple[Tensor, Features]:
    """Leaky-ReLU conv layers then the output conv: (flattened logits, every layer's output)."""
    features = []
    for layer in layers:
        x = F.leaky_relu(layer(x), 0.1)
        features.append(x)
    x = out(x)
    features.append(x)
    return x.flatten(1), features


class PeriodDiscriminator(nn.Module):
    def __init__(self, period: int, channels: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        self.period = period
        layers, c_in = [], 1
        for c_out in channels:
            layers.append(weight_norm(nn.Conv2d(c_in, c_out, (5, 1), (3, 1), padding=(2, 0))))
            c_in = c_out
        layers.append(weight_norm(nn.Conv2d(c_in, c_in, (5, 1), 1, padding=(2, 0))))
        self.layers = nn.ModuleList(layers)
        self.out = weight_norm(nn.Conv2d(c_in, 1, (3, 1), 1, padding=(1, 0)))

    def forward(self, wave: Tensor) -> tuple[Tensor, Features]:
        x = F.pad(wave, (0, (-wave.shape[-1]) % self.period), mode="reflect")[:, None]
        x = x.reshape(x.shape[0], 1, -1, self.period)
        return _conv_stack(x, self.layers, self.out)


class SpectrogramDiscriminator(nn.Module):
    def __init__(self, n_fft: int, channels: int = 32):
        super().__init__()
        self.n_fft = n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.layers = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(1, channels, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 9), (1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(channels, channels, (3, 3), padding=(1, 1))),
            ]
        )
        self.out = weight_norm(nn.Conv2d(channels, 1, (3, 3), padding=(1, 1)))

    def forward(self, wave: Tensor) -> tuple[Tensor, Features]:
        spec = torch.stft(
            wave, self.n_fft, self.n_fft // 4, window=self.window, center=True, return_complex=True
        )
        x = torch.log(spec.abs().clamp(min=1e-5))[:, None].transpose(2, 3)  # [B, 1, time, freq]
        return _conv_stack(x, self.layers, self.out)


class Discriminator(nn.Module):
    """All sub-discriminators; returns one (logits, features) pair per sub-discriminator."""

    def __init__(
        self,
        periods: tuple[int, ...] = (2, 3, 5, 7, 11),
        resolutions: tuple[int, ...] = (512, 1024, 2048),
    ):
        super().__init__()
        self.subs = nn.ModuleList(
            [PeriodDiscriminator(p) for p in periods]
            + [SpectrogramDiscriminator(n) for n in resolutions]
        )

    def forward(self, wave: Tensor) -> list[tuple[Tensor, Features]]:
        return [sub(wave) for sub in self.subs]


def discriminator_loss(
    real: list[tuple[Tensor, Features]], fake: list[tuple[Tensor, Features]]
) -> Tensor:
    """Hinge loss for the discriminator (fake outputs must come from a detached wave)."""
    loss = 0
    for (logits_real, _), (logits_fake, _) in zip(real, fake, strict=True):
        loss = loss + F.relu(1 - logits_real).mean() + F.relu(1 + logits_fake).mean()
    return loss / len(real)


def generator_losses(
    real: list[tuple[Tensor, Features]], fake: list[tuple[Tensor, Features]]
) -> tuple[Tensor, Tensor]:
    """(hinge adversarial loss, feature-matching loss) for the generator."""
    adversarial, matching, n_features = 0, 0, 0
    for (_, feats_real), (logits_fake, feats_fake) in zip(real, fake, strict=True):
        adversarial = adversarial + F.relu(1 - logits_fake).mean()
        for f_real, f_fake in zip(feats_real, feats_fake, strict=True):
            f_real = f_real.detach()
            matching = matching + (f_real - f_fake).abs().mean() / (f_real.abs().mean() + 1e-5)
            n_features += 1
    return adversarial / len(fake), matching / n_features
