"""Residual vector quantisation with EMA codebooks, usage tracking and dead-code restarts.

Each of the K codebooks quantises what the previous ones left over (the residual), so code k of a
frame refines codes 0..k-1. Each level works in its own learned low-dimensional projection of the
residual (factorised codes, as in DAC / ViT-VQGAN). Codebooks are not trained by gradient: each
entry is the exponential moving average of the latents assigned to it (VQ-VAE-2 / SoundStream /
EnCodec). The encoder is pulled toward its codes by a commitment loss, and gradients pass through
the quantiser unchanged (straight-through estimator).

An entry that the EMA says is underused (its smoothed count falls below `dead_code_threshold`,
default 0.5, times the mean count) is restarted from a random latent of the current batch, so
capacity is not wasted. The threshold is relative because at 25 frames/s a batch holds few latents
per entry (16 crops of 1.6 s are 640 latents for 1024 entries), so an absolute count would mean
little.
How well a codebook is used is reported as the perplexity of its code histogram as a share of its
size: 1.0 means every entry is equally used, 1/size means one entry does all the work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def usage_from_counts(counts: Tensor) -> tuple[Tensor, Tensor]:
    """(perplexity share, fraction of entries used) per codebook, from counts [K, size].

    Perplexity is exp(entropy) of the normalised histogram, divided by the codebook size.
    """
    counts = counts.double().clamp(min=0)
    probs = counts / counts.sum(-1, keepdim=True).clamp(min=1e-12)
    entropy = -(probs * torch.log(probs.clamp(min=1e-12))).sum(-1)
    size = counts.shape[-1]
    return (entropy.exp() / size).float(), ((counts > 0).double().sum(-1) / size).float()


def codebook_usage(codes: Tensor, codebook_size: int) -> dict[str, list[float]]:
    """Per-codebook usage of codes [B, K, F] (or [K, F]): perplexity share and fraction used."""
    if codes.dim() == 2:
        codes = codes[None]
    n_codebooks = codes.shape[1]
    flat = codes.transpose(0, 1).reshape(n_codebooks, -1)
    counts = torch.zeros(n_codebooks, codebook_size, dtype=torch.float64, device=codes.device)
    counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=torch.float64))
    perplexity_share, used = usage_from_counts(counts)
    return {"perplexity_share": perplexity_share.tolist(), "used_fraction": used.tolist()}


class VectorQuantizer(nn.Module):
    """One EMA codebook of `size` entries of dimension `dim`.

    Buffers: `codebook` [size, dim] (what encode/decode use), and for training only the EMA state
    `cluster_size` [size] (smoothed count of latents per entry, per batch) and `embed_sum`
    [size, dim] (smoothed sum of those latents). The codebook is initialised from the first
    training batch's latents.
    """

    def __init__(self, size: int, dim: int, decay: float = 0.99, dead_code_threshold: float = 0.5):
        super().__init__()
        self.size, self.dim = size, dim
        self.decay, self.dead_code_threshold = decay, dead_code_threshold
        self.register_buffer("codebook", torch.randn(size, dim) * dim**-0.5)
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("embed_sum", torch.zeros(size, dim))
        self.register_buffer("initialised", torch.tensor(False))

    def assign(self, x: Tensor) -> Tensor:
        """Index of the nearest entry (Euclidean) for each row of x [N, dim]."""
        distances = (
            x.pow(2).sum(-1, keepdim=True)
            - 2 * x @ self.codebook.t()
            + self.codebook.pow(2).sum(-1)[None, :]
        )
        return distances.argmin(-1)

    def lookup(self, indices: Tensor) -> Tensor:
        return F.embedding(indices, self.codebook)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Quantise x [N, dim] -> (quantised [N, dim], indices [N]); EMA-update when training."""
        if self.training and not bool(self.initialised):
            self._init_from(x.detach())
        indices = self.assign(x.detach())
        quantised = self.lookup(indices)
        if self.training:
            self.ema_update(x.detach(), indices)
            self.restart_dead_codes(x.detach())
        return quantised, indices

    @torch.no_grad()
    def _init_from(self, x: Tensor) -> None:
        """Entries from random latents of the first batch, each with the average count."""
        picks = torch.randint(0, x.shape[0], (self.size,), device=x.device)
        average = x.shape[0] / self.size
        self.codebook.copy_(x[picks])
        self.embed_sum.copy_(x[picks] * average)
        self.cluster_size.fill_(average)
        self.initialised.fill_(True)

    @torch.no_grad()
    def ema_update(self, x: Tensor, indices: Tensor) -> None:
        onehot = F.one_hot(indices, self.size).type_as(x)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ x, alpha=1 - self.decay)
        # Laplace smoothing so an entry with a tiny count does not divide by ~0.
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (total + self.size * 1e-5) * total
        self.codebook.copy_(self.embed_sum / smoothed[:, None])

    @torch.no_grad()
    def restart_dead_codes(self, x: Tensor) -> int:
        """Re-seed entries used less than threshold x mean with random rows of x; return how many.

        A restarted entry starts from the mean count. With the default threshold of 0.5 and decay
        0.99 an entry left unused for about 70 steps is restarted: soon enough for the codebook to
        keep up with latents that drift while the encoder learns. (With a threshold of 0.05, 300
        steps, we watched the first codebook collapse onto a handful of entries within 100 steps.)
        """
        mean = self.cluster_size.mean()
        dead = self.cluster_size < self.dead_code_threshold * mean
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        picks = x[torch.randint(0, x.shape[0], (n_dead,), device=x.device)]
        self.codebook[dead] = picks
        self.embed_sum[dead] = picks * mean
        self.cluster_size[dead] = mean
        return n_dead


class ResidualVectorQuantizer(nn.Module):
    """K levels of factorised EMA codebooks over latents [B, F, latent_dim] (time-major).

    Level k projects the residual to a small `codebook_dim` space (8 by default, as in DAC),
    looks up the nearest of its entries there, and projects the entry back; the residual for level
    k+1 is what that leaves. Codebooks live in the small space because there nearest-neighbour
    search partitions the data: in 128 dimensions a blob of latents is closer to its own mean than
    to any other latent, so an EMA codebook there collapses onto one entry (we saw exactly that:
    codebook 0 with perplexity 1.05 of 1024 after 300 steps).
    """

    def __init__(
        self,
        n_codebooks: int,
        codebook_size: int,
        latent_dim: int,
        codebook_dim: int,
        decay: float = 0.99,
        dead_code_threshold: float = 0.5,
    ):
        super().__init__()
        self.layers = nn.ModuleList(
            VectorQuantizer(codebook_size, codebook_dim, decay, dead_code_threshold)
            for _ in range(n_codebooks)
        )
        self.in_proj = nn.ModuleList(nn.Linear(latent_dim, codebook_dim) for _ in self.layers)
        self.out_proj = nn.ModuleList(nn.Linear(codebook_dim, latent_dim) for _ in self.layers)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantise z [B, F, latent_dim] -> (quantised [B, F, latent_dim], codes [B, K, F],
        commitment loss: mean squared distance between each projected residual and its entry,
        summed over levels). Gradients pass each lookup straight through (as if it were identity).

        EMA updates and dead-code restarts happen only in training mode.
        """
        batch, frames, dim = z.shape
        residual = z.reshape(-1, dim)
        quantised = torch.zeros_like(residual)
        codes, commitment = [], z.new_zeros(())
        for layer, in_proj, out_proj in zip(self.layers, self.in_proj, self.out_proj, strict=True):
            projected = in_proj(residual)
            entry, indices = layer(projected)
            commitment = commitment + F.mse_loss(projected, entry.detach())
            level = out_proj(projected + (entry - projected).detach())  # straight-through
            quantised = quantised + level
            residual = residual - level
            codes.append(indices)
        return quantised.reshape(batch, frames, dim), self._stack(codes, batch, frames), commitment

    @torch.no_grad()
    def encode(self, z: Tensor) -> Tensor:
        """Codes [B, K, F] of latents z [B, F, latent_dim]; never updates the codebooks."""
        batch, frames, dim = z.shape
        residual = z.reshape(-1, dim)
        codes = []
        for layer, in_proj, out_proj in zip(self.layers, self.in_proj, self.out_proj, strict=True):
            indices = layer.assign(in_proj(residual))
            residual = residual - out_proj(layer.lookup(indices))
            codes.append(indices)
        return self._stack(codes, batch, frames)

    def decode(self, codes: Tensor) -> Tensor:
        """Codes [B, k, F] for the first k <= K levels -> quantised latents [B, F, latent_dim]."""
        out = 0
        for k in range(codes.shape[1]):
            out = out + self.out_proj[k](self.layers[k].lookup(codes[:, k]))
        return out

    def _stack(self, codes: list[Tensor], batch: int, frames: int) -> Tensor:
        return torch.stack(codes, 0).reshape(len(codes), batch, frames).transpose(0, 1)

    def ema_usage(self) -> Tensor:
        """Perplexity share per codebook from the training EMA counts, [K]."""
        counts = torch.stack([layer.cluster_size for layer in self.layers])
        return usage_from_counts(counts)[0]
