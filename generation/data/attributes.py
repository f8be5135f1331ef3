"""What a clip is: its structured attributes, and the caption written from them.

Every attribute is known from how the clip was made (we chose the tempo, transposition and
instruments and wrote or read every note), so captions are exact by construction and
controllability can be measured against them. The caption is a sentence assembled from the
attributes by one of a few templates, chosen deterministically per clip so the text varies.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

from generation.data.performance import Performance
from generation.data.theory import key_name

POSITION_SECTIONS = ("opening", "middle", "ending")
"""Section names of pieces without a written form (music21 scores): where the clip sits."""


@dataclass(frozen=True)
class ClipAttributes:
    """The structured description of one clip; the manifest stores these fields as they are."""

    style: str
    instruments: tuple[str, ...]
    bpm: float
    key: str
    mode: str
    energy: float
    section: str
    source: str
    piece_id: str


def window_attributes(
    performance: Performance,
    start_s: float,
    end_s: float,
    *,
    energy_range: tuple[float, float] = (0.0, 1.0),
) -> ClipAttributes:
    """Attributes of the stretch [start_s, end_s) of a rendered performance.

    Instruments are those with a note sounding in the window. With a written form (procedural
    pieces) the section is the one covering most of the window and the energy is that section's;
    otherwise the section is the window's position in the piece and the energy comes from note
    density and loudness, scaled into the style's ``energy_range``.
    """
    spb = performance.seconds_per_beat
    start, end = start_s / spb, end_s / spb
    instruments: list[str] = []
    onsets, velocities = 0, 0
    for track in performance.tracks:
        sounding = [n for n in track.notes if n.start < end and n.start + n.duration > start]
        if sounding and track.instrument not in instruments:
            instruments.append(track.instrument)
        starting = [n for n in sounding if n.start >= start]
        onsets += len(starting)
        velocities += sum(n.velocity for n in starting)

    if performance.sections:
        section = max(
            performance.sections,
            key=lambda s: min(s.end, end) - max(s.start, start),
        )
        section_name, energy = section.name, section.energy
    else:
        if start <= 0:
            section_name = "opening"
        elif end_s + (end_s - start_s) > performance.duration_s:  # no full window after this
            section_name = "ending"
        else:
            section_name = "middle"
        density = onsets / max(1e-6, end_s - start_s)  # note onsets per second, all parts
        busy = min(1.0, math.log2(1 + density) / 4)  # 1 onset/s -> 0.25, 15 onsets/s -> 1
        loudness = min(1.0, max(0.0, (velocities / onsets - 40) / 70)) if onsets else 0.0
        level = 0.7 * busy + 0.3 * loudness
        low, high = energy_range
        energy = round(low + (high - low) * level, 3)

    return ClipAttributes(
        style=performance.style,
        instruments=tuple(instruments),
        bpm=float(performance.bpm),
        key=key_name(performance.tonic),
        mode=performance.mode,
        energy=energy,
        section=section_name,
        source=performance.source,
        piece_id=performance.piece_id,
    )


def mood(mode: str, energy: float) -> str:
    """A mood word that follows from mode and energy (so it is as exact as they are)."""
    words = {
        "major": ("peaceful", "bright", "uplifting"),
        "minor": ("melancholic", "moody", "dark and driving"),
    }[mode]
    return words[0] if energy < 0.35 else words[1] if energy < 0.7 else words[2]


def energy_word(energy: float) -> str:
    """A word for an energy value: low below 0.35, high from 0.7."""
    if energy < 0.35:
        return "calm"
    if energy < 0.7:
        return "steady"
    return "energetic"


_SECTION_PHRASES = {
    "intro": "intro",
    "build": "build-up",
    "drop": "drop",
    "breakdown": "breakdown",
    "outro": "outro",
    "opening": "opening",
    "middle": "passage",
    "ending": "ending",
}

_TEMPLATES = (
    "{Energy} {style} at {bpm} BPM in {key} {mode}, with {instruments}; {mood}.",
    "{A} {energy}, {mood} {style} {section} in {key} {mode}, {bpm} BPM, featuring {instruments}.",
    "{Style} {section}: {instruments}; {key} {mode}, {bpm} bpm, {energy} and {mood}.",
    "{Instruments} playing {mood} {style} in {key} {mode} at {bpm} BPM, {energy}.",
)


def join_names(names: tuple[str, ...] | list[str]) -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    names = list(names)
    if not names:
        return "silence"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def caption(attributes: ClipAttributes, clip_id: str) -> str:
    """The clip's caption: a template (picked by a hash of ``clip_id``) filled from attributes."""
    digest = hashlib.sha256(clip_id.encode()).digest()
    template = random.Random(digest).choice(_TEMPLATES)
    instruments = join_names(attributes.instruments)
    fields = {
        "energy": energy_word(attributes.energy),
        "mood": mood(attributes.mode, attributes.energy),
        "style": attributes.style,
        "section": _SECTION_PHRASES.get(attributes.section, attributes.section),
        "bpm": f"{attributes.bpm:.0f}",
        "key": attributes.key,
        "mode": attributes.mode,
        "instruments": instruments,
    }
    fields |= {
        "A": "An" if fields["energy"][0] in "aeiou" else "A",
        "Energy": fields["energy"].capitalize(),
        "Style": attributes.style[:1].upper() + attributes.style[1:],
        "Instruments": instruments[:1].upper() + instruments[1:],
    }
    return template.format(**fields)
