"""A simulated audience: listeners with a hidden taste who play, skip, thumb and vote.

The tuning loop needs feedback to learn from and a way to tell whether it worked. Real people
are not at hand, so a population of simulated listeners stands in for them. Their taste is
*hidden* from everything that learns (labels, critic, DPO see only their actions) and is a pure
function of what the attribute probe (generation/probe) measures in the audio: the style
distribution, the tempo and the key. So whether the tuned model pleases them more is measurable
from audio alone, and the like rate they report is an honest figure of the loop.

    taste     -> like_probability(taste, attributes)        pure, the ground truth
    listener  =  the shared taste + their own variation + noise on every listen
    actions   =  play_start, progress, complete or skip, thumbs, shares, replays (feedback API
                 events) and, asked to compare, the candidate they vote for (a feedback vote
                 for a request's two songs; a websocket vote for a room's previews)

Listeners never see the audio themselves: a driver measures each item once with the probe
(:func:`measure`) and hands listeners :class:`Heard` items. Their :class:`Action` objects carry
exactly the fields of the feedback API's events (:meth:`Action.as_api`), so driving them through
the real API and websocket is a loop that posts them; :meth:`Action.as_row` makes the rows the
label builder reads, for simulations that skip the service.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from generation.tuning.labels import EventRow

PROGRESS_MARKS = (0.25, 0.5, 0.75)  # a client reports progress as each quarter is passed


@dataclass(frozen=True)
class Attributes:
    """What the probe measures in a clip."""

    style_probs: dict[str, float]  # probe.predict_style: probability of each style
    bpm: float
    tonic: int = 0  # pitch class, 0 = C
    mode: str = "major"


def measure(probe, pcm, sample_rate: int) -> Attributes:
    """The attributes of a clip, read by the attribute probe (generation.probe.AttributeProbe)."""
    _, probs = probe.predict_style(pcm, sample_rate)
    key = probe.key(pcm, sample_rate)
    return Attributes(probs, float(probe.tempo(pcm, sample_rate)), int(key.tonic), key.mode)


@dataclass(frozen=True)
class Taste:
    """A like probability over attributes, as log-odds that add up."""

    styles: dict[str, float] = field(default_factory=dict)  # log-odds per style (absent: 0)
    bpm: float = 110.0  # the favourite tempo
    bpm_octaves: float = 0.4  # how far from it (in octaves) a tempo still pleases
    bpm_weight: float = 1.0  # log-odds between the favourite tempo and one far from it
    minor: float = 0.0  # log-odds of minor over major, split evenly around zero
    keys: dict[int, float] = field(default_factory=dict)  # log-odds per tonic (absent: 0)
    bias: float = -0.5

    def logit(self, a: Attributes) -> float:
        style = sum(p * self.styles.get(name, 0.0) for name, p in a.style_probs.items())
        distance = math.log2(max(a.bpm, 1.0) / self.bpm) / self.bpm_octaves
        tempo = self.bpm_weight * (2.0 * math.exp(-0.5 * distance**2) - 1.0)
        mode = 0.5 * self.minor if a.mode == "minor" else -0.5 * self.minor
        return self.bias + style + tempo + mode + self.keys.get(a.tonic, 0.0)


def like_probability(taste: Taste, attributes: Attributes) -> float:
    """The chance that a listener of this taste likes a clip with these attributes."""
    return 1.0 / (1.0 + math.exp(-taste.logit(attributes)))


def hidden_taste(styles: Sequence[str], seed: int, strength: float = 2.0) -> Taste:
    """The audience's shared taste: a third of the styles loved, a third disliked, a favourite
    tempo between 80 and 140 BPM, a leaning to major or minor."""
    rng = random.Random(seed)
    order = list(styles)
    rng.shuffle(order)
    third = max(1, len(order) // 3)
    weights = {s: strength for s in order[:third]}
    weights.update({s: -strength for s in order[third : 2 * third]})
    return Taste(
        styles=weights,
        bpm=rng.uniform(80.0, 140.0),
        minor=rng.choice((-1.0, 1.0)) * 0.5 * strength,
    )


def personal_taste(taste: Taste, rng: random.Random, spread: float = 0.5) -> Taste:
    """One listener's version of the shared taste: every weight moved by noise of ``spread``."""
    return replace(
        taste,
        styles={s: w + rng.gauss(0.0, spread) for s, w in taste.styles.items()},
        bpm=taste.bpm * 2.0 ** rng.gauss(0.0, 0.15),
        minor=taste.minor + rng.gauss(0.0, spread),
        bias=taste.bias + rng.gauss(0.0, spread / 2),
    )


@dataclass(frozen=True)
class Heard:
    """An item put in front of a listener, with what the probe measured in it."""

    target_type: str  # "song", "chunk" or "audition", as the feedback table names them
    target_id: str
    duration_s: float
    attributes: Attributes
    choice_set: str = ""
    slot: int | None = None
    model_version: str = ""  # for offline rows only: the server fills provenance itself


@dataclass(frozen=True)
class Action:
    """One thing a listener did, at ``at_s`` seconds after they started listening."""

    kind: str
    target_type: str
    target_id: str
    at_s: float
    value: float | None = None
    position_s: float | None = None
    choice_set: str = ""
    slot: int | None = None

    def as_api(self) -> dict:
        """The event as the feedback API takes it (POST /api/v1/feedback/ events)."""
        event = {"kind": self.kind, "target_type": self.target_type, "target_id": self.target_id}
        for name in ("value", "position_s", "slot"):
            if getattr(self, name) is not None:
                event[name] = getattr(self, name)
        if self.choice_set:
            event["choice_set"] = self.choice_set
        return event

    def as_row(self, actor: str, heard: Heard, started_at: float = 0.0) -> EventRow:
        """The row the feedback table would hold, for simulations that skip the service."""
        return EventRow(
            kind=self.kind,
            actor=actor,
            target_type=self.target_type,
            target_id=self.target_id,
            value=self.value,
            position_s=self.position_s,
            choice_set=self.choice_set,
            slot=self.slot,
            model_version=heard.model_version,
            server_ts=started_at + self.at_s,
            duration_s=heard.duration_s,
        )


@dataclass(frozen=True)
class Habits:
    """How a listener acts on liking or not liking something."""

    listen_noise: float = 0.5  # log-odds noise on every single listen (mood)
    finish_if_liked: float = 0.8  # otherwise they stop somewhere past half
    early_skip_if_disliked: float = 0.6  # skip within the first quarter; otherwise later
    thumb_rate: float = 0.3  # how often a listener bothers to thumb at all
    share_rate: float = 0.08  # shares (or replays) something they liked
    vote_temperature: float = 1.0  # Luce choice over log-odds: 0 picks the favourite always
    # asked to compare (an A/B, a round's previews), a listener hears each candidate at least
    # this far before moving on: a fair hearing, or the choice would mean little
    fair_hearing: float = 0.5


class Listener:
    def __init__(self, name: str, taste: Taste, seed: int, habits: Habits | None = None):
        self.name = name
        self.taste = taste
        self.habits = habits or Habits()
        self.rng = random.Random(seed)

    def likes(self, attributes: Attributes) -> bool:
        """Whether this listen pleased them: their taste plus this moment's mood."""
        logit = self.taste.logit(attributes) + self.rng.gauss(0.0, self.habits.listen_noise)
        return self.rng.random() < 1.0 / (1.0 + math.exp(-logit))

    def listen(self, item: Heard, at_least: float = 0.0) -> list[Action]:
        """Play the item: how far they get (``at_least`` this fraction), and any thumb, share or
        replay on the way."""
        h, rng = self.habits, self.rng
        liked = self.likes(item.attributes)
        if liked:
            fraction = 1.0 if rng.random() < h.finish_if_liked else rng.uniform(0.5, 1.0)
        elif rng.random() < h.early_skip_if_disliked:
            fraction = rng.uniform(0.05, 0.25)
        else:
            fraction = rng.uniform(0.25, 0.9)
        fraction = max(fraction, at_least)
        duration = item.duration_s
        actions = [self._act(item, "play_start", 0.0, position_s=0.0)]
        for mark in PROGRESS_MARKS:
            if fraction >= mark:
                at = mark * duration
                actions.append(self._act(item, "progress", at, value=mark, position_s=at))
        end = fraction * duration
        if fraction >= 1.0:
            actions.append(self._act(item, "complete", end, value=1.0, position_s=end))
        else:
            actions.append(self._act(item, "skip", end, position_s=end))
        if rng.random() < h.thumb_rate:
            kind = "thumb_up" if liked else "thumb_down"
            actions.append(self._act(item, kind, end, position_s=end))
        if liked and rng.random() < h.share_rate:
            actions.append(self._act(item, rng.choice(("share", "replay")), end + 1.0))
        return actions

    def choose(self, candidates: Sequence[Heard]) -> tuple[int, list[Action]]:
        """A comparison (a round's previews, a request's two candidates): hear each (a fair
        hearing: at least ``habits.fair_hearing`` of it), then pick one (the index of the vote).
        The choice is Luce's over their log-odds, the Bradley–Terry model the critic assumes."""
        actions, offset = [], 0.0
        for item in candidates:
            heard = self.listen(item, at_least=self.habits.fair_hearing)
            actions += [replace(a, at_s=a.at_s + offset) for a in heard]
            offset += max(a.at_s for a in heard) + 0.5
        t = self.habits.vote_temperature
        logits = [self.taste.logit(c.attributes) for c in candidates]
        if t <= 0:
            return max(range(len(candidates)), key=logits.__getitem__), actions
        top = max(logits)
        weights = [math.exp((x - top) / t) for x in logits]
        return self.rng.choices(range(len(candidates)), weights)[0], actions

    def vote(self, item: Heard, at_s: float) -> Action:
        """The vote for a candidate, as the feedback API takes it (rooms vote over the
        websocket instead, and the service records the round)."""
        return self._act(item, "vote", at_s, value=1.0)

    def _act(self, item: Heard, kind: str, at: float, **fields) -> Action:
        return Action(
            kind,
            item.target_type,
            item.target_id,
            at,
            choice_set=item.choice_set,
            slot=item.slot,
            **fields,
        )


def audience(
    taste: Taste, size: int, seed: int, spread: float = 0.5, habits: Habits | None = None
) -> list[Listener]:
    """``size`` listeners around one shared taste, named sim-0, sim-1, ..."""
    rng = random.Random(seed)
    return [
        Listener(f"sim-{i}", personal_taste(taste, rng, spread), rng.randrange(2**31), habits)
        for i in range(size)
    ]


def expected_like_rate(taste: Taste, items: Sequence[Attributes]) -> float:
    """The mean like probability of the shared taste over items: the figure tuning moves."""
    return sum(like_probability(taste, a) for a in items) / max(1, len(items))
