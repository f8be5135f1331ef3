"""Guardrails: what a tuned LM must not lose while it learns to please.

Feedback sees only what listeners react to. Two things it does not see are checked against the
model the tuning started from, and neither may get worse by more than ``tolerance`` (5 %):

* **Codec-domain quality**: the mean negative log-likelihood per code of *real* music (held-out
  corpus clips, as the codec encodes them) under the unspecified condition. A policy that found
  a trick listeners like by forgetting how music goes pays here.
* **Prompt adherence**: the share of songs made from a style's name that the attribute probe
  (generation/probe) hears as that style. DPO on likes could teach the model to play what the
  audience loves whatever it is asked for; this catches it.

Either may be unmeasured (no corpus, no probe at hand): it is then reported as such and does not
block; the canary is the last guard.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from generation.lm.conditioning import condition_features
from generation.lm.model import TokenLM
from generation.steering import Controls
from generation.tuning.dpo import Clip, TokenBatch, sequence_logps

TOLERANCE = 0.05


@torch.no_grad()
def code_nll(model: TokenLM, items: Sequence[Tensor], batch_size: int = 8) -> float:
    """Mean negative log-likelihood per code of items (codes [K, F]) under the unspecified
    condition; items longer than the context are scored on their first window."""
    model.eval()
    null = condition_features([(None, Controls())], model.config.vocab)
    total, codes = 0.0, 0
    for i in range(0, len(items), batch_size):
        clips = [
            Clip(c[: model.config.n_codebooks].long(), null) for c in items[i : i + batch_size]
        ]
        batch = TokenBatch.of(clips, model)
        total -= float(sequence_logps(model, batch).sum())
        codes += int(batch.mask.sum())
    return total / max(1, codes)


def style_agreement(probe, heard: Sequence[tuple[str, np.ndarray, int]]) -> float:
    """Share of (expected style, audio, sample rate) the probe hears as the expected style."""
    if not heard:
        return float("nan")
    hits = sum(probe.predict_style(pcm, sr)[0] == style for style, pcm, sr in heard)
    return hits / len(heard)


@dataclass(frozen=True)
class Guardrails:
    quality_base: float | None = None  # code NLL: lower is better
    quality_tuned: float | None = None
    adherence_base: float | None = None  # style agreement: higher is better
    adherence_tuned: float | None = None
    tolerance: float = TOLERANCE

    @property
    def quality_change(self) -> float | None:
        """Relative change of the code NLL (positive: worse)."""
        if self.quality_base is None or self.quality_tuned is None:
            return None
        return self.quality_tuned / self.quality_base - 1.0

    @property
    def adherence_change(self) -> float | None:
        """Relative change of the style agreement (negative: worse)."""
        if not self.adherence_base or self.adherence_tuned is None:
            return None
        return self.adherence_tuned / self.adherence_base - 1.0

    @property
    def quality_ok(self) -> bool | None:
        change = self.quality_change
        return None if change is None else change <= self.tolerance

    @property
    def adherence_ok(self) -> bool | None:
        change = self.adherence_change
        return None if change is None else change >= -self.tolerance

    @property
    def ok(self) -> bool:
        """No measured guardrail worse than the tolerance."""
        return self.quality_ok is not False and self.adherence_ok is not False

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "quality_change": self.quality_change,
            "adherence_change": self.adherence_change,
            "quality_ok": self.quality_ok,
            "adherence_ok": self.adherence_ok,
            "ok": self.ok,
        }


def real_clip_codes(
    manifest: str | Path, codec, n: int, split: str = "test", seconds: float = 8.0
) -> list[Tensor]:
    """Codes of up to ``n`` real clips of a corpus split, spread over its styles in turn."""
    from generation.data.manifest import iter_clips

    by_style: dict[str, list[np.ndarray]] = {}
    per_style = max(1, n // 8)
    for row, audio in iter_clips(manifest, split):
        kept = by_style.setdefault(row["style"], [])
        if len(kept) < per_style:
            kept.append(audio[: int(seconds * row["sample_rate"])])
    order = [
        clip for i in range(per_style) for clips in by_style.values() for clip in clips[i : i + 1]
    ]
    with torch.no_grad():
        return [codec.encode(torch.from_numpy(np.asarray(a, np.float32))) for a in order[:n]]


def style_prompts(model: TokenLM) -> list[str]:
    """The styles the LM knows (its prompt-expansion table), as prompts."""
    return [s["style"] for s in getattr(model, "extra", {}).get("styles", [])]


def adherence_of(generator, probe, styles: Sequence[str], seeds: Sequence[int], seconds: float):
    """Style agreement of songs a generator (ChorusSongGenerator) makes from style names."""
    from generation.interface import SongRequest

    heard = []
    for seed in seeds:
        requests = [SongRequest(style, seconds, seed=seed + i) for i, style in enumerate(styles)]
        for style, song in zip(styles, generator.render(requests), strict=True):
            heard.append((_probe_style(probe, style), song.pcm, song.sample_rate))
    return style_agreement(probe, heard)


def _probe_style(probe, style: str) -> str:
    """The probe's name for an LM style (the LM's table writes "drum and bass", the probe's
    labels may write "drum_and_bass" or "drum-and-bass")."""
    wanted = style.replace("_", " ").replace("-", " ")
    for name in probe.styles:
        if name.replace("_", " ").replace("-", " ") == wanted:
            return name
    return style


def check(
    base: TokenLM,
    tuned: TokenLM,
    codec,
    *,
    probe=None,
    manifest: str | Path | None = None,
    clips: int = 32,
    seeds: Sequence[int] = (0,),
    seconds: float = 10.0,
    tolerance: float = TOLERANCE,
) -> Guardrails:
    """Both guardrails, each measured when its instrument is at hand (a corpus manifest for
    quality; a probe for adherence)."""
    measured: dict = {"tolerance": tolerance}
    if manifest is not None and Path(manifest).exists():
        items = real_clip_codes(manifest, codec, clips)
        measured.update(quality_base=code_nll(base, items), quality_tuned=code_nll(tuned, items))
    if probe is not None:
        from generation.lm.songs import ChorusSongGenerator
        from generation.lm.stream import Engine

        styles = style_prompts(base)
        for key, model in (("adherence_base", base), ("adherence_tuned", tuned)):
            generator = ChorusSongGenerator(Engine(model, codec, key))
            measured[key] = adherence_of(generator, probe, styles, seeds, seconds)
    return Guardrails(**measured)
