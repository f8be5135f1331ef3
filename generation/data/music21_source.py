"""The music21 corpus as a source: which collections make which style, and score -> performance.

The corpus ships inside the ``music21`` wheel (Bach chorales, Palestrina masses, Renaissance and
Trecento polyphony, string quartets, thousands of folk songs and dance tunes in ABC). Nothing is
fetched: pieces are read from the package directory with ``forceSource`` so music21 writes no
cache either.

A piece is one file, or one tune (``X:`` number) of a multi-tune ABC file. Rendering a piece
chooses, from the piece's own seed, a tempo (the score's metronome mark, nudged, or one drawn from
the style's range), a transposition and an ensemble of General MIDI programs; the key is music21's
analysis of the score, moved by the transposition.
"""

from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from generation.data.performance import Note, Performance, Track
from generation.data.styles import style_slug

MUSIC_EXTENSIONS = (".mxl", ".musicxml", ".xml", ".krn", ".abc")
"""Score formats we read; Roman-numeral analyses (``.rntxt``) are harmony sketches, not pieces."""

MAX_FILE_BYTES = {".mxl": 100_000, ".musicxml": 1_500_000, ".xml": 1_500_000, ".krn": 400_000}
"""Larger scores are left out: whole multi-movement works take minutes to parse, and only the
first minutes of a piece are rendered anyway (``max_piece_seconds``)."""

MAX_PITCHED_CHANNELS = 15
_CHANNELS = [c for c in range(16) if c != 9]


@dataclass(frozen=True)
class Ensemble:
    """General MIDI programs for the voices of a score, from the highest voice to the lowest.

    A score with more or fewer voices spreads them over this list by position, so a four-voice
    ensemble also plays a two- or six-voice piece sensibly.
    """

    name: str
    programs: tuple[int, ...]

    def program_for(self, voice: int, voices: int) -> int:
        if voices <= 1:
            return self.programs[0]
        index = round(voice * (len(self.programs) - 1) / (voices - 1))
        return self.programs[index]


@dataclass(frozen=True)
class Music21Style:
    """A style made of music21 corpus collections (top-level corpus directories)."""

    name: str
    collections: tuple[str, ...]
    bpm_range: tuple[int, int]
    energy_range: tuple[float, float]
    ensembles: tuple[Ensemble, ...]
    typical_seconds: float
    min_seconds: float = 0.0
    transpose: tuple[int, int] = (-5, 6)
    reverb_send: int = 60
    room_size: float = 0.6
    weight: float = 1.0

    @property
    def slug(self) -> str:
        return style_slug(self.name)


SOLO_MELODY = (
    Ensemble("flute", (73,)),
    Ensemble("violin", (40,)),
    Ensemble("fiddle", (110,)),
    Ensemble("accordion", (21,)),
    Ensemble("harmonica", (22,)),
    Ensemble("clarinet", (71,)),
    Ensemble("piano", (0,)),
    Ensemble("nylon guitar", (24,)),
    Ensemble("recorder", (74,)),
    Ensemble("whistle", (78,)),
    Ensemble("oboe", (68,)),
    Ensemble("banjo", (105,)),
)

MUSIC21_STYLES: dict[str, Music21Style] = {
    s.name: s
    for s in (
        Music21Style(
            name="baroque chorale",
            collections=("bach",),
            bpm_range=(60, 96),
            energy_range=(0.15, 0.55),
            ensembles=(
                Ensemble("organ", (19, 19, 19, 19)),
                Ensemble("string quartet", (40, 40, 41, 42)),
                Ensemble("choir", (52, 52, 52, 52)),
                Ensemble("brass", (56, 60, 57, 58)),
                Ensemble("woodwinds", (73, 68, 71, 70)),
                Ensemble("string orchestra", (48, 48, 48, 48)),
                Ensemble("piano", (0, 0, 0, 0)),
            ),
            typical_seconds=50,
            min_seconds=20,
            reverb_send=75,
            room_size=0.75,
            weight=0.8,
        ),
        Music21Style(
            name="renaissance polyphony",
            collections=("palestrina", "josquin", "lusitano", "monteverdi"),
            bpm_range=(96, 144),
            energy_range=(0.15, 0.5),
            ensembles=(
                Ensemble("choir", (52, 52, 53, 52)),
                Ensemble("voices", (53, 53, 53, 53)),
                Ensemble("recorders", (74, 74, 74, 70)),
                Ensemble("viols", (40, 41, 42, 42)),
                Ensemble("organ", (20, 20, 20, 20)),
                Ensemble("sackbuts", (56, 57, 57, 58)),
            ),
            typical_seconds=150,
            reverb_send=85,
            room_size=0.85,
            weight=0.8,
        ),
        Music21Style(
            name="medieval polyphony",
            collections=("trecento", "ciconia", "luca"),
            bpm_range=(80, 130),
            energy_range=(0.15, 0.5),
            ensembles=(
                Ensemble("recorders", (74, 74, 70)),
                Ensemble("voices", (53, 53, 53)),
                Ensemble("strings and harp", (40, 46, 42)),
                Ensemble("reed organ", (20, 20, 20)),
            ),
            typical_seconds=120,
            reverb_send=80,
            room_size=0.8,
            weight=0.2,
        ),
        Music21Style(
            name="classical string quartet",
            collections=("beethoven", "haydn", "mozart"),
            bpm_range=(66, 144),
            energy_range=(0.2, 0.8),
            ensembles=(
                Ensemble("string quartet", (40, 40, 41, 42)),
                Ensemble("string orchestra", (48, 48, 48, 48)),
                Ensemble("strings", (40, 49, 41, 42)),
            ),
            typical_seconds=240,
            transpose=(-3, 3),
            reverb_send=55,
            room_size=0.6,
            weight=0.6,
        ),
        Music21Style(
            name="romantic",
            collections=(
                "chopin",
                "schumann_robert",
                "schumann_clara",
                "schubert",
                "beach",
                "verdi",
                "weber",
            ),
            bpm_range=(60, 132),
            energy_range=(0.15, 0.75),
            ensembles=(
                Ensemble("piano", (0, 0, 0, 0)),
                Ensemble("bright piano", (1, 1, 1, 1)),
                Ensemble("strings", (40, 48, 41, 42)),
            ),
            typical_seconds=180,
            transpose=(-3, 3),
            weight=0.2,
        ),
        Music21Style(
            name="folk song",
            collections=("essenFolksong", "miscFolk"),
            bpm_range=(80, 130),
            energy_range=(0.15, 0.5),
            ensembles=SOLO_MELODY,
            typical_seconds=40,
            min_seconds=30,
            reverb_send=50,
            room_size=0.5,
            weight=0.6,
        ),
        Music21Style(
            name="folk dance tune",
            collections=("ryansMammoth", "oneills1850", "airdsAirs", "nottingham-dataset"),
            bpm_range=(100, 160),
            energy_range=(0.3, 0.75),
            ensembles=SOLO_MELODY,
            typical_seconds=45,
            min_seconds=30,
            reverb_send=45,
            room_size=0.5,
            weight=0.8,
        ),
    )
}
"""Every music21 style by name."""


@dataclass(frozen=True)
class CorpusPiece:
    """One piece of the music21 corpus: a file, and for multi-tune ABC files the tune number."""

    path: str  # relative to the corpus directory, with extension
    number: int | None = None

    @property
    def piece_id(self) -> str:
        """``music21:bach/bwv66.6`` or ``music21:essenFolksong/ballad10/3``."""
        stem = self.path.rsplit(".", 1)[0]
        return f"music21:{stem}" + (f"/{self.number}" if self.number is not None else "")


def corpus_dir() -> Path:
    """Where music21's bundled corpus lives."""
    from music21 import common

    return Path(common.getCorpusFilePath())


_TUNE_NUMBER = re.compile(rb"^X:\s*(\d+)", re.MULTILINE)


@cache
def corpus_pieces(collection: str) -> tuple[CorpusPiece, ...]:
    """Every piece of a collection, sorted; multi-tune ABC files give one piece per tune.

    When the same work ships in several formats (``x.mxl`` and ``x.krn``) only the first in
    :data:`MUSIC_EXTENSIONS` order is kept, so one work is one piece (and one split). Files over
    :data:`MAX_FILE_BYTES` are skipped.
    """
    root = corpus_dir()
    folder = root / collection
    if not folder.is_dir():
        return ()
    by_stem: dict[str, Path] = {}
    for path in sorted(folder.rglob("*")):
        suffix = path.suffix.lower()
        if suffix not in MUSIC_EXTENSIONS or not path.is_file():
            continue
        if path.stat().st_size > MAX_FILE_BYTES.get(suffix, 1 << 62):
            continue
        stem = str(path.relative_to(root).with_suffix(""))
        kept = by_stem.get(stem)
        rank = MUSIC_EXTENSIONS.index(suffix)
        if kept is None or rank < MUSIC_EXTENSIONS.index(kept.suffix.lower()):
            by_stem[stem] = path
    pieces: list[CorpusPiece] = []
    for stem in sorted(by_stem):
        path = by_stem[stem]
        relative = path.relative_to(root).as_posix()
        if path.suffix.lower() == ".abc":
            numbers = [int(n) for n in _TUNE_NUMBER.findall(path.read_bytes())]
            if len(numbers) > 1:
                pieces.extend(CorpusPiece(relative, n) for n in dict.fromkeys(numbers))
                continue
        pieces.append(CorpusPiece(relative))
    return tuple(pieces)


def style_pieces(style: Music21Style) -> tuple[CorpusPiece, ...]:
    """Every piece of every collection of a style, in a stable order."""
    return tuple(p for collection in style.collections for p in corpus_pieces(collection))


def load_score(piece: CorpusPiece):  # -> music21.stream.Score
    """Parse a piece from the bundled corpus (no cache written, nothing fetched)."""
    from music21 import converter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = converter.parse(corpus_dir() / piece.path, number=piece.number, forceSource=True)
    scores = getattr(parsed, "scores", None)  # an Opus: several works in one file
    return scores[0] if scores else parsed


def score_to_performance(score, style: Music21Style, piece: CorpusPiece, seed: int) -> Performance:
    """Arrange a parsed score for rendering: tempo, transposition and ensemble from ``seed``.

    Tied notes are merged, grace notes and unpitched parts dropped, parts sorted from the highest
    voice to the lowest and mapped onto the ensemble. A piece shorter than the style's
    ``min_seconds`` is played again (folk tunes are short and are repeated in practice too).
    """
    from music21 import tempo as m21tempo

    rng = random.Random(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = list(getattr(score, "parts", [])) or [score]
        voices = [events for events in (_part_notes(part) for part in parts) if events]
        key = score.analyze("key")
        marks = score.flatten().getElementsByClass(m21tempo.MetronomeMark)
        marked_bpm = next((m.getQuarterBPM() for m in marks if m.getQuarterBPM() is not None), None)
    if not voices:
        raise ValueError(f"{piece.piece_id} has no pitched notes")

    voices.sort(key=lambda events: -sum(e[2] for e in events) / len(events))
    if marked_bpm and 40 <= marked_bpm <= 220:
        bpm = float(round(min(190.0, max(50.0, marked_bpm * rng.uniform(0.93, 1.07)))))
    else:
        bpm = float(rng.randint(*style.bpm_range))
    low = min(e[2] for v in voices for e in v)
    high = max(e[2] for v in voices for e in v)
    shifts = [
        t
        for t in range(style.transpose[0], style.transpose[1] + 1)
        if low + t >= 24 and high + t <= 108
    ]
    shift = rng.choice(shifts) if shifts else 0
    ensemble = rng.choice(style.ensembles)

    length = max(start + dur for v in voices for start, dur, _, _ in v)
    repeats = 1
    while repeats * length * 60.0 / bpm < style.min_seconds and repeats < 8:
        repeats += 1

    tracks: list[Track] = []
    for index, events in enumerate(voices[:MAX_PITCHED_CHANNELS]):
        accent = 8 if index in (0, len(voices) - 1) else 0
        notes = [
            Note(
                start + r * length,
                duration,
                pitch + shift,
                velocity or 72 + accent + rng.randint(-6, 6),
            )
            for r in range(repeats)
            for start, duration, pitch, velocity in events
        ]
        tracks.append(
            Track(
                role=f"voice {index + 1}",
                program=ensemble.program_for(index, min(len(voices), MAX_PITCHED_CHANNELS)),
                channel=_CHANNELS[index],
                notes=notes,
                volume=100,
                pan=64 + rng.randint(-25, 25),
                reverb=min(127, style.reverb_send + rng.randint(-10, 10)),
            )
        )
    for extra in voices[MAX_PITCHED_CHANNELS:]:  # more parts than channels: double the last
        tracks[-1].notes.extend(Note(s, d, p + shift, v or 72) for s, d, p, v in extra)

    return Performance(
        piece_id=piece.piece_id,
        source=piece.piece_id,
        style=style.name,
        bpm=bpm,
        tonic=(key.tonic.pitchClass + shift) % 12,
        mode=key.mode if key.mode in ("major", "minor") else "major",
        tracks=tracks,
        room_size=min(1.0, max(0.0, style.room_size + rng.uniform(-0.1, 0.1))),
    )


def _part_notes(part) -> list[tuple[float, float, int, int | None]]:
    """(start, duration, pitch, velocity or None) of every sounding note of a part, in quarter
    lengths, with tied notes merged into one (linear time, unlike ``Stream.stripTies``)."""
    events: list[list] = []
    open_ties: dict[int, list] = {}
    for element in part.flatten().notes:
        if element.duration.isGrace or element.quarterLength <= 0:
            continue
        start, length = float(element.offset), float(element.quarterLength)
        members = element.notes if element.isChord else (element,)
        for member in members:
            pitch = getattr(member, "pitch", None)
            if pitch is None:  # unpitched percussion
                continue
            midi = int(pitch.midi)
            tie = member.tie or element.tie
            tie_type = tie.type if tie is not None else None
            held = open_ties.get(midi)
            if held is not None and tie_type in ("stop", "continue"):
                held[1] = start + length - held[0]
                if tie_type == "stop":
                    del open_ties[midi]
                continue
            event = [start, length, midi, element.volume.velocity]
            events.append(event)
            if tie_type == "start":
                open_ties[midi] = event
    return [tuple(e) for e in events]


def performance_for(piece: CorpusPiece, style: Music21Style, seed: int) -> Performance:
    """Parse and arrange one corpus piece."""
    return score_to_performance(load_score(piece), style, piece, seed)
