"""The procedural generator writes pieces with form, in the style's tempo, key and instruments."""

from __future__ import annotations

import pytest

from generation.data.gm import DRUM_CHANNEL, DRUM_NOTES
from generation.data.performance import to_midi
from generation.data.procedural import STEPS_PER_BAR, generate_piece, pattern_events
from generation.data.styles import FORMS, SECTION_NAMES, SECTIONS, STYLES
from generation.data.theory import parse_numeral, voice_chord

ALL_STYLES = sorted(STYLES)


def test_at_least_ten_styles_including_the_ones_the_issue_names():
    wanted = {
        "techno",
        "house",
        "lofi hip hop",
        "drum and bass",
        "rock",
        "jazz trio",
        "ambient",
        "orchestral cinematic",
        "solo piano",
        "acoustic guitar",
    }
    assert wanted <= set(STYLES)


@pytest.mark.parametrize("name", ALL_STYLES)
def test_every_pattern_of_a_style_is_one_bar_of_known_symbols(name):
    style = STYLES[name]
    for pattern in style.drum_patterns.values():
        for drum, hits in pattern.items():
            assert drum in DRUM_NOTES
            assert len(hits) == STEPS_PER_BAR and set(hits) <= set("xog.")
    for bass in style.bass_patterns:
        assert len(bass) == STEPS_PER_BAR and set(bass) <= set("RFOT-.")
    for chords in style.chord_patterns:
        assert len(chords) == STEPS_PER_BAR and set(chords) <= set("XDU1234-.")
    for progressions in style.progressions.values():
        for progression in progressions:
            for numeral in progression:
                parse_numeral(numeral, 0, "major")
    if style.has_drums:
        assert {"intro", "build", "main"} <= set(style.drum_patterns)
    assert 60 <= style.bpm_range[0] <= style.bpm_range[1] <= 180


@pytest.mark.parametrize("name", ALL_STYLES)
def test_a_long_piece_has_every_section_in_order_and_the_styles_instruments(name):
    style = STYLES[name]
    piece = generate_piece(style, 3, piece_id=f"test:{name}", form="long")

    assert [s.name for s in piece.sections] == [s for s, _ in FORMS["long"]]
    assert set(SECTION_NAMES) == {s.name for s in piece.sections}
    for before, after in zip(piece.sections, piece.sections[1:], strict=False):
        assert before.end == after.start
    roles = {t.role: t for t in piece.tracks}
    assert {"bass", "chords", "melody"} <= set(roles)
    assert roles["bass"].program in style.bass_programs + style.chord_programs
    assert roles["chords"].program in style.chord_programs
    if style.has_drums:
        assert roles["drums"].channel == DRUM_CHANNEL
        assert roles["drums"].program in style.drum_kits
    else:
        assert "drums" not in roles
        assert all(t.channel != DRUM_CHANNEL for t in piece.tracks)
    assert style.bpm_range[0] <= piece.bpm <= style.bpm_range[1]
    assert piece.mode in style.modes


def test_the_drop_plays_every_layer_and_the_breakdown_drops_the_drums():
    piece = generate_piece(STYLES["techno"], 11, piece_id="test:techno", form="long")
    drop = next(s for s in piece.sections if s.name == "drop")
    breakdown = next(s for s in piece.sections if s.name == "breakdown")

    def playing(section):
        return {
            t.role
            for t in piece.tracks
            if any(section.start <= n.start < section.end for n in t.notes)
        }

    assert playing(drop) == {"drums", "bass", "chords", "melody"}
    assert "drums" not in playing(breakdown)
    assert drop.energy > breakdown.energy
    assert SECTIONS["drop"].level == 1.0


def test_the_same_seed_writes_the_same_piece_and_another_seed_another():
    style = STYLES["house"]
    first = generate_piece(style, 5, piece_id="a")
    again = generate_piece(style, 5, piece_id="a")
    other = generate_piece(style, 6, piece_id="a")
    assert first == again
    assert first != other


def test_pieces_come_in_major_and_minor_and_in_every_key():
    pieces = [generate_piece(STYLES["rock"], seed, piece_id="x") for seed in range(60)]
    assert {p.mode for p in pieces} == {"major", "minor"}
    assert len({p.tonic for p in pieces}) == 12


def test_the_midi_file_carries_the_tempo_programs_and_every_note():
    piece = generate_piece(STYLES["jazz trio"], 2, piece_id="x", form="short")
    midi = to_midi(piece)
    tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    assert len(tempos) == 1 and abs(60e6 / tempos[0] - piece.bpm) < 0.01
    note_ons = [m for track in midi.tracks for m in track if m.type == "note_on"]
    assert len(note_ons) == sum(len(t.notes) for t in piece.tracks)
    programs = {
        (m.channel, m.program) for track in midi.tracks for m in track if m.type == "program_change"
    }
    assert programs == {(t.channel, t.program) for t in piece.tracks}


def test_patterns_hold_notes_with_dashes():
    events = pattern_events("R-..F---........")
    assert [(e.step, e.symbol, e.length) for e in events] == [(0, "R", 2), (4, "F", 4)]


def test_chords_are_voiced_in_range_with_smooth_voice_leading():
    c_major = parse_numeral("I", 0, "major")
    f_major = parse_numeral("IV", 0, "major")
    first = voice_chord(c_major, 55, 74, None)
    second = voice_chord(f_major, 55, 74, first)
    assert all(55 <= p <= 74 for p in first + second)
    assert sorted(p % 12 for p in second) == [0, 5, 9]
    assert sum(min(abs(n - p) for p in first) for n in second) <= 4
    assert parse_numeral("V7", 9, "minor").pitch_classes == (4, 8, 11, 2)
    assert parse_numeral("bVII", 0, "major").root == 10
