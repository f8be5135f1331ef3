"""The attribute probe: a small classifier over clip features, plus the tempo and key estimators.

It answers, for a clip of generated or real audio (mono float32, 1.5 s to 10 s): which style
(one of the corpus's 17), which instruments (multi-label), what tempo (BPM) and what key. It is a
measuring instrument for the music generator: style and tempo accuracy of generated clips against
their prompts, whether a 2 s chunk flipped style after a steering vote, and how similar two clips
are ("influence").

Design:

* features: ``generation.probe.features.extract``, a fixed 234-dimensional summary of the clip
  (log-mel statistics, spectral shape, rhythm, key-invariant chroma), standardised with the
  training set's mean and standard deviation, which are stored with the weights;
* classifier: an MLP, features -> 256 -> 128 (ReLU, dropout) with two heads on the 128-unit
  layer: a softmax over styles and independent sigmoids over instruments. Trained with minibatch
  AdamW on cross-entropy plus binary cross-entropy (see :class:`FitConfig`), keeping the epoch
  with the best validation loss when validation features are given;
* embedding: the 128-unit layer, L2-normalised, so that ``similarity`` is a cosine in a space
  shaped by both style and instrumentation (a clip with itself scores 1);
* tempo and key are not learned: they delegate to ``generation.data.analysis``.

The checkpoint is one small ``.pt`` file holding a plain dict (tensors, lists, strings, numbers)
tagged with :data:`FORMAT`, loadable with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from generation.data.analysis import KeyEstimate, estimate_key, estimate_tempo
from generation.probe.features import (
    FEATURE_NAMES,
    FEATURES_VERSION,
    N_FEATURES,
    SAMPLE_RATE,
    extract,
)

FORMAT = "chorus-attribute-probe-v1"


class ProbeNet(nn.Module):
    """Standardised features -> shared hidden layers -> style logits and instrument logits."""

    def __init__(
        self,
        n_features: int,
        n_styles: int,
        n_instruments: int,
        hidden: int = 256,
        embed: int = 128,
        dropout: float = 0.2,
    ) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(n_features, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, embed),
            nn.ReLU(),
        )
        self.dropout = nn.Dropout(dropout)
        self.style_head = nn.Linear(embed, n_styles)
        self.instrument_head = nn.Linear(embed, max(1, n_instruments))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(style logits [N, S], instrument logits [N, I], embedding before the heads [N, E])."""
        hidden = self.trunk(x)
        shared = self.dropout(hidden)
        return self.style_head(shared), self.instrument_head(shared), hidden


@dataclass(frozen=True)
class ProbeOutput:
    """Predictions for a batch of clips."""

    style_probs: np.ndarray  # [N, S]
    instrument_probs: np.ndarray  # [N, I]
    embedding: np.ndarray  # [N, E], unit L2 norm (zero for an all-zero hidden layer)


@dataclass(frozen=True)
class FitConfig:
    """How :meth:`AttributeProbe.fit` trains. The defaults suit the 17-style corpus (~26k rows):
    rows of one piece are much alike, so validation loss (other pieces) bottoms out after a few
    epochs; a short cosine schedule ends there instead of overfitting and being rolled back."""

    epochs: int = 8
    batch_size: int = 256  # rows per step; 0 for full-batch steps
    lr: float = 3e-3
    weight_decay: float = 1e-3
    instrument_weight: float = 2.0  # weight of the instrument BCE against the style CE
    seed: int = 0


class AttributeProbe:
    """Style and instrument classifier over clip features; tempo and key by signal analysis.

    Create with the label vocabularies, then :meth:`fit`, or :meth:`load` a checkpoint.
    """

    def __init__(
        self,
        styles: Sequence[str],
        instruments: Sequence[str],
        *,
        hidden: int = 256,
        embed: int = 128,
        dropout: float = 0.2,
    ) -> None:
        self.styles = list(styles)
        self.instruments = list(instruments)
        self.hidden, self.embed, self.dropout = hidden, embed, dropout
        self.net = ProbeNet(
            N_FEATURES, len(self.styles), len(self.instruments), hidden, embed, dropout
        )
        self.net.eval()
        self.mean = np.zeros(N_FEATURES, dtype=np.float32)
        self.std = np.ones(N_FEATURES, dtype=np.float32)
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ training

    def _targets(
        self, styles: Sequence[str], instruments: Sequence[Sequence[str]]
    ) -> tuple[Tensor, Tensor]:
        style_index = {name: i for i, name in enumerate(self.styles)}
        instrument_index = {name: i for i, name in enumerate(self.instruments)}
        unknown = sorted(set(styles) - set(style_index))
        if unknown:
            raise ValueError(f"styles not in the probe's vocabulary: {unknown}")
        y_style = torch.tensor([style_index[s] for s in styles], dtype=torch.long)
        y_inst = torch.zeros(len(instruments), max(1, len(self.instruments)))
        for row, names in enumerate(instruments):
            for name in names:
                if name in instrument_index:  # rare instruments outside the vocabulary: ignored
                    y_inst[row, instrument_index[name]] = 1.0
        return y_style, y_inst

    def _loss(self, x: Tensor, y_style: Tensor, y_inst: Tensor, weight: float) -> Tensor:
        style_logits, inst_logits, _ = self.net(x)
        loss = nn.functional.cross_entropy(style_logits, y_style)
        if self.instruments:
            loss = loss + weight * nn.functional.binary_cross_entropy_with_logits(
                inst_logits, y_inst
            )
        return loss

    def fit(
        self,
        features: np.ndarray,
        styles: Sequence[str],
        instruments: Sequence[Sequence[str]],
        *,
        valid: tuple[np.ndarray, Sequence[str], Sequence[Sequence[str]]] | None = None,
        config: FitConfig | None = None,
    ) -> dict[str, float]:
        """Train from a feature matrix [N, N_FEATURES] and per-row labels (names).

        Minibatch AdamW with a cosine learning-rate decay to zero over all steps, on the style
        cross-entropy plus ``instrument_weight`` times the instrument binary cross-entropy. With
        ``valid`` (features, styles, instruments), the weights after the epoch with the lowest
        validation loss are kept. Returns the last epoch's mean training loss, the chosen epoch
        and its validation loss (also kept in ``self.info``).
        """
        config = config or FitConfig()
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != N_FEATURES:
            raise ValueError(f"features must be [N, {N_FEATURES}], got {features.shape}")
        torch.manual_seed(config.seed)
        self.net = ProbeNet(
            N_FEATURES,
            len(self.styles),
            len(self.instruments),
            self.hidden,
            self.embed,
            self.dropout,
        )
        self.mean = features.mean(axis=0)
        self.std = np.maximum(features.std(axis=0), 1e-6).astype(np.float32)
        x = self._standardise(features)
        y_style, y_inst = self._targets(styles, instruments)
        valid_data = None
        if valid is not None:
            valid_data = (
                self._standardise(np.asarray(valid[0], dtype=np.float32)),
                *self._targets(valid[1], valid[2]),
            )

        optimiser = torch.optim.AdamW(
            self.net.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        n = x.shape[0]
        batch = config.batch_size if 0 < config.batch_size < n else n
        steps_per_epoch = math.ceil(n / batch)
        total_steps = config.epochs * steps_per_epoch
        generator = torch.Generator().manual_seed(config.seed)
        best = (math.inf, -1, None)
        losses: list[float] = []
        for epoch in range(config.epochs):
            self.net.train()
            order = torch.randperm(n, generator=generator)
            losses = []
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                for group in optimiser.param_groups:
                    group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
                rows = order[i * batch : (i + 1) * batch]
                loss = self._loss(x[rows], y_style[rows], y_inst[rows], config.instrument_weight)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                losses.append(float(loss.detach()))
            if valid_data is not None:
                self.net.eval()
                with torch.no_grad():
                    valid_loss = float(self._loss(*valid_data, config.instrument_weight))
                if valid_loss < best[0]:
                    state = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
                    best = (valid_loss, epoch + 1, state)
        if best[2] is not None:
            self.net.load_state_dict(best[2])
        self.net.eval()
        self.info = {
            "train_rows": int(features.shape[0]),
            "train_loss": float(np.mean(losses)) if losses else math.nan,
            "epochs": config.epochs,
            "chosen_epoch": best[1] if best[2] is not None else config.epochs,
            "valid_loss": best[0] if best[2] is not None else math.nan,
        }
        return dict(self.info)

    # ------------------------------------------------------------------ inference

    def _standardise(self, features: np.ndarray) -> Tensor:
        return torch.from_numpy(((features - self.mean) / self.std).astype(np.float32))

    @torch.no_grad()
    def predict_features(self, features: np.ndarray) -> ProbeOutput:
        """Probabilities and embeddings for a feature matrix [N, N_FEATURES]."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float32))
        self.net.eval()
        style_logits, inst_logits, hidden = self.net(self._standardise(features))
        embedding = nn.functional.normalize(hidden, dim=1)
        return ProbeOutput(
            style_probs=torch.softmax(style_logits, dim=1).numpy(),
            instrument_probs=torch.sigmoid(inst_logits[:, : len(self.instruments)]).numpy(),
            embedding=embedding.numpy(),
        )

    def features(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        """The clip's feature vector [N_FEATURES] (see generation.probe.features)."""
        return extract(audio, sr)

    def predict_style(
        self, audio: np.ndarray, sr: int = SAMPLE_RATE
    ) -> tuple[str, dict[str, float]]:
        """The most probable style and the probability of every style."""
        probs = self.predict_features(self.features(audio, sr)).style_probs[0]
        distribution = {name: float(p) for name, p in zip(self.styles, probs, strict=True)}
        return self.styles[int(np.argmax(probs))], distribution

    def predict_instruments(
        self, audio: np.ndarray, sr: int = SAMPLE_RATE, threshold: float = 0.5
    ) -> list[str]:
        """Instruments heard with probability above ``threshold``, most probable first."""
        probs = self.predict_features(self.features(audio, sr)).instrument_probs[0]
        order = np.argsort(-probs, kind="stable")
        return [self.instruments[i] for i in order if probs[i] > threshold]

    def tempo(
        self, audio: np.ndarray, sr: int = SAMPLE_RATE, bpm_range: tuple[float, float] = (60, 180)
    ) -> float:
        """Tempo in BPM from beat tracking (``generation.data.analysis.estimate_tempo``)."""
        return estimate_tempo(np.asarray(audio), sr, bpm_range=bpm_range)

    def key(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> KeyEstimate:
        """Tonic pitch class, mode and profile correlation (``estimate_key``)."""
        return estimate_key(np.asarray(audio), sr)

    def embedding(self, audio: np.ndarray, sr: int = SAMPLE_RATE) -> np.ndarray:
        """Unit-norm embedding of the clip [E], for cosine similarity between clips."""
        return self.predict_features(self.features(audio, sr)).embedding[0]

    def similarity(self, a: np.ndarray, b: np.ndarray, sr: int = SAMPLE_RATE) -> float:
        """Cosine similarity of two clips' embeddings, in [0, 1] (the embedding is non-negative)."""
        return float(np.dot(self.embedding(a, sr), self.embedding(b, sr)))

    # ------------------------------------------------------------------ persistence

    def state(self) -> dict[str, Any]:
        """Everything needed to rebuild the probe, as weights_only-loadable values."""
        return {
            "format": FORMAT,
            "styles": list(self.styles),
            "instruments": list(self.instruments),
            "feature_names": list(FEATURE_NAMES),
            "features_version": FEATURES_VERSION,
            "sample_rate": SAMPLE_RATE,
            "hidden": self.hidden,
            "embed": self.embed,
            "dropout": self.dropout,
            "mean": torch.from_numpy(self.mean.astype(np.float32)),
            "std": torch.from_numpy(self.std.astype(np.float32)),
            "weights": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
            "info": dict(self.info),
        }

    def save(self, path: str | Path) -> None:
        """Write the probe as one .pt file (atomically)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        torch.save(self.state(), partial)
        partial.replace(path)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AttributeProbe:
        if state.get("format") != FORMAT:
            raise ValueError(f"not an attribute probe checkpoint: format {state.get('format')!r}")
        same_features = state.get("features_version") == FEATURES_VERSION
        if not same_features or list(state["feature_names"]) != list(FEATURE_NAMES):
            raise ValueError("checkpoint was trained on other features; retrain the probe")
        probe = cls(
            state["styles"],
            state["instruments"],
            hidden=state["hidden"],
            embed=state["embed"],
            dropout=state["dropout"],
        )
        probe.net.load_state_dict(state["weights"])
        probe.net.eval()
        probe.mean = state["mean"].numpy().astype(np.float32)
        probe.std = state["std"].numpy().astype(np.float32)
        probe.info = dict(state.get("info", {}))
        return probe

    @classmethod
    def load(cls, path: str | Path) -> AttributeProbe:
        """Read a probe written by :meth:`save`."""
        return cls.from_state(torch.load(path, map_location="cpu", weights_only=True))
