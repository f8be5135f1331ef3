"""From a room's blend to the Steering the music engine plays: pure functions over plain data.

No Django, Redis or torch here (generation.steering is plain dataclasses). A room's blend weighs
proposals (and the anchor prompt, under ``collab.voting.ANCHOR``); each proposal is either a
*prompt* ("slower, add strings") or a *control nudge*, a small dict that moves the controls:

* ``{"bpm": "+8"}`` / ``{"bpm": "-8"}``: relative tempo, clamped to 40..220 BPM. A bare number
  up to ``MAX_BPM_NUDGE`` in size (``{"bpm": 8}``, ``{"bpm": -8}``) means the same; a number in
  40..220 (``{"bpm": 128}``) sets the tempo.
* ``{"energy": "+"}`` / ``"-"`` (one step of ``LEVEL_STEP``) or a number 0..1; ``brightness``
  likewise.
* ``{"key": "F#", "mode": "minor"}``: either or both (enharmonic spellings accepted).
* ``{"section": "drop"}``: one of ``SECTIONS``.
* ``{"instruments_in": ["strings"]}``, ``{"instruments_out": ["drums"]}``: merged into the current
  lists (bringing an instrument in takes it off the "out" list, and the reverse).

:func:`clean_nudge` turns what a user sent into the canonical form stored on a proposal (relative
tempo as a signed string, so ``8`` can never be mistaken for an absolute tempo once stored);
:func:`blend_to_steering` resolves a blend: prompts weighted by their share of the prompt part of
the blend, control nudges applied to the current controls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from collab.voting import ANCHOR, Key
from generation.steering import BPM_RANGE, KEYS, MODES, Controls, Steering, canonical_key

# The section vocabulary of the training corpus (generation/data/styles.py, SECTION_NAMES); not
# imported from there because generation.data pulls in the corpus builder.
SECTIONS = ("intro", "build", "drop", "breakdown", "outro")
MAX_BPM_NUDGE = 30  # a relative tempo nudge moves at most this many BPM
LEVEL_STEP = 0.15  # one "+" or "-" of energy or brightness
DEFAULT_BPM = 120.0  # a relative nudge starts here while the tempo is unset (the LM's reference)
DEFAULT_LEVEL = 0.5  # likewise for energy and brightness
MAX_INSTRUMENTS = 8
MAX_INSTRUMENT_CHARS = 32
NUDGE_FIELDS = (
    "bpm",
    "energy",
    "brightness",
    "key",
    "mode",
    "section",
    "instruments_in",
    "instruments_out",
)


class NudgeError(ValueError):
    """A control nudge that cannot be understood; the message says why, for the user."""


class IdeaLike(Protocol):
    kind: str
    text: str
    control: Mapping


@dataclass(frozen=True)
class Idea:
    """A proposal as the rules see it (a collab.models.Proposal fits this shape too)."""

    kind: str  # "prompt" | "control"
    text: str = ""
    control: Mapping = field(default_factory=dict)


# --- Nudges ---------------------------------------------------------------------------------


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _clean_bpm(value) -> float | str:
    if isinstance(value, str):
        text = value.strip().lower().removesuffix("bpm").strip()
        try:
            number = float(text)
        except ValueError:
            raise NudgeError(
                f"Tempo must be a number of BPM or a change such as +8; got {value!r}."
            ) from None
        signed = text.startswith(("+", "-"))
    elif _is_number(value):
        try:
            number, signed = float(value), False
        except OverflowError:  # an integer of hundreds of digits: no tempo either
            number, signed = math.inf, False
    else:
        raise NudgeError("Tempo must be a number of BPM or a change such as +8.")
    if not math.isfinite(number):
        raise NudgeError("Tempo must be a number of BPM or a change such as +8.")
    if signed or abs(number) < BPM_RANGE[0]:  # no tempo is that slow: a change is meant
        if number == 0 or abs(number) > MAX_BPM_NUDGE:
            raise NudgeError(f"A tempo change is between 1 and {MAX_BPM_NUDGE} BPM, up or down.")
        return f"{number:+g}"
    if not BPM_RANGE[0] <= number <= BPM_RANGE[1]:
        raise NudgeError(f"Tempo must be between {BPM_RANGE[0]:g} and {BPM_RANGE[1]:g} BPM.")
    return number


def _clean_level(name: str, value) -> float | str:
    if value in ("+", "-"):
        return value
    if _is_number(value) and 0.0 <= value <= 1.0:  # NaN fails this too
        return float(value)
    raise NudgeError(f'{name.capitalize()} is "+", "-" or a number from 0 to 1.')


def _clean_instruments(name: str, value) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise NudgeError(f"{name} must be a list of instrument names.")
    names: list[str] = []
    for raw in value:
        instrument = " ".join(raw.split()).lower()
        if not instrument:
            continue
        if len(instrument) > MAX_INSTRUMENT_CHARS:
            raise NudgeError(f"Instrument names are at most {MAX_INSTRUMENT_CHARS} characters.")
        if instrument not in names:
            names.append(instrument)
    if not names:
        raise NudgeError(f"{name} must name at least one instrument.")
    if len(names) > MAX_INSTRUMENTS:
        raise NudgeError(f"At most {MAX_INSTRUMENTS} instruments in {name}.")
    return names


def clean_nudge(raw: Mapping) -> dict:
    """The canonical form of a control nudge, or NudgeError saying what is wrong with it."""
    if not isinstance(raw, Mapping) or not raw:
        raise NudgeError("A control nudge names at least one control, such as bpm or section.")
    unknown = sorted(str(k) for k in raw if k not in NUDGE_FIELDS)
    if unknown:
        raise NudgeError(f"Unknown control {unknown[0]!r}; known: {', '.join(NUDGE_FIELDS)}.")
    nudge: dict = {}
    for name in NUDGE_FIELDS:  # a fixed order, so equal nudges are equal dicts and descriptions
        if name not in raw:
            continue
        value = raw[name]
        if name == "bpm":
            nudge[name] = _clean_bpm(value)
        elif name in ("energy", "brightness"):
            nudge[name] = _clean_level(name, value)
        elif name == "key":
            key = canonical_key(str(value).strip()[:1].upper() + str(value).strip()[1:])
            if key not in KEYS:
                raise NudgeError(f"Unknown key {value!r}; keys are {', '.join(KEYS)}.")
            nudge[name] = key
        elif name == "mode":
            mode = str(value).strip().lower()
            if mode not in MODES:
                raise NudgeError(f"Mode is {' or '.join(MODES)}.")
            nudge[name] = mode
        elif name == "section":
            section = str(value).strip().lower()
            if section not in SECTIONS:
                raise NudgeError(f"Section is one of {', '.join(SECTIONS)}.")
            nudge[name] = section
        else:
            nudge[name] = _clean_instruments(name, value)
    both = set(nudge.get("instruments_in", ())) & set(nudge.get("instruments_out", ()))
    if both:
        raise NudgeError(f"{sorted(both)[0]!r} cannot come in and go out at once.")
    return nudge


def describe_nudge(nudge: Mapping) -> str:
    """A short label for a ballot: "+8 BPM, key F# minor, add strings"."""
    nudge = clean_nudge(nudge)
    parts: list[str] = []
    bpm = nudge.get("bpm")
    if bpm is not None:
        parts.append(f"{bpm} BPM" if isinstance(bpm, str) else f"{bpm:g} BPM")
    words = {"energy": ("more energy", "less energy"), "brightness": ("brighter", "darker")}
    for name, (up, down) in words.items():
        value = nudge.get(name)
        if value is not None:
            parts.append(
                up if value == "+" else down if value == "-" else f"{name} {value * 100:.0f}%"
            )
    if "key" in nudge or "mode" in nudge:
        tonality = " ".join(v for v in (nudge.get("key"), nudge.get("mode")) if v)
        parts.append(f"key {tonality}" if "key" in nudge else tonality)
    if "section" in nudge:
        parts.append(nudge["section"])
    if "instruments_in" in nudge:
        parts.append("add " + ", ".join(nudge["instruments_in"]))
    if "instruments_out" in nudge:
        parts.append("remove " + ", ".join(nudge["instruments_out"]))
    return ", ".join(parts)


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def _merge(current: Iterable[str], add: Iterable[str], drop: Iterable[str]) -> tuple[str, ...]:
    dropped = set(drop)
    merged = [name for name in current if name not in dropped]
    merged += [name for name in add if name not in merged]
    return tuple(merged)


def apply_nudge(controls: Controls, nudge: Mapping) -> Controls:
    """``controls`` moved by one nudge (which may be raw: it is cleaned here)."""
    nudge = clean_nudge(nudge)
    changes: dict = {}
    bpm = nudge.get("bpm")
    if isinstance(bpm, str):
        base = controls.bpm if controls.bpm is not None else DEFAULT_BPM
        changes["bpm"] = _clamp(base + float(bpm), *BPM_RANGE)
    elif bpm is not None:
        changes["bpm"] = bpm
    for name in ("energy", "brightness"):
        value = nudge.get(name)
        if value in ("+", "-"):
            base = getattr(controls, name)
            base = DEFAULT_LEVEL if base is None else base
            step = LEVEL_STEP if value == "+" else -LEVEL_STEP
            changes[name] = round(_clamp(base + step, 0.0, 1.0), 3)
        elif value is not None:
            changes[name] = value
    for name in ("key", "mode", "section"):
        if name in nudge:
            changes[name] = nudge[name]
    added, removed = nudge.get("instruments_in", ()), nudge.get("instruments_out", ())
    if added or removed:
        changes["instruments_in"] = _merge(controls.instruments_in, added, removed)
        changes["instruments_out"] = _merge(controls.instruments_out, removed, added)
    return replace(controls, **changes)


# --- Blends ---------------------------------------------------------------------------------


def blend_to_steering(
    blend: Mapping[Key, float],
    proposals: Mapping[Key, IdeaLike],
    base_controls: Controls | None = None,
    *,
    anchor: str = "",
) -> Steering:
    """The Steering a blend resolves to.

    * Prompts (and the anchor, under ``ANCHOR``, whose text is ``anchor`` unless ``proposals``
      holds it) are weighted by their share of the prompt part of the blend: control nudges do not
      dilute them. Equal texts add up. With no prompt in the blend, the anchor plays alone.
    * The control nudges of ``proposals`` that are in the blend are applied to ``base_controls``,
      lightest first, so where two disagree (a key, an absolute tempo) the heavier one has the
      last word (on equal weight, the one earlier in the blend, as ``voting.leader`` decides
      ties); relative nudges add up. A caller passes only the nudges that are new to the blend:
      one that is already part of ``base_controls`` must not be applied twice.

    Keys of the blend that ``proposals`` does not hold are ignored.
    """
    controls = base_controls if base_controls is not None else Controls()
    prompts: dict[str, float] = {}
    nudges: list[tuple[float, int, Mapping]] = []
    for order, (key, weight) in enumerate(blend.items()):
        if weight <= 0:
            continue
        idea = proposals.get(key)
        if idea is None:
            if key == ANCHOR and anchor:
                prompts[anchor] = prompts.get(anchor, 0.0) + weight
            continue
        if idea.kind == "control":
            nudges.append((weight, order, idea.control))
        elif idea.text:
            prompts[idea.text] = prompts.get(idea.text, 0.0) + weight

    for _, _, nudge in sorted(nudges, key=lambda item: (item[0], -item[1])):
        controls = apply_nudge(controls, nudge)

    total = sum(prompts.values())
    if total <= 0:
        weighted = ((anchor, 1.0),) if anchor else ()
    else:
        ranked = sorted(prompts.items(), key=lambda item: -item[1])  # stable: blend order on ties
        weighted = tuple((text, round(weight / total, 4)) for text, weight in ranked)
    return Steering(weighted, controls)
