"""Canary rules: is a candidate model version worse than the one it would replace? (pure)

A candidate serves a small share of new songs and rooms (its *canary*) beside the promoted
version. Its listeners' feedback answers one question with two figures, each per version:

    like rate        thumbs up / thumbs given, over listenings of the version's items
    early-skip rate  listenings skipped in the first quarter / listenings

Listeners, not events, are the unit of evidence: one listener's many listenings are not
independent (a person who never thumbs down never does), so confidence intervals come from a
*cluster bootstrap*: resample listeners with replacement, recompute both versions' rates from the
resampled listeners' listenings (paired: a listener who heard both versions counts in both),
and read percentiles of the differences (candidate minus baseline). Each rate in a draw carries
one pseudo-observation on either side (Agresti–Caffo), so a version with a handful of thumbs
cannot look certain.

"Worse" means worse by more than a practical margin (``like_margin``, ``skip_margin``: 3
points), and a decision on a metric needs that metric's minimum evidence on both sides
(``min_thumbs`` for the like rate, ``min_listenings`` for the early-skip rate):

    roll back  worse with confidence: the like-rate difference's upper bound below -like_margin,
               or the early-skip difference's lower bound above skip_margin
    promote    not worse with confidence: the like-rate difference's lower bound above
               -like_margin and the early-skip difference's upper bound below skip_margin
    wait       otherwise; after ``max_wait_s`` an undecided canary is rolled back (the incumbent
               stays: a version must earn its promotion)

Why the margin, the stricter bounds and the minimum evidence: the canary is judged every few
minutes, on two metrics, for up to two weeks. The rule before (roll back on any difference below
zero at 95 % one-sided, per metric, per look) rolled back an equally good candidate in 15 % of
single looks in the web-side test's setting, and 48 % of equal 10 % canaries over their life
(generation/tuning/canary_sim.py; docs/tuning.md has the table). Now ``confidence`` is
family-wise over the two metrics (Bonferroni: each one-sided bound at 1 - (1 - confidence) / 2),
an equally good candidate must look worse by a whole margin beyond its bound to be rolled back,
and the first looks allowed to decide (where chance is largest) come only with 100 thumbs and
250 listenings a side: 0 of 200 equal canaries rolled back, in one look or over 32, and no
clearly worse one promoted.

:func:`decide` is deterministic for a given seed, so a decision can be recomputed and audited.
"""

from __future__ import annotations

import hashlib
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
    # family-wise over the two metrics: each difference's one-sided bound is at
    # 1 - (1 - confidence) / 2 (the 0.5th or 99.5th percentile); 99 % rather than 95 %
    # because the beat looks again every few minutes (see the module)
    confidence: float = 0.99
    # practical significance: a like rate this much lower, or an early-skip rate this much
    # higher, is "as good"; beyond it, "worse" (both for promoting and for rolling back)
    like_margin: float = 0.03
    skip_margin: float = 0.03
    # per version, before deciding on the like rate / on early skips (promoting needs both):
    # with fewer, the first looks that may decide are the ones most easily fooled
    min_thumbs: int = 100
    min_listenings: int = 250
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


def listener_counts(outcomes: Sequence[Outcome], baseline: str, candidate: str) -> np.ndarray:
    """The evidence as a table [2, listeners, 4]: per version (baseline, candidate) and listener
    (sorted by name), their listenings, thumbs, likes and early skips."""
    actors = sorted({o.actor for o in outcomes})
    index = {a: i for i, a in enumerate(actors)}
    counts = np.zeros((2, len(actors), 4))
    side = {baseline: 0, candidate: 1}
    for o in outcomes:
        if o.version in side:
            row = counts[side[o.version], index[o.actor]]
            row += (1, o.thumb != 0, o.thumb > 0, o.early_skip)
    return counts


def rates_of(counts: np.ndarray) -> Rates:
    """One version's :class:`Rates` from its [listeners, 4] slice of :func:`listener_counts`."""
    listenings, thumbs, likes, early_skips = (int(x) for x in counts.sum(0))
    return Rates(int((counts[:, 0] > 0).sum()), listenings, thumbs, likes, early_skips)


def bootstrap_counts(
    counts: np.ndarray, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap draws of (like-rate difference, early-skip difference), candidate minus
    baseline, resampling the listeners of ``counts`` (:func:`listener_counts`), each rate with
    one pseudo-observation on either side. Draws where a version has no thumbs (or no
    listenings) are NaN and left out of percentiles by the caller."""
    n = counts.shape[1]
    rng = np.random.default_rng(seed)
    # weights[r, a]: how often listener a was drawn in resample r (n draws with replacement)
    drawn = rng.integers(0, n, (resamples, n)) + n * np.arange(resamples)[:, None]
    weights = np.bincount(drawn.ravel(), minlength=resamples * n).reshape(resamples, n)
    by_listener = counts.transpose(1, 0, 2).reshape(n, -1)  # [listener, version * count]
    totals = (weights @ by_listener).reshape(resamples, 2, -1)  # [resample, version, count]
    # one pseudo-observation on either side of each rate (Agresti–Caffo): a draw with a
    # handful of thumbs is pulled towards a half instead of reading 0 % or 100 %
    with np.errstate(invalid="ignore", divide="ignore"):
        like = (totals[..., 2] + 1) / np.where(totals[..., 1] > 0, totals[..., 1] + 2, np.nan)
        skip = (totals[..., 3] + 1) / np.where(totals[..., 0] > 0, totals[..., 0] + 2, np.nan)
    return like[:, 1] - like[:, 0], skip[:, 1] - skip[:, 0]


def bootstrap_differences(
    outcomes: Sequence[Outcome], baseline: str, candidate: str, resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`bootstrap_counts` of the outcomes of two versions."""
    return bootstrap_counts(listener_counts(outcomes, baseline, candidate), resamples, seed)


def _interval(estimate: float | None, draws: np.ndarray, confidence: float) -> Interval | None:
    draws = draws[~np.isnan(draws)]
    if estimate is None or len(draws) == 0:
        return None
    tail = 100.0 * (1.0 - confidence)  # one-sided: each bound at ``confidence``
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
    return decide_counts(listener_counts(outcomes, baseline, candidate), rules, age_s)


def decide_counts(
    counts: np.ndarray, rules: CanaryRules | None = None, age_s: float = 0.0
) -> Decision:
    """:func:`decide` on the evidence as a :func:`listener_counts` table."""
    rules = rules or CanaryRules()
    base, cand = rates_of(counts[0]), rates_of(counts[1])

    def result(action: str, reason: str, like=None, skip=None) -> Decision:
        return Decision(action, reason, base, cand, like, skip)

    if min(base.listeners, cand.listeners) < rules.min_listeners:
        if age_s >= rules.max_wait_s:
            return result(ROLL_BACK, "too few listeners before the deadline")
        return result(WAIT, f"fewer than {rules.min_listeners} listeners on a side")
    like_draws, skip_draws = bootstrap_counts(counts, rules.resamples, rules.seed)
    each = 1.0 - (1.0 - rules.confidence) / 2  # two metrics (Bonferroni)
    like = _interval(_diff(cand.like_rate, base.like_rate), like_draws, each)
    skip = _interval(_diff(cand.early_skip_rate, base.early_skip_rate), skip_draws, each)
    # a metric speaks only with its minimum evidence on both sides
    like_known = like if min(base.thumbs, cand.thumbs) >= rules.min_thumbs else None
    skip_known = skip if min(base.listenings, cand.listenings) >= rules.min_listenings else None
    if like_known is not None and like_known.high < -rules.like_margin:
        return result(ROLL_BACK, "like rate lower beyond the margin with confidence", like, skip)
    if skip_known is not None and skip_known.low > rules.skip_margin:
        return result(
            ROLL_BACK, "early-skip rate higher beyond the margin with confidence", like, skip
        )
    if (
        like_known is not None
        and skip_known is not None
        and like_known.low > -rules.like_margin
        and skip_known.high < rules.skip_margin
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
