"""Canary rules: is a candidate model version worse than the one it would replace? (pure)

A candidate serves a small share of new songs and rooms (its *canary*) beside the promoted
version. Its listeners' feedback answers one question with two figures, each per version:

    like rate        thumbs up / thumbs given, over listenings of the version's items
    early-skip rate  listenings skipped in the first quarter / listenings

Listeners, not events, are the unit of evidence: one listener's many listenings are not
independent (a person who never thumbs down never does), so confidence intervals come from a
*cluster bootstrap*: resample listeners with replacement, recompute both versions' rates from the
resampled listeners' listenings (paired: a listener who heard both versions counts in both),
and read percentiles of the differences (candidate minus baseline).

    roll back  the candidate is worse with confidence: its like rate is below the baseline's
               (the difference's upper bound < 0) or its early-skip rate above it (lower bound > 0)
    promote    it is not worse with confidence: the like-rate difference's lower bound is above
               -like_margin and the early-skip difference's upper bound below skip_margin,
               with at least the minimum evidence on both sides
    wait       otherwise; after ``max_wait_s`` an undecided canary is rolled back (the incumbent
               stays: a version must earn its promotion)

:func:`decide` is deterministic for a given seed, so a decision can be recomputed and audited.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from generation.tuning.labels import Labels

PROMOTE, ROLL_BACK, WAIT = "promote", "roll_back", "wait"


@dataclass(frozen=True)
class Outcome:
    """One listener's listening of one item of one version."""

    actor: str
    version: str
    thumb: int  # +1, -1, 0
    early_skip: bool


@dataclass(frozen=True)
class CanaryRules:
    confidence: float = 0.95  # one-sided: the bounds are the 5th and 95th percentiles
    like_margin: float = 0.03  # how much lower a like rate may be and still be "not worse"
    skip_margin: float = 0.03  # how much higher an early-skip rate may be
    min_thumbs: int = 40  # per version, before promoting
    min_listenings: int = 100  # per version, before promoting
    min_listeners: int = 10  # per version, before any decision
    max_wait_s: float = 14 * 24 * 3600.0
    resamples: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class Rates:
    listeners: int
    listenings: int
    thumbs: int
    likes: int
    early_skips: int

    @property
    def like_rate(self) -> float | None:
        return self.likes / self.thumbs if self.thumbs else None

    @property
    def early_skip_rate(self) -> float | None:
        return self.early_skips / self.listenings if self.listenings else None


@dataclass(frozen=True)
class Interval:
    """A difference (candidate minus baseline) and its one-sided bounds."""

    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Decision:
    action: str  # PROMOTE, ROLL_BACK or WAIT
    reason: str
    baseline: Rates
    candidate: Rates
    like_diff: Interval | None
    skip_diff: Interval | None

    def as_dict(self) -> dict:
        """Plain data for the decision's record (JSON)."""
        out = asdict(self)
        for side in ("baseline", "candidate"):
            rates = getattr(self, side)
            out[side].update(like_rate=rates.like_rate, early_skip_rate=rates.early_skip_rate)
        return out


def outcomes_from_labels(labels: Labels, versions: Iterable[str]) -> list[Outcome]:
    """The heard listenings of items of ``versions`` (an item's version: its events' provenance).

    Unheard listenings (a play started and stopped at once) count only as early skips: a
    listener who skips in two seconds has told us something, but not enough to hold a thumb."""
    wanted = set(versions)
    out = []
    for x in labels.listenings:
        version = labels.items[x.item].model_version
        if version not in wanted:
            continue
        if x.heard or x.early_skip:
            out.append(Outcome(x.actor, version, x.thumb if x.heard else 0, x.early_skip))
    return out


def rates(outcomes: Sequence[Outcome]) -> Rates:
    return Rates(
        listeners=len({o.actor for o in outcomes}),
        listenings=len(outcomes),
        thumbs=sum(1 for o in outcomes if o.thumb),
        likes=sum(1 for o in outcomes if o.thumb > 0),
        early_skips=sum(1 for o in outcomes if o.early_skip),
    )


def bootstrap_differences(
    outcomes: Sequence[Outcome], baseline: str, candidate: str, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap draws of (like-rate difference, early-skip difference), candidate minus
    baseline, resampling listeners. Draws where a version has no thumbs (or no listenings) are
    NaN and left out of percentiles by the caller."""
    # per listener and version: [listenings, thumbs, likes, early skips]
    actors = sorted({o.actor for o in outcomes})
    index = {a: i for i, a in enumerate(actors)}
    counts = np.zeros((2, len(actors), 4))
    side = {baseline: 0, candidate: 1}
    for o in outcomes:
        if o.version in side:
            row = counts[side[o.version], index[o.actor]]
            row += (1, o.thumb != 0, o.thumb > 0, o.early_skip)
    rng = np.random.default_rng(seed)
    # weights[r, a]: how often listener a was drawn in resample r (multinomial = with replacement)
    weights = rng.multinomial(len(actors), np.full(len(actors), 1 / len(actors)), size=resamples)
    totals = np.einsum("ra,vak->rvk", weights, counts)  # [resample, version, count]
    with np.errstate(invalid="ignore", divide="ignore"):
        like = totals[..., 2] / np.where(totals[..., 1] > 0, totals[..., 1], np.nan)
        skip = totals[..., 3] / np.where(totals[..., 0] > 0, totals[..., 0], np.nan)
    return like[:, 1] - like[:, 0], skip[:, 1] - skip[:, 0]


def _interval(estimate: float | None, draws: np.ndarray, confidence: float) -> Interval | None:
    draws = draws[~np.isnan(draws)]
    if estimate is None or len(draws) == 0:
        return None
    tail = 100.0 * (1.0 - confidence)
    return Interval(
        float(estimate), float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))
    )


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def decide(
    outcomes: Sequence[Outcome],
    baseline: str,
    candidate: str,
    rules: CanaryRules | None = None,
    age_s: float = 0.0,
) -> Decision:
    """Promote, roll back or wait, from the listenings of both versions (see the module)."""
    rules = rules or CanaryRules()
    by_version: dict[str, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        by_version[o.version].append(o)
    base, cand = rates(by_version[baseline]), rates(by_version[candidate])

    def result(action: str, reason: str, like=None, skip=None) -> Decision:
        return Decision(action, reason, base, cand, like, skip)

    if min(base.listeners, cand.listeners) < rules.min_listeners:
        if age_s >= rules.max_wait_s:
            return result(ROLL_BACK, "too few listeners before the deadline")
        return result(WAIT, f"fewer than {rules.min_listeners} listeners on a side")
    like_draws, skip_draws = bootstrap_differences(
        outcomes, baseline, candidate, rules.resamples, rules.seed
    )
    like = _interval(_diff(cand.like_rate, base.like_rate), like_draws, rules.confidence)
    skip = _interval(
        _diff(cand.early_skip_rate, base.early_skip_rate), skip_draws, rules.confidence
    )
    if like is not None and like.high < 0:
        return result(ROLL_BACK, "like rate lower with confidence", like, skip)
    if skip is not None and skip.low > 0:
        return result(ROLL_BACK, "early-skip rate higher with confidence", like, skip)
    enough = (
        min(base.thumbs, cand.thumbs) >= rules.min_thumbs
        and min(base.listenings, cand.listenings) >= rules.min_listenings
    )
    if (
        enough
        and like is not None
        and skip is not None
        and like.low > -rules.like_margin
        and skip.high < rules.skip_margin
    ):
        return result(PROMOTE, "not worse with confidence", like, skip)
    if age_s >= rules.max_wait_s:
        return result(ROLL_BACK, "undecided at the deadline: the incumbent stays", like, skip)
    return result(WAIT, "not enough evidence either way", like, skip)


def assigned(unit_id: str, share: float, salt: str = "") -> bool:
    """Whether a unit (a song request, a room) falls in a canary of this share: a fixed hash of
    its id, so the same unit always gets the same answer and shares nest (a unit in a 5 %
    canary is also in a 10 % one)."""
    digest = hashlib.sha256(f"{salt}\x1f{unit_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share
