"""Clip attributes come from how the piece was written; captions say them in words."""

from __future__ import annotations

from generation.data.attributes import ClipAttributes, caption, join_names, window_attributes
from generation.data.performance import Note, Performance, Track
from generation.data.procedural import generate_piece
from generation.data.styles import STYLES


def _piece():
    return generate_piece(STYLES["techno"], 21, piece_id="procedural:techno/test", form="long")


def test_a_window_inside_the_breakdown_has_its_section_energy_and_no_drums():
    piece = _piece()
    breakdown = next(s for s in piece.sections if s.name == "breakdown")
    start_s = breakdown.start * piece.seconds_per_beat
    attributes = window_attributes(piece, start_s + 0.5, start_s + 5.5)
    assert attributes.section == "breakdown"
    assert attributes.energy == breakdown.energy
    assert not any("drums" in name for name in attributes.instruments)
    assert attributes.bpm == piece.bpm and attributes.mode == piece.mode
    assert attributes.source == "procedural:techno"


def test_a_window_across_two_sections_takes_the_one_it_mostly_covers():
    piece = _piece()
    drop = next(s for s in piece.sections if s.name == "drop")
    boundary = drop.start * piece.seconds_per_beat
    assert window_attributes(piece, boundary - 2, boundary + 8).section == "drop"
    assert window_attributes(piece, boundary - 8, boundary + 2).section == "build"


def test_unformed_pieces_get_position_sections_and_density_energy():
    busy = [Note(i * 0.25, 0.25, 60 + i % 7, 100) for i in range(200)]  # the first 25 s
    sparse = [Note(i * 4.0, 4.0, 48, 50) for i in range(25)]
    piece = Performance(
        "music21:x",
        "music21:x",
        "folk song",
        120.0,
        2,
        "major",
        [Track("voice 1", 73, 0, busy), Track("voice 2", 42, 1, sparse)],
    )
    first = window_attributes(piece, 0, 10, energy_range=(0.2, 0.6))
    middle = window_attributes(piece, 10, 20, energy_range=(0.2, 0.6))
    last = window_attributes(piece, 40, 50, energy_range=(0.2, 0.6))
    assert (first.section, middle.section, last.section) == ("opening", "middle", "ending")
    assert first.instruments == ("flute", "cello")
    assert last.instruments == ("cello",)
    assert 0.2 <= last.energy < first.energy <= 0.6
    assert first.key == "D"


def test_a_caption_names_style_tempo_key_mode_and_every_instrument():
    attributes = ClipAttributes(
        "lofi hip hop",
        ("electric piano", "upright bass", "drums"),
        84.0,
        "Eb",
        "minor",
        0.3,
        "drop",
        "procedural:lofi-hip-hop",
        "p",
    )
    for clip_id in ("a", "b", "c", "d", "e", "f"):
        text = caption(attributes, clip_id)
        assert "lofi hip hop" in text.lower() and "84 bpm" in text.lower()
        assert "Eb minor" in text and "electric piano, upright bass and drums" in text.lower()
        assert text == caption(attributes, clip_id)
    assert len({caption(attributes, str(i)) for i in range(40)}) > 1
    assert join_names(["a"]) == "a" and join_names(["a", "b"]) == "a and b"
