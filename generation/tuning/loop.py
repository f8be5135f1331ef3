"""One round of the tuning loop, without Django: labels and clips in, a critic and a tuned LM out.

    labels (generation.tuning.labels)  +  the items' clips (codes and conditions)
        -> split pairs by choice set into training and held-out (a choice set is never in both)
        -> the critic: Bradley–Terry head on the LM trunk, over every pair (any version)
        -> DPO: on-policy pairs only (both items made by the version being tuned), merged into
           one preference per pair of items by majority, steps capped, the checkpoint chosen
           on the held-out listeners' judgements (each merged pair weighted by its net count;
           the untouched reference included: it may win)
        -> a RoundResult with both models and what they measured

The web side (webapp/tuning/services.py) reads the feedback table, loads the clips, calls
:func:`run_round`, checks the guardrails (generation.tuning.guardrails), saves the files and
registers the candidate version. The benchmark calls the same function.
"""

from __future__ import annotations

import copy
import hashlib
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace

from generation.lm.model import TokenLM
from generation.tuning.critic import CriticConfig, RewardModel
from generation.tuning.dpo import Clip, DPOConfig, DPOResult, PreferencePair, train_dpo
from generation.tuning.labels import Item, Labels, Pair


@dataclass(frozen=True)
class RoundConfig:
    held_out_share: float = 0.2  # of choice sets, for both the critic and DPO
    min_critic_pairs: int = 20  # listener pairs (train and held-out each) to train a critic
    min_dpo_pairs: int = 10  # merged training pairs, and held-out judgements, to run DPO
    # DPO scores each item on its first frames only (None: as many as the context holds): the
    # cost of a step is linear in them, and a few seconds carry style, tempo and key
    dpo_frames: int | None = None
    critic: CriticConfig = field(default_factory=CriticConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    seed: int = 0


@dataclass
class RoundResult:
    version: str  # the version tuned (on-policy pairs are this version's)
    critic: RewardModel | None
    critic_info: dict
    policy: TokenLM | None  # None: no DPO, or the reference stayed best on held-out pairs
    dpo: DPOResult | None
    counts: dict[str, int]
    config: RoundConfig

    def metrics(self) -> dict:
        """Plain data for the version's record: held-out figures of both models."""
        dpo = None
        if self.dpo is not None:
            dpo = {"best_step": self.dpo.best_step, "held_out": self.dpo.best}
            start = next((r for r in self.dpo.history if "held_out_accuracy" in r), None)
            if start is not None:
                dpo["held_out_at_start"] = {
                    k.removeprefix("held_out_"): v for k, v in start.items() if k != "step"
                }
        critic = {k: v for k, v in self.critic_info.items() if k != "config"} or None
        return {
            "version": self.version,
            "critic": critic,
            "dpo": dpo,
            "counts": dict(self.counts),
            "config": asdict(self.config),
        }


def in_held_out(choice_set: str, share: float, seed: int) -> bool:
    """Whether a choice set is held out: a fixed hash, so a re-run splits the same way."""
    digest = hashlib.sha256(f"{seed}\x1f{choice_set}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def split_pairs(pairs: Sequence[Pair], share: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(training, held-out) pairs, split by whole choice sets: a comparison held out was never
    trained on, from any listener."""
    train, held = [], []
    for pair in pairs:
        (held if in_held_out(pair.choice_set, share, seed) else train).append(pair)
    return train, held


def consensus_counts(pairs: Sequence[Pair]) -> list[tuple[Item, Item, int]]:
    """(chosen, rejected, net) per pair of items: the majority's order and by how many
    listeners it won (for held-out figures, the net count is each merged pair's weight: a
    checkpoint ranked by it is ranked as by every listener's judgement, since a tie's
    judgements are right for one side as often as for the other). Ties give nothing. Sorted,
    so the same pairs give the same list."""
    net: Counter[tuple[Item, Item]] = Counter()
    for p in pairs:
        a, b = sorted((p.chosen, p.rejected))
        net[(a, b)] += 1 if p.chosen == a else -1
    return sorted((a, b, n) if n > 0 else (b, a, -n) for (a, b), n in net.items() if n != 0)


def consensus(pairs: Sequence[Pair]) -> list[tuple[Item, Item]]:
    """One (chosen, rejected) per pair of items, by the majority of its listeners; ties give
    nothing. Sorted, so the same pairs give the same list."""
    return [(a, b) for a, b, _ in consensus_counts(pairs)]


def train_critic(
    trunk: TokenLM,
    clips: Mapping[Item, Clip],
    train: Sequence[Pair],
    held_out: Sequence[Pair],
    config: CriticConfig,
) -> tuple[RewardModel, dict]:
    """A critic on listener pairs (each listener's judgement counts once)."""
    items = sorted({i for p in (*train, *held_out) for i in (p.chosen, p.rejected)})
    index = {item: n for n, item in enumerate(items)}
    critic = RewardModel(trunk, hidden=config.hidden)
    info = critic.fit(
        [clips[i].codes for i in items],
        [(index[p.chosen], index[p.rejected]) for p in train],
        [(index[p.chosen], index[p.rejected]) for p in held_out],
        config,
    )
    return critic, info


def preference_pairs(
    merged: Sequence[tuple[Item, Item] | tuple[Item, Item, int]],
    clips: Mapping[Item, Clip],
    frames: int | None = None,
) -> list[PreferencePair]:
    """DPO pairs of merged (chosen, rejected[, weight]) items, each cut to its first
    ``frames``."""

    def cut(clip: Clip) -> Clip:
        return clip if frames is None else replace(clip, codes=clip.codes[:, :frames])

    return [
        PreferencePair(cut(clips[m[0]]), cut(clips[m[1]]), float(m[2]) if len(m) > 2 else 1.0)
        for m in merged
    ]


def run_round(
    lm: TokenLM,
    labels: Labels,
    clips: Mapping[Item, Clip],
    version: str,
    config: RoundConfig | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> RoundResult:
    """Train a critic and a DPO policy from one window's labels. ``lm`` is not changed: the
    policy is a copy. Items without a clip (their codes could not be had) are left out."""
    config = config or RoundConfig()
    say = log or (lambda message: None)
    counts: Counter[str] = Counter()
    usable = []
    for pair in labels.pairs:
        if pair.chosen in clips and pair.rejected in clips:
            usable.append(pair)
        else:
            counts["pairs_without_clips"] += 1
    train, held = split_pairs(usable, config.held_out_share, config.seed)
    counts.update(pairs=len(usable), train_pairs=len(train), held_out_pairs=len(held))

    critic, critic_info = None, {}
    if min(len(train), len(held)) >= config.min_critic_pairs:
        say(f"critic: {len(train)} training pairs, {len(held)} held out")
        critic, critic_info = train_critic(lm, clips, train, held, config.critic)
        say(f"critic: held-out pairwise accuracy {critic_info['held_out_accuracy']:.3f}")
    else:
        say(f"critic: too few pairs ({len(train)} / {len(held)}); none trained")

    def on_policy(pairs: Sequence[Pair]) -> list[Pair]:
        return [
            p
            for p in pairs
            if labels.items[p.chosen].model_version == version
            and labels.items[p.rejected].model_version == version
        ]

    # Training: one preference per pair of items (the majority's). Choosing the checkpoint:
    # every listener's held-out judgement counts, so a pair most agreed on counts most and the
    # choice rests on hundreds of judgements rather than a few dozen merged pairs; each pair of
    # items is scored once, weighted by its net count (the same ranking of checkpoints as
    # scoring every judgement, for a tenth of the passes).
    dpo_train = consensus(on_policy(train))
    dpo_held = consensus_counts(on_policy(held))
    judgements = sum(n for *_, n in dpo_held)
    counts.update(
        dpo_train_pairs=len(dpo_train),
        dpo_held_out_pairs=len(dpo_held),
        dpo_held_out_judgements=judgements,
    )
    policy, result = None, None
    if len(dpo_train) >= config.min_dpo_pairs and judgements >= config.min_dpo_pairs:
        say(
            f"dpo: {len(dpo_train)} item pairs of {version}, {len(dpo_held)} held out "
            f"({judgements} net judgements)"
        )
        candidate = copy.deepcopy(lm)
        result = train_dpo(
            candidate,
            preference_pairs(dpo_train, clips, config.dpo_frames),
            preference_pairs(dpo_held, clips, config.dpo_frames),
            config.dpo,
            progress=progress,
        )
        if result.best_step > 0:
            policy = candidate
        say(f"dpo: kept step {result.best_step}, held-out accuracy {result.best['accuracy']:.3f}")
    else:
        say(f"dpo: too few on-policy pairs ({len(dpo_train)} / {judgements}); skipped")
    return RoundResult(version, critic, critic_info, policy, result, dict(counts), config)
