"""How often the canary rule errs: equal and worse candidates, simulated over many seeds.

    python -m generation.tuning.canary_sim [--seeds 400] [--rule current|before]

Two questions, each asked of a candidate whose truth is known:

    false rollback   an equally good candidate is rolled back on evidence
    false promotion  a clearly worse one (10 points fewer likes) is promoted

Two settings, each over ``--seeds`` seeds:

- **production**: a 10 % canary, listeners arriving over its life, each with their own like
  propensity, thumb habit and number of listenings (heavy-tailed), judged as the beat judges it
  (every few minutes: here at each 15 % growth of the audience, 32 looks) until the first
  decision; what the first decision was is counted.
- **service test**: the web-side test's setting (tests/tuning/test_versions.py): 16 listeners of
  the simulated audience each hear and thumb all of 24 songs, which land on either version by a
  coin per song (their ids' hash), judged once with the test's rules; and with the default rules.

``--rule before`` is the rule as it was before issue 7 (roll back on any difference below zero
at 95 % one-sided per metric, no pseudo-observations, no minimum evidence per metric), kept here
only to measure what the change bought. Prints a table and a last JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from generation.tuning.canary import (
    PROMOTE,
    ROLL_BACK,
    WAIT,
    CanaryRules,
    _interval,
    decide_counts,
    listener_counts,
    outcomes_from_labels,
    rates_of,
)

Rule = Callable[[np.ndarray, CanaryRules], str]  # listener_counts table -> action


def current_rule(counts: np.ndarray, rules: CanaryRules) -> str:
    return decide_counts(counts, rules).action


def rule_before_issue_7(counts: np.ndarray, rules: CanaryRules) -> str:
    """The rule before issue 7, for comparison: any difference below zero at ``confidence``
    (then 0.95) per metric rolls back; plain rates in the bootstrap; promotion with the margins
    and the minimum evidence."""
    base, cand = rates_of(counts[0]), rates_of(counts[1])
    if min(base.listeners, cand.listeners) < rules.min_listeners:
        return WAIT
    n, r = counts.shape[1], rules.resamples
    rng = np.random.default_rng(rules.seed)
    drawn = rng.integers(0, n, (r, n)) + n * np.arange(r)[:, None]
    weights = np.bincount(drawn.ravel(), minlength=r * n).reshape(r, n)
    totals = (weights @ counts.transpose(1, 0, 2).reshape(n, -1)).reshape(r, 2, -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        like = totals[..., 2] / np.where(totals[..., 1] > 0, totals[..., 1], np.nan)
        skip = totals[..., 3] / np.where(totals[..., 0] > 0, totals[..., 0], np.nan)
    like_i = _interval(
        cand.like_rate - base.like_rate if cand.thumbs and base.thumbs else None,
        like[:, 1] - like[:, 0],
        rules.confidence,
    )
    skip_i = _interval(
        cand.early_skip_rate - base.early_skip_rate, skip[:, 1] - skip[:, 0], rules.confidence
    )
    if like_i is not None and like_i.high < 0:
        return ROLL_BACK
    if skip_i is not None and skip_i.low > 0:
        return ROLL_BACK
    enough = (
        min(base.thumbs, cand.thumbs) >= rules.min_thumbs
        and min(base.listenings, cand.listenings) >= rules.min_listenings
    )
    if (
        enough
        and like_i is not None
        and like_i.low > -rules.like_margin
        and skip_i.high < rules.skip_margin
    ):
        return PROMOTE
    return WAIT


RULES = {"current": current_rule, "before": rule_before_issue_7}


# -- production: a 10 % canary over its life ------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    share: float = 0.1  # the canary's share of songs
    like_rate: float = 0.6  # the promoted version's, for a typical listener
    listener_spread: float = 1.0  # sd of listeners' like log-odds
    listen_noise: float = 0.5  # sd of each listening's mood, in log-odds
    thumb_rate: float = 0.3  # mean; each listener's own from a Beta
    listenings: float = 6.0  # mean per listener; lognormal, so a few listen a lot
    early_skip_if_disliked: float = 0.6
    listeners: int = 3000  # over the canary's life
    first_look: int = 40  # listeners when the beat first judges it
    growth: float = 1.15  # the next look when the audience has grown by this factor


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


def production_counts(traffic: Traffic, effect: float, seed: int) -> np.ndarray:
    """The evidence of a canary's whole life as a listener_counts table [2, listeners, 4],
    listeners in arrival order. ``effect``: the candidate's shift of every listening's like
    log-odds (0: equally good)."""
    rng = np.random.default_rng(seed)
    t = traffic
    n = t.listeners
    base_logit = math.log(t.like_rate / (1 - t.like_rate))
    propensity = base_logit + rng.normal(0.0, t.listener_spread, n)
    a = 1.5
    thumb_rate = rng.beta(a, a * (1 - t.thumb_rate) / t.thumb_rate, n)
    sigma = 0.8
    count = np.maximum(1, np.round(rng.lognormal(math.log(t.listenings) - sigma**2 / 2, sigma, n)))
    who = np.repeat(np.arange(n), count.astype(int))  # one entry per listening
    k = len(who)
    cand = rng.random(k) < t.share
    logit = propensity[who] + rng.normal(0.0, t.listen_noise, k) + effect * cand
    liked = rng.random(k) < _sigmoid(logit)
    thumbed = rng.random(k) < thumb_rate[who]
    early = ~liked & (rng.random(k) < t.early_skip_if_disliked)
    counts = np.zeros((2, n, 4))
    for j, column in enumerate((np.ones(k, bool), thumbed, thumbed & liked, early)):
        np.add.at(counts, (cand.astype(int), who, j), column)
    return counts


def looks(traffic: Traffic) -> list[int]:
    """How many listeners have arrived at each of the beat's looks."""
    marks, n = [], float(traffic.first_look)
    while n < traffic.listeners:
        marks.append(int(n))
        n *= traffic.growth
    return [*marks, traffic.listeners]


def canary_life(
    traffic: Traffic, effect: float, seed: int, rule: Rule, rules: CanaryRules
) -> tuple[str, int]:
    """The first decision over the canary's looks (WAIT: undecided when traffic ends; the
    deadline then rolls it back) and the listeners it took."""
    counts = production_counts(traffic, effect, seed)
    for n in looks(traffic):
        action = rule(counts[:, :n], rules)
        if action != WAIT:
            return action, n
    return WAIT, traffic.listeners


def like_rate_shift(traffic: Traffic, effect: float, seed: int = 0, n: int = 200_000) -> float:
    """The like-rate difference (in rate, not log-odds) an ``effect`` makes, averaged over the
    traffic's listeners."""
    rng = np.random.default_rng(seed)
    base_logit = math.log(traffic.like_rate / (1 - traffic.like_rate))
    logit = (
        base_logit
        + rng.normal(0.0, traffic.listener_spread, n)
        + rng.normal(0.0, traffic.listen_noise, n)
    )
    return float(np.mean(_sigmoid(logit + effect) - _sigmoid(logit)))


# -- the web-side test's setting ------------------------------------------------------------------


def service_test_counts(seed: int, songs: int = 24, listeners: int = 16) -> np.ndarray:
    """tests/tuning/test_versions.py's equal candidate, without the service: the same taste,
    spread and habits as the test, every listener hears every song in order; ``seed`` draws
    each song's version (a coin: standing for the songs' ids) and the audience."""
    from generation.tuning.audience import Attributes, Habits, Heard, Taste, audience
    from generation.tuning.labels import build_labels

    good = Attributes({"liked style": 1.0}, 120.0)
    taste = Taste(styles={"liked style": 1.5, "disliked style": -1.5}, bpm=120.0, bias=0.0)
    coin = random.Random(seed)
    versions = ["cand" if coin.random() < 0.5 else "base" for _ in range(songs)]
    rows = []
    people = audience(taste, listeners, seed, spread=0.3, habits=Habits(thumb_rate=1.0))
    for n, person in enumerate(people):
        for s, version in enumerate(versions):
            heard = Heard("song", f"s{s}", 20.0, good, model_version=version)
            rows += [a.as_row(person.name, heard, 100.0 * s + n) for a in person.listen(heard)]
    outcomes = outcomes_from_labels(build_labels(rows), ["base", "cand"])
    return listener_counts(outcomes, "base", "cand")


# -- the report -----------------------------------------------------------------------------------


def tally(actions: Sequence[str]) -> dict[str, float]:
    c = Counter(actions)
    return {a: c[a] / max(1, len(actions)) for a in (ROLL_BACK, PROMOTE, WAIT)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=400)
    parser.add_argument("--rule", choices=sorted(RULES), default="current")
    parser.add_argument("--worse", type=float, default=-0.5, help="log-odds shift of the worse one")
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    rule = RULES[args.rule]
    # the rule before issue 7 read ``confidence`` per metric, at 95 %, and promoted on 40
    # thumbs and 100 listenings a side
    then = (
        {"confidence": 0.95, "min_thumbs": 40, "min_listenings": 100}
        if args.rule == "before"
        else {}
    )
    rules = CanaryRules(resamples=args.resamples, **then)
    traffic = Traffic()
    began = time.monotonic()
    report: dict = {"rule": args.rule, "seeds": args.seeds, "rules": rules.__dict__}

    test_rules = replace(rules, like_margin=0.2, skip_margin=0.2, min_thumbs=40, min_listenings=100)
    for name, r in (("service_test", test_rules), ("service_test_default_rules", rules)):
        actions = [rule(service_test_counts(seed), r) for seed in range(args.seeds)]
        report[name] = tally(actions)
        print(f"{name}: {report[name]}", flush=True)

    shift = like_rate_shift(traffic, args.worse)
    for name, effect in (("equal", 0.0), ("worse", args.worse)):
        runs = [canary_life(traffic, effect, seed, rule, rules) for seed in range(args.seeds)]
        found = tally([a for a, _ in runs])
        decided = [n for a, n in runs if a != WAIT]
        found["median_listeners_to_decide"] = float(np.median(decided)) if decided else None
        report[f"production_{name}"] = found
        print(f"production, {name} candidate: {found}", flush=True)
    report["worse_like_rate_shift"] = round(shift, 4)
    report["looks"] = len(looks(traffic))
    report["traffic"] = traffic.__dict__
    report["wall_s"] = round(time.monotonic() - began, 1)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
