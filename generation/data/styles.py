"""Procedural styles, as data.

Each :class:`Style` says everything the generator needs to write a piece in that style: tempo
range, modes, General MIDI program choices per role, drum patterns per section, bass and chord
rhythms, chord progressions, melody density and register, swing, and the energy range it spans.
The generator (``procedural.py``) has no style-specific code; adding a style is adding an entry
to :data:`STYLES`.

Pattern strings are one bar on a 16-step grid (sixteenth notes in 4/4):

* drums: ``x`` accent, ``o`` normal hit, ``g`` ghost note, ``.`` rest;
* bass: ``R`` root, ``F`` fifth, ``O`` octave, ``T`` third, ``-`` hold, ``.`` rest;
* chords: ``X`` whole chord, ``D``/``U`` strummed down/up, ``1``-``4`` one chord tone counted
  from the bottom of the voicing (arpeggios), ``-`` hold, ``.`` rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

SECTION_NAMES: tuple[str, ...] = ("intro", "build", "drop", "breakdown", "outro")
"""Section vocabulary of procedural pieces. ``drop`` is the full-energy section of every style
(the chorus of a rock song, the solo chorus of a jazz tune, the tutti of a film cue)."""

ROLES: tuple[str, ...] = ("drums", "bass", "chords", "melody")


@dataclass(frozen=True)
class SectionPlan:
    """What plays in a section: its intensity within the style (0..1) and the layers."""

    level: float
    drums: str | None
    bass: bool
    chords: bool
    melody: bool


SECTIONS: Mapping[str, SectionPlan] = {
    "intro": SectionPlan(0.2, drums="intro", bass=False, chords=True, melody=False),
    "build": SectionPlan(0.6, drums="build", bass=True, chords=True, melody=True),
    "drop": SectionPlan(1.0, drums="main", bass=True, chords=True, melody=True),
    "breakdown": SectionPlan(0.35, drums=None, bass=False, chords=True, melody=True),
    "outro": SectionPlan(0.15, drums="intro", bass=True, chords=True, melody=False),
}
"""The shared section plans; ``drums`` names a key of :attr:`Style.drum_patterns`."""

FORMS: Mapping[str, tuple[tuple[str, int], ...]] = {
    "long": (
        ("intro", 8),
        ("build", 8),
        ("drop", 16),
        ("breakdown", 8),
        ("build", 4),
        ("drop", 16),
        ("outro", 8),
    ),
    "medium": (
        ("intro", 4),
        ("build", 4),
        ("drop", 8),
        ("breakdown", 8),
        ("drop", 8),
        ("outro", 4),
    ),
    "short": (("intro", 4), ("drop", 8), ("breakdown", 4), ("drop", 8), ("outro", 4)),
}
"""Forms as (section, bars) sequences; every style may use every form."""


@dataclass(frozen=True)
class Style:
    """A procedural style. Program tuples are the choices the generator draws from per piece."""

    name: str
    bpm_range: tuple[int, int]
    modes: Mapping[str, float]
    energy_range: tuple[float, float]
    drum_kits: tuple[int, ...]
    bass_programs: tuple[int, ...]
    chord_programs: tuple[int, ...]
    melody_programs: tuple[int, ...]
    drum_patterns: Mapping[str, Mapping[str, str]]
    bass_patterns: tuple[str, ...]
    chord_patterns: tuple[str, ...]
    progressions: Mapping[str, tuple[tuple[str, ...], ...]]
    bass_range: tuple[int, int] = (31, 43)
    chord_range: tuple[int, int] = (55, 74)
    melody_range: tuple[int, int] = (64, 86)
    melody_grid: int = 8
    melody_density: float = 0.4
    bars_per_chord: int = 1
    walking_bass: bool = False
    swing: float = 0.0
    swing_grid: int = 8
    strum_ms: float = 0.0
    humanize_ms: float = 0.0
    shared_roles: tuple[str, ...] = ()
    reverb_send: int = 50
    room_size: float = 0.5
    forms: tuple[str, ...] = ("long", "medium", "short")
    weight: float = 1.0
    mix: Mapping[str, int] = field(
        default_factory=lambda: {"drums": 100, "bass": 96, "chords": 78, "melody": 94}
    )

    @property
    def has_drums(self) -> bool:
        return bool(self.drum_kits)

    @property
    def slug(self) -> str:
        """The style's name as it appears in sources and paths, e.g. ``lofi-hip-hop``."""
        return style_slug(self.name)


def style_slug(name: str) -> str:
    """``"lofi hip hop"`` -> ``"lofi-hip-hop"``: style names in paths and on the command line."""
    return name.strip().lower().replace(" ", "-").replace("_", "-")


FOUR_ON_FLOOR = "x...x...x...x..."
BACKBEAT = "....x.......x..."
OFFBEAT_8THS = "..o...o...o...o."
EIGHTHS = "o.o.o.o.o.o.o.o."
SIXTEENTHS = "gogogogogogogogo"

STYLES: dict[str, Style] = {
    s.name: s
    for s in (
        Style(
            name="techno",
            bpm_range=(124, 136),
            modes={"minor": 0.8, "major": 0.2},
            energy_range=(0.45, 0.95),
            drum_kits=(24, 25),
            bass_programs=(38, 39, 87),
            chord_programs=(89, 90, 50, 95),
            melody_programs=(81, 80, 98, 84),
            drum_patterns={
                "intro": {"kick": FOUR_ON_FLOOR, "hat": OFFBEAT_8THS},
                "build": {"kick": FOUR_ON_FLOOR, "hat": SIXTEENTHS, "clap": BACKBEAT},
                "main": {
                    "kick": FOUR_ON_FLOOR,
                    "clap": BACKBEAT,
                    "open_hat": OFFBEAT_8THS,
                    "hat": ".g.g.g.g.g.g.g.g",
                },
                "fill": {"kick": FOUR_ON_FLOOR, "snare": "....o.o.oooooooo"},
            },
            bass_patterns=("..R-..R-..R-..R-", "R.R...R.R.R...O.", "..R...R...O...R."),
            chord_patterns=("X---------------", ".X-....X-.....X-", "X-..X-..X-..X-.."),
            progressions={
                "minor": (("i",), ("i", "i", "VI", "VII"), ("i", "iv"), ("i", "VII", "VI", "VII")),
                "major": (("I",), ("I", "IV"), ("I", "vi", "IV", "V")),
            },
            melody_grid=16,
            melody_density=0.3,
            reverb_send=45,
        ),
        Style(
            name="house",
            bpm_range=(118, 128),
            modes={"minor": 0.5, "major": 0.5},
            energy_range=(0.45, 0.9),
            drum_kits=(24, 25, 0),
            bass_programs=(38, 33, 39),
            chord_programs=(0, 4, 5, 16),
            melody_programs=(81, 85, 11, 73),
            drum_patterns={
                "intro": {"kick": FOUR_ON_FLOOR, "shaker": SIXTEENTHS},
                "build": {"kick": FOUR_ON_FLOOR, "clap": BACKBEAT, "shaker": SIXTEENTHS},
                "main": {
                    "kick": FOUR_ON_FLOOR,
                    "clap": BACKBEAT,
                    "open_hat": OFFBEAT_8THS,
                    "shaker": SIXTEENTHS,
                },
                "fill": {"kick": FOUR_ON_FLOOR, "clap": "....x.......x.xx"},
            },
            bass_patterns=("..R...R...R..RF.", "R..RO..R..R.O.R.", "..R-..R-..F-..O-"),
            chord_patterns=("..X..X....X..X..", "X--.X--.X--.X--.", ".X..X..X.X..X..."),
            progressions={
                "minor": (("i7", "iv7", "VI", "VII"), ("i7", "iv7"), ("i", "v", "VI", "VII")),
                "major": (("Imaj7", "vi7", "ii7", "V7"), ("I", "IV"), ("Imaj7", "IVmaj7")),
            },
            melody_grid=16,
            melody_density=0.3,
        ),
        Style(
            name="lofi hip hop",
            bpm_range=(70, 92),
            modes={"major": 0.5, "minor": 0.5},
            energy_range=(0.2, 0.55),
            drum_kits=(0, 8, 32),
            bass_programs=(33, 32, 35),
            chord_programs=(4, 5, 0),
            melody_programs=(11, 0, 73, 26),
            drum_patterns={
                "intro": {"hat": "o.g.o.g.o.g.o.g.", "rim": BACKBEAT},
                "build": {"kick": "x.........x.....", "rim": BACKBEAT, "hat": "o.g.o.g.o.g.o.g."},
                "main": {"kick": "x......o..x.....", "snare": BACKBEAT, "hat": "o.g.o.g.o.g.o.g."},
                "fill": {"kick": "x......o..x.....", "snare": "....x.......x.gg"},
            },
            bass_patterns=("R-....R-..F-....", "R--.....R-.O-...", "R-----..F-----.."),
            chord_patterns=("X-------.X------", "X---------------", "X-----X---------"),
            progressions={
                "major": (
                    ("Imaj7", "vi7", "ii7", "V7"),
                    ("IVmaj7", "iii7", "ii7", "Imaj7"),
                    ("Imaj7", "Imaj7", "IVmaj7", "IVmaj7"),
                ),
                "minor": (
                    ("i7", "iv7", "VIImaj7", "IIImaj7"),
                    ("i9", "iv9"),
                    ("i7", "iv7", "v7", "i7"),
                ),
            },
            melody_range=(62, 84),
            melody_density=0.3,
            swing=0.5,
            swing_grid=16,
            humanize_ms=8.0,
            reverb_send=60,
        ),
        Style(
            name="drum and bass",
            bpm_range=(160, 178),
            modes={"minor": 0.8, "major": 0.2},
            energy_range=(0.55, 1.0),
            drum_kits=(0, 16, 24),
            bass_programs=(38, 39, 35, 87),
            chord_programs=(89, 50, 4, 91),
            melody_programs=(81, 80, 98, 85),
            drum_patterns={
                "intro": {"hat": EIGHTHS, "ride": "x...x...x...x..."},
                "build": {"kick": "x.......x.......", "snare": BACKBEAT, "hat": SIXTEENTHS},
                "main": {"kick": "x.........x.....", "snare": "....x..g....x.g.", "hat": EIGHTHS},
                "fill": {"kick": "x.........x.....", "snare": "....x..g.ooox.oo"},
            },
            bass_patterns=("R-------..R-----", "R-----.R--R-----", "R-------F-------"),
            chord_patterns=("X---------------", "X-------X-------"),
            progressions={
                "minor": (
                    ("i", "VI", "III", "VII"),
                    ("i", "i", "VI", "VII"),
                    ("i", "iv", "VI", "v"),
                ),
                "major": (("I", "vi", "IV", "V"), ("I", "IV", "vi", "V")),
            },
            bass_range=(28, 40),
            melody_grid=16,
            melody_density=0.25,
            reverb_send=55,
        ),
        Style(
            name="rock",
            bpm_range=(100, 150),
            modes={"major": 0.6, "minor": 0.4},
            energy_range=(0.45, 0.95),
            drum_kits=(0, 8, 16),
            bass_programs=(33, 34),
            chord_programs=(29, 30, 27),
            melody_programs=(29, 30, 18, 81),
            drum_patterns={
                "intro": {"kick": "x.......x.......", "hat": EIGHTHS},
                "build": {"kick": "x.......x.......", "snare": BACKBEAT, "hat": EIGHTHS},
                "main": {"kick": "x.....x.x.......", "snare": BACKBEAT, "hat": EIGHTHS},
                "fill": {
                    "kick": "x.......x.......",
                    "snare": "....x...........",
                    "high_tom": "........oo......",
                    "mid_tom": "..........oo....",
                    "low_tom": "............oooo",
                },
            },
            bass_patterns=("R.R.R.R.R.R.R.R.", "R.R.R.R.R.R.F.O.", "R--.R--.R-R-R--."),
            chord_patterns=("D-D-D-D-D-D-D-D-", "X--.X--.X.X.X--.", "D---D---D-U-D---"),
            progressions={
                "major": (("I", "V", "vi", "IV"), ("I", "IV", "V", "IV"), ("I", "bVII", "IV", "I")),
                "minor": (
                    ("i", "VI", "III", "VII"),
                    ("i", "VII", "VI", "VII"),
                    ("i", "iv", "v", "i"),
                ),
            },
            chord_range=(52, 71),
            strum_ms=6.0,
            humanize_ms=5.0,
            reverb_send=35,
            room_size=0.4,
        ),
        Style(
            name="jazz trio",
            bpm_range=(90, 180),
            modes={"major": 0.6, "minor": 0.4},
            energy_range=(0.3, 0.75),
            drum_kits=(32, 40),
            bass_programs=(32,),
            chord_programs=(0, 1, 4),
            melody_programs=(0,),
            drum_patterns={
                "intro": {"ride": "x...o.o.x...o.o.", "pedal_hat": BACKBEAT},
                "build": {
                    "ride": "x...o.o.x...o.o.",
                    "pedal_hat": BACKBEAT,
                    "kick": "g...g...g...g...",
                },
                "main": {
                    "ride": "x...o.o.x...o.o.",
                    "pedal_hat": BACKBEAT,
                    "kick": "g...g...g...g...",
                    "snare": "......g.......g.",
                },
                "fill": {"ride": "x...o.o.........", "snare": "........o.o.x.x."},
            },
            bass_patterns=("R---F---R---F---",),
            chord_patterns=("X-....X-........", "....X-......X-..", "...X--..X-......"),
            progressions={
                "major": (
                    ("ii7", "V7", "Imaj7", "Imaj7"),
                    ("Imaj7", "vi7", "ii7", "V7"),
                    ("Imaj7", "IV7", "iii7", "vi7", "ii7", "V7", "Imaj7", "Imaj7"),
                ),
                "minor": (
                    ("i7", "iv7", "VII7", "IIImaj7"),
                    ("i7", "i7", "iv7", "V7"),
                    ("i7", "VImaj7", "ii7", "V7"),
                ),
            },
            bass_range=(28, 43),
            melody_range=(65, 88),
            melody_density=0.45,
            walking_bass=True,
            swing=0.6,
            humanize_ms=8.0,
            shared_roles=("melody",),
            reverb_send=40,
            room_size=0.35,
        ),
        Style(
            name="ambient",
            bpm_range=(60, 84),
            modes={"major": 0.5, "minor": 0.5},
            energy_range=(0.05, 0.35),
            drum_kits=(),
            bass_programs=(35, 89, 32),
            chord_programs=(88, 89, 91, 94, 95, 92),
            melody_programs=(8, 11, 10, 98, 75, 0),
            drum_patterns={},
            bass_patterns=("R---------------", "R-------F-------"),
            chord_patterns=("X---------------",),
            progressions={
                "major": (("I", "IV"), ("Imaj7", "IVmaj7"), ("I", "vi", "IV", "I")),
                "minor": (("i", "VI"), ("i", "iv"), ("i", "VI", "III", "VII")),
            },
            melody_range=(67, 91),
            melody_density=0.2,
            bars_per_chord=2,
            reverb_send=110,
            room_size=0.9,
            forms=("medium", "short"),
        ),
        Style(
            name="orchestral cinematic",
            bpm_range=(60, 110),
            modes={"minor": 0.7, "major": 0.3},
            energy_range=(0.25, 0.95),
            drum_kits=(48,),
            bass_programs=(43, 42, 58),
            chord_programs=(48, 49, 44, 61, 52),
            melody_programs=(60, 40, 73, 56, 68, 42),
            drum_patterns={
                "intro": {"low_tom": "x..............."},
                "build": {"low_tom": "o...o...o.o.oooo", "kick": "x.......x......."},
                "main": {
                    "kick": "x.......x.......",
                    "low_tom": "x.....o.x.....o.",
                    "snare": "........g.g.o.o.",
                },
                "fill": {"snare": "oooooooooooooooo", "low_tom": "x.......x.x.xxxx"},
            },
            bass_patterns=("R---------------", "R-R-R-R-R-R-R-R-", "R-------R-------"),
            chord_patterns=("X---------------", "X-------X-------", "1.2.3.2.1.2.3.2."),
            progressions={
                "minor": (
                    ("i", "VI", "III", "VII"),
                    ("i", "iv", "VI", "V"),
                    ("i", "VI", "iv", "V"),
                ),
                "major": (("I", "V", "vi", "IV"), ("I", "iii", "IV", "V"), ("I", "IV", "vi", "V")),
            },
            chord_range=(52, 76),
            melody_range=(60, 84),
            melody_density=0.25,
            bars_per_chord=2,
            humanize_ms=6.0,
            reverb_send=90,
            room_size=0.8,
            forms=("medium", "short", "long"),
        ),
        Style(
            name="solo piano",
            bpm_range=(60, 120),
            modes={"major": 0.6, "minor": 0.4},
            energy_range=(0.1, 0.6),
            drum_kits=(),
            bass_programs=(0,),
            chord_programs=(0, 1),
            melody_programs=(0,),
            drum_patterns={},
            bass_patterns=("R-------F-------", "R---F---O---F---", "R---------------"),
            chord_patterns=("1.2.3.2.1.2.3.2.", "..X-..X-..X-..X-", "X-------X-------"),
            progressions={
                "major": (("I", "V", "vi", "IV"), ("I", "vi", "IV", "V"), ("I", "IV", "I", "V")),
                "minor": (
                    ("i", "iv", "V", "i"),
                    ("i", "VI", "III", "VII"),
                    ("i", "iv", "VII", "III"),
                ),
            },
            bass_range=(33, 48),
            chord_range=(52, 67),
            melody_range=(64, 88),
            humanize_ms=10.0,
            shared_roles=("bass", "melody"),
            reverb_send=60,
            room_size=0.6,
        ),
        Style(
            name="acoustic guitar",
            bpm_range=(70, 130),
            modes={"major": 0.7, "minor": 0.3},
            energy_range=(0.15, 0.6),
            drum_kits=(),
            bass_programs=(25,),
            chord_programs=(24, 25),
            melody_programs=(25,),
            drum_patterns={},
            bass_patterns=("R-------F-------", "R---F---R---F---"),
            chord_patterns=("D---D-.UD-.UD---", "1.3.2.3.1.3.2.3.", ".D-U.D-U.D-U.D-U"),
            progressions={
                "major": (("I", "V", "vi", "IV"), ("I", "IV", "V", "I"), ("I", "vi", "ii", "V")),
                "minor": (
                    ("i", "VII", "VI", "VII"),
                    ("i", "iv", "v", "i"),
                    ("i", "VI", "VII", "i"),
                ),
            },
            bass_range=(40, 52),
            chord_range=(52, 69),
            melody_range=(64, 84),
            melody_density=0.3,
            strum_ms=14.0,
            humanize_ms=8.0,
            shared_roles=("bass", "melody"),
            reverb_send=45,
            room_size=0.5,
        ),
    )
}
"""Every procedural style by name."""
