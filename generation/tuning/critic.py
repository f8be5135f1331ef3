"""The critic: a Bradley–Terry reward model over the token LM's trunk, trained on preference pairs.

    reward(y) = head(pool(trunk(y)))        P(a preferred over b) = sigmoid(reward(a) - reward(b))

* **Features.** The codes of an item are laid out as the LM reads them (the delay pattern,
  :class:`generation.tuning.dpo.TokenBatch`) and run through a *frozen* copy of the LM's trunk
  under the "unspecified" condition, so the critic judges the music, not the prompt; the last
  hidden states are pooled (mean and standard deviation over the item's steps) into one vector.
  Items longer than the LM's context are cut into consecutive windows whose pooled features are
  averaged by length. The trunk already knows style, tempo and texture from pre-training, so a
  small head learns a preference from a few thousand pairs, where a model over raw codes would
  need many more (MusicRL's user reward model reached 60% from 300k pairs).
* **Head.** LayerNorm, one hidden layer, one scalar. Trained on the features of the items in the
  training pairs (computed once: the trunk does not train), with the binary cross-entropy of
  the Bradley–Terry probability; the epoch with the best held-out pairwise accuracy is kept.
* **File.** One fp16 checkpoint (generation/checkpoint.py) holding the trunk it was trained on
  and the head, so a critic never reads features from a different LM than it learned from.

Use: :meth:`RewardModel.score` on codes [K, F] (room chunks have them), or :func:`load_critic`
for the ``critic(pcm, sample_rate) -> score`` callable that best-of-n songs take
(generation/lm/songs.py; ``CHORUS_CRITIC=path`` makes the default song generator load one).
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from generation.checkpoint import load_fp16, save_fp16
from generation.lm.conditioning import condition_features
from generation.lm.model import LMConfig, TokenLM
from generation.steering import Controls
from generation.tuning.dpo import Clip, TokenBatch

FILE_FORMAT = "chorus-critic-v1"


@dataclass(frozen=True)
class CriticConfig:
    hidden: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-2
    epochs: int = 100
    batch_size: int = 256  # pairs per step
    seed: int = 0


class RewardModel(nn.Module):
    def __init__(self, trunk: TokenLM, hidden: int = 128):
        super().__init__()
        self.trunk = copy.deepcopy(trunk).eval()
        self.trunk.requires_grad_(False)
        self.hidden = hidden
        dim = 2 * trunk.config.dim
        self.head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, 1)
        )
        self.info: dict = {}

    # -- features -------------------------------------------------------------------------------

    @torch.no_grad()
    def features(self, items: Sequence[Tensor], batch_size: int = 16) -> Tensor:
        """Pooled trunk features [N, 2 * dim] of items given as codes [K, F] (K >= the LM's
        codebooks: extra finer levels are dropped)."""
        c = self.trunk.config
        room = c.context - self.trunk.pattern.latency
        null = condition_features([(None, Controls())], c.vocab)
        windows, owner = [], []
        for n, codes in enumerate(items):
            codes = codes[: c.n_codebooks].long()
            if codes.shape[-1] == 0:
                raise ValueError("an item with no frames has no features")
            for start in range(0, codes.shape[-1], room):
                windows.append(Clip(codes[:, start : start + room], null))
                owner.append(n)
        pooled, weights = [], []
        for i in range(0, len(windows), batch_size):
            batch = TokenBatch.of(windows[i : i + batch_size], self.trunk)
            cond = self.trunk.encode_condition(batch.condition)
            hidden = self.trunk.features(
                batch.inputs, cond[:, None].expand(-1, batch.inputs.shape[-1], -1)
            )
            steps = batch.mask.any(1).float()[..., None]  # [B, T, 1]: steps with a real code
            count = steps.sum(1)
            mean = (hidden * steps).sum(1) / count
            std = (((hidden - mean[:, None]) ** 2 * steps).sum(1) / count).sqrt()
            pooled.append(torch.cat([mean, std], -1))
            weights.append(count[:, 0])
        pooled_all, weight_all = torch.cat(pooled), torch.cat(weights)
        out = torch.zeros(len(items), pooled_all.shape[-1])
        total = torch.zeros(len(items))
        owners = torch.tensor(owner)
        out.index_add_(0, owners, pooled_all * weight_all[:, None])
        total.index_add_(0, owners, weight_all)
        return out / total[:, None]

    def reward(self, features: Tensor) -> Tensor:
        """Scalar rewards [N] of pooled features [N, 2 * dim]."""
        return self.head(features)[:, 0]

    @torch.no_grad()
    def score_many(self, items: Sequence[Tensor]) -> list[float]:
        self.eval()
        return self.reward(self.features(items)).tolist()

    def score(self, codes: Tensor) -> float:
        """The reward of one item's codes [K, F]: higher is more likely to be preferred."""
        return self.score_many([codes])[0]

    # -- training -------------------------------------------------------------------------------

    def fit(
        self,
        items: Sequence[Tensor],
        train: Sequence[tuple[int, int]],
        held_out: Sequence[tuple[int, int]],
        config: CriticConfig | None = None,
    ) -> dict:
        """Train the head on pairs (chosen index, rejected index) into ``items`` (codes [K, F]).
        Keeps the epoch with the best held-out pairwise accuracy (ties: lower held-out loss);
        returns and stores (``info``) the metrics."""
        config = config or CriticConfig()
        if not train or not held_out:
            raise ValueError("the critic needs training pairs and held-out pairs")
        feats = self.features(items)
        torch.manual_seed(config.seed)
        for layer in self.head:
            if hasattr(layer, "reset_parameters"):
                layer.reset_parameters()
        optimiser = torch.optim.AdamW(
            self.head.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        pairs = torch.tensor(list(train), dtype=torch.long)
        valid = torch.tensor(list(held_out), dtype=torch.long)
        rng = random.Random(config.seed)
        best = (-1.0, float("inf"), 0, copy.deepcopy(self.head.state_dict()))
        for epoch in range(1, config.epochs + 1):
            self.head.train()
            order = list(range(len(pairs)))
            rng.shuffle(order)
            for i in range(0, len(order), config.batch_size):
                rows = pairs[order[i : i + config.batch_size]]
                loss = bt_loss(self.reward(feats[rows[:, 0]]), self.reward(feats[rows[:, 1]]))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
            accuracy, valid_loss = self._evaluate(feats, valid)
            if (accuracy, -valid_loss) > (best[0], -best[1]):
                best = (accuracy, valid_loss, epoch, copy.deepcopy(self.head.state_dict()))
        self.head.load_state_dict(best[3])
        self.eval()
        train_accuracy, train_loss = self._evaluate(feats, pairs)
        self.info = {
            "train_pairs": len(pairs),
            "held_out_pairs": len(valid),
            "train_accuracy": train_accuracy,
            "train_loss": train_loss,
            "held_out_accuracy": best[0],
            "held_out_loss": best[1],
            "epoch": best[2],
            "config": asdict(config),
        }
        return dict(self.info)

    @torch.no_grad()
    def _evaluate(self, feats: Tensor, pairs: Tensor) -> tuple[float, float]:
        self.head.eval()
        chosen, rejected = self.reward(feats[pairs[:, 0]]), self.reward(feats[pairs[:, 1]])
        return pairwise_accuracy(chosen, rejected), float(bt_loss(chosen, rejected))

    # -- files ----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> None:
        config = {"lm": asdict(self.trunk.config), "hidden": self.hidden}
        save_fp16(self, path, FILE_FORMAT, config, self.info)

    @classmethod
    def load(cls, path: str | Path) -> RewardModel:
        config, state, info = load_fp16(path, FILE_FORMAT)
        model = cls(TokenLM(LMConfig(**config["lm"])), hidden=config["hidden"])
        model.load_state_dict(state)
        model.info = info
        return model.eval()


def bt_loss(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Bradley–Terry negative log-likelihood of 'chosen beat rejected'."""
    return -F.logsigmoid(chosen - rejected).mean()


def pairwise_accuracy(chosen: Tensor, rejected: Tensor) -> float:
    """Share of pairs the rewards order correctly; a tie counts a half."""
    return float(((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean())


class SongCritic:
    """``critic(pcm, sample_rate) -> score`` for best-of-n songs: the audio is encoded by the
    codec the trunk's LM speaks, then scored."""

    def __init__(self, model: RewardModel, codec):
        self.model, self.codec = model, codec

    def __call__(self, pcm: np.ndarray, sample_rate: int) -> float:
        audio = np.asarray(pcm, dtype=np.float32)
        if sample_rate != self.codec.sample_rate:
            from scipy.signal import resample_poly

            audio = resample_poly(audio, self.codec.sample_rate, sample_rate).astype(np.float32)
        codes = self.codec.encode(torch.from_numpy(audio))
        return self.model.score(codes)


def load_critic(path: str | Path, codec=None) -> SongCritic:
    """A saved critic as a best-of-n song critic; ``codec`` defaults to the shipped one."""
    if codec is None:
        from generation.codec import DEFAULT_CHECKPOINT, Codec

        codec = Codec.load(DEFAULT_CHECKPOINT)
    return SongCritic(RewardModel.load(path), codec)
