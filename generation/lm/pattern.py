"""The codebook layout: MusicGen's delay pattern, as one small object.

A codec frame holds K codes, one per residual level. The LM predicts all K codes of a *step* at
once; with the delay pattern, step s carries level k of frame s - k:

    step       0    1    2    3    4  ...
    level 0   f0   f1   f2   f3   f4
    level 1    .   f0   f1   f2   f3
    level 2    .    .   f0   f1   f2          (. = PAD: before the stream began)

so a frame's coarse code is always predicted before its finer ones, one step earlier each, at the
cost of K - 1 steps of latency. Frame f is complete after step f + K - 1. Streams never need a
closing pattern: a stream is an endless sequence of steps, and :meth:`DelayPattern.frames` reads
back whatever frames are complete.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DelayPattern:
    n_codebooks: int
    pad_token: int  # the code for "no frame here": the codebook size, one past the last real code

    @property
    def latency(self) -> int:
        """Steps between a frame's first code and its last one."""
        return self.n_codebooks - 1

    def apply(self, codes: Tensor, history: Tensor | None = None) -> Tensor:
        """Frames [B, K, F] -> steps [B, K, F]: step s, level k holds frame s - k.

        Levels that reach back before frame 0 take the frames of ``history`` [B, K, H] (the frames
        just before, when cropping from a longer stream) or PAD where there is none.
        """
        batch, levels, frames = codes.shape
        if levels != self.n_codebooks:
            raise ValueError(f"expected {self.n_codebooks} codebooks, got {levels}")
        if history is None:
            history = codes.new_full((batch, levels, self.latency), self.pad_token)
        elif history.shape[-1] < self.latency:
            pad = codes.new_full((batch, levels, self.latency - history.shape[-1]), self.pad_token)
            history = torch.cat([pad, history], dim=-1)
        full = torch.cat([history[..., history.shape[-1] - self.latency :], codes], dim=-1)
        steps = torch.empty_like(codes)
        for k in range(levels):
            steps[:, k] = full[:, k, self.latency - k : self.latency - k + frames]
        return steps

    def revert(self, steps: Tensor) -> Tensor:
        """Steps [B, K, S] (starting at step 0 of a stream) -> the S - K + 1 complete frames."""
        frames = steps.shape[-1] - self.latency
        if frames <= 0:
            return steps.new_empty((steps.shape[0], self.n_codebooks, 0))
        return torch.stack([steps[:, k, k : k + frames] for k in range(self.n_codebooks)], dim=1)

    def frames(self, steps: Tensor, first_step: int, pending: Tensor) -> tuple[Tensor, Tensor]:
        """Incremental revert for a stream: new steps [B, K, n] that start at ``first_step`` ->
        (frames completed by them [B, K, m], the partial frames to carry [B, K, latency]).

        ``pending`` holds the last ``latency`` steps seen before (any values at the start of a
        stream: those positions are PAD and never become frames). Feeding a stream's steps in
        pieces yields exactly the frames of :meth:`revert` on the whole.
        """
        window = torch.cat([pending, steps], dim=-1)  # the latency steps before, then the new
        frames = self.revert(window)
        # frames[i] starts at window step i, i.e. stream step first_step - latency + i; only frames
        # whose first step is >= 0 are real
        skip = max(0, self.latency - first_step)
        return frames[..., skip:], window[..., window.shape[-1] - self.latency :]

    def valid(self, first_step: int, n_steps: int) -> Tensor:
        """Mask [K, n]: which positions of steps first_step .. first_step + n hold real frames."""
        steps = torch.arange(first_step, first_step + n_steps)
        return steps[None, :] >= torch.arange(self.n_codebooks)[:, None]
