"""Just enough music theory for the generator and the captions: keys, scales, chords, voicings.

Pitches are MIDI note numbers; pitch classes are 0..11 with C = 0. Chords are written as Roman
numerals relative to the current mode's scale (so in minor, ``VI`` is the major chord on the
lowered sixth degree and ``V`` the major dominant of harmonic minor).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

KEY_NAMES: tuple[str, ...] = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
"""The one spelling used for each pitch class in attributes and captions."""

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
}
"""Semitone offsets from the tonic of each scale degree, per mode."""

_ROMAN = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}
_NUMERAL = re.compile(r"^(b?)(vii|iii|ii|iv|vi|v|i)(dim|sus4|sus2|maj7|m7|7|9)?$", re.IGNORECASE)


def key_name(pitch_class: int) -> str:
    """Canonical name of a tonic pitch class, e.g. ``key_name(2) == "D"``."""
    return KEY_NAMES[pitch_class % 12]


def key_pitch_class(name: str) -> int:
    """Inverse of :func:`key_name`; also accepts sharps/flats spelled the other way."""
    enharmonic = {"Db": 1, "D#": 3, "Gb": 6, "G#": 8, "A#": 10, "Cb": 11, "B#": 0, "E#": 5, "Fb": 4}
    if name in enharmonic:
        return enharmonic[name]
    return KEY_NAMES.index(name)


@dataclass(frozen=True)
class Chord:
    """A chord as a root pitch class and the intervals above it (root first)."""

    root: int
    intervals: tuple[int, ...]

    @property
    def pitch_classes(self) -> tuple[int, ...]:
        return tuple((self.root + i) % 12 for i in self.intervals)


def parse_numeral(numeral: str, tonic: int, mode: str) -> Chord:
    """Turn a Roman numeral such as ``"vi"``, ``"V7"``, ``"bVII"`` or ``"iim7"`` into a chord.

    Upper case is a major triad, lower case minor; suffixes: ``dim``, ``sus2``, ``sus4``, ``7``
    (dominant on upper case, minor seventh on lower case), ``m7``, ``maj7`` and ``9`` (adds a
    ninth to the seventh chord). A leading ``b`` lowers the root by a semitone.
    """
    match = _NUMERAL.match(numeral)
    if not match:
        raise ValueError(f"not a Roman numeral chord: {numeral!r}")
    flat, roman, suffix = match.groups()
    degree = _ROMAN[roman.lower()]
    root = (tonic + SCALES[mode][degree] - (1 if flat else 0)) % 12
    major = roman.isupper()
    third = 4 if major else 3
    intervals: tuple[int, ...] = (0, third, 7)
    if suffix == "dim":
        intervals = (0, 3, 6)
    elif suffix == "sus2":
        intervals = (0, 2, 7)
    elif suffix == "sus4":
        intervals = (0, 5, 7)
    elif suffix in ("7", "9"):
        intervals = (0, third, 7, 10)
    elif suffix == "m7":
        intervals = (0, 3, 7, 10)
    elif suffix == "maj7":
        intervals = (0, third, 7, 11)
    if suffix == "9":
        intervals = (*intervals, 14)
    return Chord(root=root, intervals=intervals)


def scale_pitch(tonic: int, mode: str, degree: int, base_octave_pitch: int) -> int:
    """MIDI pitch of a (possibly negative or > 6) scale degree above the tonic nearest below
    ``base_octave_pitch``."""
    scale = SCALES[mode]
    tonic_pitch = base_octave_pitch - ((base_octave_pitch - tonic) % 12)
    octave, step = divmod(degree, len(scale))
    return tonic_pitch + 12 * octave + scale[step]


def pitch_in_range(pitch_class: int, low: int) -> int:
    """The lowest MIDI pitch of ``pitch_class`` at or above ``low``."""
    return low + ((pitch_class - low) % 12)


def voice_chord(chord: Chord, low: int, high: int, previous: Sequence[int] | None) -> list[int]:
    """A close-position voicing of ``chord`` inside [low, high], nearest to ``previous``.

    Candidates are every inversion of the chord stacked upward from every start pitch that keeps
    all notes in range; the one with the smallest total movement from the previous voicing (or
    closest to the middle of the range, for the first chord) wins. This gives smooth voice leading
    without a search over all permutations.
    """
    pcs = list(chord.pitch_classes)
    candidates: list[list[int]] = []
    for inversion in range(len(pcs)):
        order = pcs[inversion:] + pcs[:inversion]
        for start in range(low, high + 1):
            if start % 12 != order[0]:
                continue
            notes = [start]
            for pc in order[1:]:
                notes.append(notes[-1] + ((pc - notes[-1]) % 12 or 12))
            if notes[-1] <= high:
                candidates.append(notes)
    if not candidates:  # range too narrow for this chord: stack from the bottom anyway
        start = pitch_in_range(pcs[0], low)
        notes = [start]
        for pc in pcs[1:]:
            notes.append(notes[-1] + ((pc - notes[-1]) % 12 or 12))
        return notes
    if previous:
        centre = sum(previous) / len(previous)

        def cost(notes: list[int]) -> float:
            moves = sum(min(abs(n - p) for p in previous) for n in notes)
            return moves + 0.1 * abs(sum(notes) / len(notes) - centre)
    else:
        middle = (low + high) / 2

        def cost(notes: list[int]) -> float:
            return abs(sum(notes) / len(notes) - middle)

    return min(candidates, key=cost)
