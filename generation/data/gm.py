"""General MIDI vocabulary: program names as captions say them, drum kits and drum notes.

Everything here is data. Program numbers are the 0-based General MIDI programs; drum kits are
the bank-128 presets of the FluidR3 GM soundfont, played on MIDI channel 10 (index 9).
"""

from __future__ import annotations

DRUM_CHANNEL = 9
"""MIDI channel 10, zero-based: the General MIDI percussion channel."""

INSTRUMENT_NAMES: tuple[str, ...] = (
    # 0-7 pianos
    "grand piano",
    "bright piano",
    "electric grand piano",
    "honky-tonk piano",
    "electric piano",
    "fm electric piano",
    "harpsichord",
    "clavinet",
    # 8-15 chromatic percussion
    "celesta",
    "glockenspiel",
    "music box",
    "vibraphone",
    "marimba",
    "xylophone",
    "tubular bells",
    "dulcimer",
    # 16-23 organs
    "drawbar organ",
    "percussive organ",
    "rock organ",
    "church organ",
    "reed organ",
    "accordion",
    "harmonica",
    "tango accordion",
    # 24-31 guitars
    "nylon guitar",
    "steel-string guitar",
    "jazz guitar",
    "clean electric guitar",
    "muted electric guitar",
    "overdriven guitar",
    "distorted guitar",
    "guitar harmonics",
    # 32-39 basses
    "upright bass",
    "electric bass",
    "picked bass",
    "fretless bass",
    "slap bass",
    "slap bass",
    "synth bass",
    "synth bass",
    # 40-47 strings
    "violin",
    "viola",
    "cello",
    "double bass",
    "tremolo strings",
    "pizzicato strings",
    "harp",
    "timpani",
    # 48-55 ensembles
    "string ensemble",
    "slow strings",
    "synth strings",
    "synth strings",
    "choir",
    "voice oohs",
    "synth choir",
    "orchestra hit",
    # 56-63 brass
    "trumpet",
    "trombone",
    "tuba",
    "muted trumpet",
    "french horn",
    "brass section",
    "synth brass",
    "synth brass",
    # 64-71 reeds
    "soprano sax",
    "alto sax",
    "tenor sax",
    "baritone sax",
    "oboe",
    "english horn",
    "bassoon",
    "clarinet",
    # 72-79 pipes
    "piccolo",
    "flute",
    "recorder",
    "pan flute",
    "blown bottle",
    "shakuhachi",
    "whistle",
    "ocarina",
    # 80-87 synth leads
    "square lead",
    "saw lead",
    "calliope lead",
    "chiff lead",
    "charang lead",
    "voice lead",
    "fifths lead",
    "bass and lead",
    # 88-95 synth pads
    "new age pad",
    "warm pad",
    "polysynth pad",
    "choir pad",
    "bowed pad",
    "metallic pad",
    "halo pad",
    "sweep pad",
    # 96-103 synth effects
    "rain pad",
    "soundtrack pad",
    "crystal bells",
    "atmosphere pad",
    "bright pad",
    "goblin pad",
    "echo pad",
    "sci-fi pad",
    # 104-111 ethnic
    "sitar",
    "banjo",
    "shamisen",
    "koto",
    "kalimba",
    "bagpipe",
    "fiddle",
    "shanai",
    # 112-119 percussive
    "tinkle bell",
    "agogo",
    "steel drums",
    "woodblock",
    "taiko drum",
    "melodic tom",
    "synth drum",
    "reverse cymbal",
    # 120-127 sound effects
    "guitar fret noise",
    "breath noise",
    "seashore",
    "bird tweet",
    "telephone ring",
    "helicopter",
    "applause",
    "gunshot",
)
"""Caption name of each General MIDI program, indexed by program number."""

assert len(INSTRUMENT_NAMES) == 128

DRUM_KITS: dict[int, str] = {
    0: "drums",
    8: "room drums",
    16: "power drums",
    24: "electronic drums",
    25: "808 drums",
    32: "jazz drums",
    40: "brushed drums",
    48: "orchestral percussion",
}
"""Caption name of each drum kit (bank-128 program) the generator uses."""

DRUM_NOTES: dict[str, int] = {
    "kick": 36,
    "rim": 37,
    "snare": 38,
    "clap": 39,
    "low_tom": 41,  # low floor tom; a timpani note in the orchestra kit
    "hat": 42,
    "mid_tom": 45,
    "pedal_hat": 44,
    "open_hat": 46,
    "high_tom": 48,
    "crash": 49,
    "ride": 51,
    "tambourine": 54,
    "shaker": 70,
}
"""General MIDI percussion key for each drum name used in drum patterns."""


def instrument_name(program: int, *, is_drums: bool = False) -> str:
    """The caption name of a program, or of a drum kit when ``is_drums``."""
    if is_drums:
        return DRUM_KITS.get(program, "drums")
    return INSTRUMENT_NAMES[program]
