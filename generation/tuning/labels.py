"""Labels for tuning: feedback events -> per-listener item scores and preference pairs.

Pure functions over plain data (no Django, no torch), versioned by :data:`LABELS_VERSION`: the
feedback log is never rewritten, and labels are derived from it again whenever these rules
change. The tuning job reads events from the feedback table into :class:`EventRow` (one per
row, plus the target's length, which the table does not hold), calls :func:`build_labels` and
stores the result with its version.

The rules, in the order they apply:

1. **Dropped listeners.** Events of actors in ``dropped`` (rate-limited or flagged, decided
   upstream) are ignored entirely.
2. **What each listener did with each item** (:class:`Listening`): how far they heard it
   (``progress`` fraction and position, ``complete``, the position of a ``skip``), their last
   thumb, whether they shared, downloaded or replayed it, whether the skip was early, and which
   item they voted for in a choice set.
3. **Completion as a quantile.** Long pieces are finished less often, so the fraction heard is
   turned into its quantile among every listening of items in the same duration bucket.
4. **Heard.** A listening counts only if the item was heard past a minimum: ``min_heard_s``
   seconds *or* ``min_heard_fraction`` of it (a 4 s preview is heard at 2 s; a song at 5 s).
5. **Pairs only within a choice set** (the candidates of one prompt, the auditioned proposals of
   one round, an A/B of continuations), only between items the same listener heard, decided by
   the strongest signal on which the two differ: thumbs, then a vote, then share/replay/download,
   then completion quantile (by at least ``completion_margin``), then an early skip. Ties give no
   pair. A vote names its choice set's candidates in ``conditioning["candidates"]``
   (collab.services._choice_set_events), so a vote for A makes A chosen over every other
   candidate the voter heard.
6. **Per-listener caps**: at most ``max_pairs_per_actor`` pairs and ``max_unpaired_per_actor``
   unpaired thumbs per listener; when over, a fixed pseudo-random subset is kept (by a hash, so
   the same events give the same labels and no part of a session is favoured).

Unpaired thumbs on heard items (KTO-style: this was liked, that was not, no counterpart needed)
come out beside the pairs.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

LABELS_VERSION = "labels-v1"
"""Bumped whenever a change alters which labels come out of the same events."""

THUMB_KINDS = {"thumb_up": 1, "thumb_down": -1}
ENGAGED_KINDS = {"share", "download", "replay"}
# Signals that decide a pair, strongest first: the order of the comparison in `compare`.
SIGNALS = ("thumb", "vote", "engaged", "completion", "skip")


@dataclass(frozen=True)
class EventRow:
    """One feedback event, as the tuning job reads it (webapp.feedback.models.FeedbackEvent).

    ``duration_s`` is not a column of the table: it is the target's length (song, chunk or
    preview), joined in by whoever reads the table. ``server_ts`` is seconds since the epoch;
    it only orders a listener's events on one item (the last thumb counts)."""

    kind: str
    actor: str
    target_type: str
    target_id: str
    value: float | None = None
    position_s: float | None = None
    choice_set: str = ""
    slot: int | None = None
    model_version: str = ""
    seed: int | None = None
    conditioning: dict = field(default_factory=dict, hash=False, compare=False)
    server_ts: float = 0.0
    duration_s: float | None = None


@dataclass(frozen=True, order=True)
class Item:
    """What was listened to: a feedback target."""

    target_type: str
    target_id: str

    def __str__(self) -> str:
        return f"{self.target_type}:{self.target_id}"


@dataclass(frozen=True)
class ItemInfo:
    """An item's provenance, as its events carry it (the first event that names it wins)."""

    model_version: str = ""
    seed: int | None = None
    conditioning: dict = field(default_factory=dict, hash=False, compare=False)
    duration_s: float | None = None


@dataclass(frozen=True)
class LabelRules:
    min_heard_s: float = 5.0
    min_heard_fraction: float = 0.5
    early_skip_fraction: float = 0.25  # a skip before this share of the item is early...
    early_skip_s: float = 10.0  # ...or before this many seconds when its length is unknown
    completion_margin: float = 0.25  # completion quantiles closer than this are a tie
    duration_buckets_s: tuple[float, ...] = (15.0, 45.0, 120.0, 300.0)  # bucket edges
    max_pairs_per_actor: int = 200
    max_unpaired_per_actor: int = 200
    votes_need_heard: bool = True  # a vote counts only between candidates the voter heard


@dataclass(frozen=True)
class Listening:
    """What one listener did with one item. ``completion`` is the quantile of the fraction
    heard within its duration bucket (0.5 when nothing else is in the bucket)."""

    actor: str
    item: Item
    heard_s: float
    heard_fraction: float | None  # None when neither a fraction nor the length is known
    heard: bool
    thumb: int  # +1, -1, 0 for none (the listener's last thumb)
    engaged: bool  # shared, downloaded or replayed
    early_skip: bool
    completion: float

    @property
    def value(self) -> float:
        """A scalar summary in [-1, 1] that keeps the signals' order: a thumb outweighs all
        the rest together, share/replay outweighs completion and skip, and so on. Pairs are
        decided by :func:`compare`, not by this; it is for per-item scores and reports."""
        return (
            0.6 * self.thumb
            + 0.25 * self.engaged
            + 0.1 * (2.0 * self.completion - 1.0)
            - 0.05 * self.early_skip
        )


@dataclass(frozen=True)
class Pair:
    """One listener preferred ``chosen`` over ``rejected`` within one choice set."""

    choice_set: str
    actor: str
    chosen: Item
    rejected: Item
    signal: str  # one of SIGNALS: what decided it


@dataclass(frozen=True)
class Unpaired:
    """A thumb on a heard item, with no counterpart (KTO-style)."""

    actor: str
    item: Item
    desirable: bool


@dataclass(frozen=True)
class ItemScore:
    """An item's mean listening value and like rate over the listeners who heard it."""

    item: Item
    listeners: int
    value: float
    likes: int
    dislikes: int


@dataclass
class Labels:
    version: str
    rules: LabelRules
    items: dict[Item, ItemInfo]
    listenings: list[Listening]
    pairs: list[Pair]
    unpaired: list[Unpaired]
    counts: dict[str, int]  # what was dropped and why, for the job's log

    def item_scores(self) -> list[ItemScore]:
        """Per item, over the listeners who heard it: mean value, likes and dislikes."""
        by_item: dict[Item, list[Listening]] = defaultdict(list)
        for listening in self.listenings:
            if listening.heard:
                by_item[listening.item].append(listening)
        return [
            ItemScore(
                item,
                len(ls),
                sum(x.value for x in ls) / len(ls),
                sum(x.thumb > 0 for x in ls),
                sum(x.thumb < 0 for x in ls),
            )
            for item, ls in sorted(by_item.items())
        ]

    def on_policy(self, model_version: str) -> list[Pair]:
        """Pairs whose two items both came from ``model_version`` (what DPO may train on)."""
        return [
            p
            for p in self.pairs
            if self.items[p.chosen].model_version == model_version
            and self.items[p.rejected].model_version == model_version
        ]


# -- building -------------------------------------------------------------------------------------


def build_labels(
    events: Iterable[EventRow],
    rules: LabelRules | None = None,
    dropped: frozenset[str] | set[str] = frozenset(),
) -> Labels:
    """Labels from a window of feedback events. Deterministic: the same events (in any order),
    rules and dropped listeners give the same labels, in the same order."""
    rules = rules or LabelRules()
    counts: dict[str, int] = defaultdict(int)
    kept = []
    for event in events:
        if event.actor in dropped:
            counts["events_of_dropped_actors"] += 1
        else:
            kept.append(event)
    kept.sort(key=lambda e: (e.server_ts, e.actor, e.target_type, e.target_id, e.kind))

    items = _item_infos(kept)
    members = _choice_sets(kept)
    votes = _votes(kept)
    listenings = _listenings(kept, items, rules)

    pairs: list[Pair] = []
    for choice_set, candidates in sorted(members.items()):
        by_actor: dict[str, dict[Item, Listening]] = defaultdict(dict)
        for item in candidates:
            for actor, listening in listenings.get(item, {}).items():
                by_actor[actor][item] = listening
        for actor in sorted(set(by_actor) | {a for s, a in votes if s == choice_set}):
            voted = votes.get((choice_set, actor))
            heard = {i: x for i, x in by_actor.get(actor, {}).items() if x.heard}
            for a, b in combinations(sorted(candidates), 2):
                if a not in heard or b not in heard:
                    if voted in (a, b) and not rules.votes_need_heard:
                        other = b if voted == a else a
                        pairs.append(Pair(choice_set, actor, voted, other, "vote"))
                    elif voted in (a, b) or a in heard or b in heard:
                        counts["pairs_unheard"] += 1
                    continue
                decided = compare(heard[a], heard[b], voted, rules.completion_margin)
                if decided is not None:
                    chosen, rejected, signal = decided
                    pairs.append(Pair(choice_set, actor, chosen, rejected, signal))

    unpaired = [
        Unpaired(x.actor, x.item, x.thumb > 0)
        for by_actor in listenings.values()
        for x in by_actor.values()
        if x.heard and x.thumb
    ]
    counts["thumbs_unheard"] = sum(
        1 for by_actor in listenings.values() for x in by_actor.values() if x.thumb and not x.heard
    )
    pairs = _cap(pairs, rules.max_pairs_per_actor, counts, "pairs_over_cap")
    unpaired = _cap(unpaired, rules.max_unpaired_per_actor, counts, "unpaired_over_cap")
    return Labels(
        version=LABELS_VERSION,
        rules=rules,
        items=items,
        listenings=sorted(
            (x for by_actor in listenings.values() for x in by_actor.values()),
            key=lambda x: (x.item, x.actor),
        ),
        pairs=pairs,
        unpaired=unpaired,
        counts=dict(counts),
    )


def compare(
    a: Listening, b: Listening, voted: Item | None, completion_margin: float
) -> tuple[Item, Item, str] | None:
    """Which of two heard candidates one listener preferred: (chosen, rejected, the signal that
    decided), or None for a tie. ``voted``: the item they voted for in the choice set, if any."""
    steps = (
        ("thumb", a.thumb, b.thumb, 0.0),
        ("vote", voted == a.item, voted == b.item, 0.0),
        ("engaged", a.engaged, b.engaged, 0.0),
        ("completion", a.completion, b.completion, completion_margin),
        ("skip", not a.early_skip, not b.early_skip, 0.0),
    )
    for signal, x, y, margin in steps:
        if x != y and abs(x - y) >= margin:
            return (a.item, b.item, signal) if x > y else (b.item, a.item, signal)
    return None


def _item_infos(events: list[EventRow]) -> dict[Item, ItemInfo]:
    infos: dict[Item, ItemInfo] = {}
    for e in events:
        item = Item(e.target_type, e.target_id)
        known = infos.get(item)
        if known is None:
            infos[item] = ItemInfo(e.model_version, e.seed, e.conditioning, e.duration_s)
        elif known.duration_s is None and e.duration_s is not None:
            infos[item] = ItemInfo(
                known.model_version, known.seed, known.conditioning, e.duration_s
            )
    # a vote's other candidates may have no events of their own: known by id only
    for e in events:
        for candidate in _vote_candidates(e):
            infos.setdefault(candidate, ItemInfo())
    return infos


def _vote_candidates(event: EventRow) -> list[Item]:
    if event.kind != "vote":
        return []
    out = []
    for c in (event.conditioning or {}).get("candidates", []):
        if isinstance(c, dict) and c.get(event.target_type) is not None:
            out.append(Item(event.target_type, str(c[event.target_type])))
    return out


def _choice_sets(events: list[EventRow]) -> dict[str, set[Item]]:
    """Choice set -> its candidates: every target named with it, and every vote's candidates."""
    members: dict[str, set[Item]] = defaultdict(set)
    for e in events:
        if e.choice_set:
            members[e.choice_set].add(Item(e.target_type, e.target_id))
            members[e.choice_set].update(_vote_candidates(e))
    return members


def _votes(events: list[EventRow]) -> dict[tuple[str, str], Item]:
    """(choice set, actor) -> the item voted for (the last vote, if several)."""
    return {
        (e.choice_set, e.actor): Item(e.target_type, e.target_id)
        for e in events
        if e.kind == "vote" and e.choice_set
    }


def _listenings(
    events: list[EventRow], items: dict[Item, ItemInfo], rules: LabelRules
) -> dict[Item, dict[str, Listening]]:
    """Item -> actor -> what that actor did with it (events are in time order)."""
    seconds: dict[tuple[Item, str], float] = defaultdict(float)
    fraction: dict[tuple[Item, str], float] = {}
    thumbs: dict[tuple[Item, str], int] = {}
    engaged: set[tuple[Item, str]] = set()
    skipped_at: dict[tuple[Item, str], float] = {}
    seen: set[tuple[Item, str]] = set()
    for e in events:
        key = (Item(e.target_type, e.target_id), e.actor)
        seen.add(key)
        if e.kind == "progress":
            if e.value is not None:
                fraction[key] = max(fraction.get(key, 0.0), min(1.0, max(0.0, e.value)))
            if e.position_s is not None:
                seconds[key] = max(seconds[key], e.position_s)
        elif e.kind == "complete":
            fraction[key] = 1.0
        elif e.kind == "skip":
            if e.position_s is not None:
                seconds[key] = max(seconds[key], e.position_s)
                skipped_at[key] = e.position_s
        elif e.kind in THUMB_KINDS:
            thumbs[key] = THUMB_KINDS[e.kind]
        elif e.kind in ENGAGED_KINDS:
            engaged.add(key)

    raw: dict[tuple[Item, str], tuple[float, float | None, bool, bool]] = {}
    for key in seen:
        item, _ = key
        duration = items[item].duration_s
        heard_s, frac = seconds.get(key, 0.0), fraction.get(key)
        if duration:
            heard_s = max(heard_s, (frac or 0.0) * duration)
            frac = min(1.0, max(frac or 0.0, heard_s / duration))
        heard = heard_s >= rules.min_heard_s or (
            frac is not None and frac >= rules.min_heard_fraction
        )
        early = False
        if key in skipped_at:
            limit = rules.early_skip_fraction * duration if duration else rules.early_skip_s
            early = skipped_at[key] < limit
        raw[key] = (heard_s, frac, heard, early)

    completion = _completion_quantiles(
        {k: (v[1], items[k[0]].duration_s) for k, v in raw.items()}, rules.duration_buckets_s
    )
    out: dict[Item, dict[str, Listening]] = defaultdict(dict)
    for (item, actor), (heard_s, frac, heard, early) in raw.items():
        out[item][actor] = Listening(
            actor,
            item,
            heard_s,
            frac,
            heard,
            thumbs.get((item, actor), 0),
            (item, actor) in engaged,
            early,
            completion[(item, actor)],
        )
    return out


def duration_bucket(duration_s: float | None, edges: tuple[float, ...]) -> int:
    """Index of the bucket a length falls in; -1 when the length is unknown."""
    if duration_s is None:
        return -1
    return sum(duration_s >= edge for edge in edges)


def _completion_quantiles(
    fractions: dict, edges: tuple[float, ...]
) -> dict[tuple[Item, str], float]:
    """Each listening's fraction heard as a mid-rank quantile within its duration bucket."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for frac, duration in fractions.values():
        buckets[duration_bucket(duration, edges)].append(frac or 0.0)
    for values in buckets.values():
        values.sort()
    out = {}
    for key, (frac, duration) in fractions.items():
        values = buckets[duration_bucket(duration, edges)]
        x = frac or 0.0
        below, upto = bisect_left(values, x), bisect_right(values, x)
        out[key] = (below + 0.5 * (upto - below)) / len(values)
    return out


def _stable_hash(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def _cap(rows: list, limit: int, counts: dict[str, int], reason: str) -> list:
    """At most ``limit`` rows per actor: a fixed pseudo-random subset, in a stable order."""
    by_actor: dict[str, list] = defaultdict(list)
    for row in rows:
        by_actor[row.actor].append(row)
    kept = []
    for actor in sorted(by_actor):
        mine = sorted(by_actor[actor], key=lambda r: _stable_hash(LABELS_VERSION, r))
        counts[reason] += max(0, len(mine) - limit)
        kept.extend(mine[:limit])
    return sorted(kept, key=_row_order)


def _row_order(row) -> tuple:
    if isinstance(row, Pair):
        return (row.choice_set, row.actor, row.chosen, row.rejected)
    return (row.actor, row.item)
