"""Voting rules as pure functions: from a round's votes to the blend that steers the next chunks.

No Django, Redis or torch here: plain data in, plain data out, so the rules can be read and tested
on their own. The result of a round is a *blend* (weights over proposals and the anchor prompt),
not only a winner:

1. Votes become shares, proportional to counts; no single proposal may take more than
   `max_share` of what the vote decides. The excess of a landslide stays with the current music
   (it is not handed to the other proposals: that would promote a one-vote fringe idea).
2. The new blend mixes those shares with the previous blend (`carry`), so the music turns rather
   than jumps, and a proposal nobody votes for again fades geometrically (stale decay).
3. Hysteresis: a new component enters only with at least `enter_weight`, an existing one stays
   while it has at least `exit_weight`; what falls out is renormalised away. This stops a blend
   from flickering when two proposals trade a vote back and forth.
4. Nobody voted: the blend drifts toward the room's anchor prompt by `idle_pull`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping
from dataclasses import dataclass

ANCHOR = "anchor"  # the key of the room's own prompt in a blend

Key = Hashable
Blend = dict[Key, float]  # weights >= 0 that sum to 1


@dataclass(frozen=True)
class BlendRules:
    max_share: float = 0.7  # of the vote's part, the most one proposal can take
    carry: float = 0.35  # share of the previous blend kept each round
    enter_weight: float = 0.12  # a new component needs this much to enter the blend
    exit_weight: float = 0.06  # an existing component leaves below this
    idle_pull: float = 0.25  # with no votes, this much of the blend moves to the anchor

    def __post_init__(self) -> None:
        if not 0 < self.max_share <= 1:
            raise ValueError("max_share must be in (0, 1]")
        if not 0 <= self.carry < 1:
            raise ValueError("carry must be in [0, 1)")
        if not 0 <= self.exit_weight <= self.enter_weight < 1:
            raise ValueError("need 0 <= exit_weight <= enter_weight < 1")
        if not 0 <= self.idle_pull <= 1:
            raise ValueError("idle_pull must be in [0, 1]")


def tally(ballots: Mapping[Hashable, Key]) -> Counter:
    """Count one vote per voter: `ballots` maps voter -> the proposal they chose (last one wins)."""
    return Counter(ballots.values())


def capped_shares(counts: Mapping[Key, int], max_share: float) -> Blend:
    """Shares proportional to counts, each at most `max_share`; they may sum to less than 1."""
    total = sum(c for c in counts.values() if c > 0)
    if total == 0:
        return {}
    return {k: min(c / total, max_share) for k, c in counts.items() if c > 0}


def normalise(blend: Mapping[Key, float]) -> Blend:
    total = sum(w for w in blend.values() if w > 0)
    if total <= 0:
        return {ANCHOR: 1.0}
    return {k: w / total for k, w in blend.items() if w > 0}


def apply_hysteresis(
    candidate: Mapping[Key, float], previous: Mapping[Key, float], rules: BlendRules
) -> Blend:
    kept = {
        k: w
        for k, w in candidate.items()
        if w >= (rules.exit_weight if previous.get(k, 0.0) > 0 else rules.enter_weight)
    }
    return normalise(kept)


def next_blend(
    counts: Mapping[Key, int], previous: Mapping[Key, float], rules: BlendRules = BlendRules()
) -> Blend:
    """The blend for the next round, from this round's vote counts and the current blend."""
    previous = normalise(previous) if previous else {ANCHOR: 1.0}
    if sum(c for c in counts.values() if c > 0) == 0:
        candidate = {k: w * (1 - rules.idle_pull) for k, w in previous.items()}
        candidate[ANCHOR] = candidate.get(ANCHOR, 0.0) + rules.idle_pull
        return apply_hysteresis(candidate, previous, rules)

    shares = capped_shares(counts, rules.max_share)
    unplaced = max(0.0, 1.0 - sum(shares.values()))
    vote_part = 1.0 - rules.carry
    candidate: dict[Key, float] = {}
    for k, w in previous.items():  # carried over, plus what the cap could not place
        candidate[k] = w * (rules.carry + vote_part * unplaced)
    for k, s in shares.items():
        candidate[k] = candidate.get(k, 0.0) + vote_part * s
    return apply_hysteresis(candidate, previous, rules)


def leader(counts: Mapping[Key, int]) -> Key | None:
    """The most-voted proposal; ties go to the one that reached its count first (dict order)."""
    best, best_count = None, 0
    for k, c in counts.items():
        if c > best_count:
            best, best_count = k, c
    return best


def blend_distance(a: Mapping[Key, float], b: Mapping[Key, float]) -> float:
    """Total-variation distance between two blends: 0 same, 1 nothing in common."""
    keys = set(a) | set(b)
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in keys)


def round_should_close(*, ends_at: float, now: float) -> bool:
    return now >= ends_at


def round_ends_at(*, opened_at: float, length_s: float, slow_mode_s: float = 0.0) -> float:
    """Rounds last `length_s`; slow mode stretches them so a big audience has time to vote."""
    return opened_at + max(length_s, slow_mode_s)


def ramp(previous: Mapping[Key, float], target: Mapping[Key, float], fraction: float) -> Blend:
    """The blend `fraction` of the way from previous to target (0..1): steering is ramped over a
    chunk so a change of blend is heard as a turn, not a cut."""
    fraction = min(max(fraction, 0.0), 1.0)
    keys = list(dict.fromkeys([*previous, *target]))
    mixed = {k: (1 - fraction) * previous.get(k, 0.0) + fraction * target.get(k, 0.0) for k in keys}
    return normalise(mixed)
