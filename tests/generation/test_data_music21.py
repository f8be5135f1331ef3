"""The music21 corpus source: pieces are found offline and arranged with known attributes."""

from __future__ import annotations

import pytest

pytest.importorskip("music21")

from generation.data.music21_source import (  # noqa: E402
    MUSIC21_STYLES,
    CorpusPiece,
    load_score,
    performance_for,
    score_to_performance,
    style_pieces,
)


def test_every_style_finds_pieces_in_the_bundled_corpus():
    counts = {name: len(style_pieces(style)) for name, style in MUSIC21_STYLES.items()}
    assert all(count > 0 for count in counts.values()), counts
    assert counts["baroque chorale"] >= 300
    assert counts["folk song"] >= 1000 and counts["folk dance tune"] >= 1000


def test_each_tune_of_a_multi_tune_abc_file_is_its_own_piece():
    pieces = style_pieces(MUSIC21_STYLES["folk song"])
    ballads = [p for p in pieces if p.path == "essenFolksong/ballad10.abc"]
    assert len(ballads) > 10
    assert ballads[2].piece_id == f"music21:essenFolksong/ballad10/{ballads[2].number}"
    assert len({p.piece_id for p in pieces}) == len(pieces)


def test_a_chorale_is_arranged_with_its_analysed_key_moved_by_the_transposition():
    piece = CorpusPiece("bach/bwv66.6.mxl")
    style = MUSIC21_STYLES["baroque chorale"]
    score = load_score(piece)
    original = score.analyze("key")
    performance = score_to_performance(score, style, piece, seed=4)

    assert performance.piece_id == performance.source == "music21:bach/bwv66.6"
    assert len(performance.tracks) == 4
    lowest_written = min(p.midi for p in score.parts[-1].flatten().pitches)
    lowest_played = min(n.pitch for n in performance.tracks[-1].notes)
    shift = lowest_played - lowest_written
    assert performance.tonic == (original.tonic.pitchClass + shift) % 12
    assert performance.mode == original.mode
    programs = tuple(t.program for t in performance.tracks)
    assert any(programs == tuple(e.program_for(i, 4) for i in range(4)) for e in style.ensembles)
    assert 50 <= performance.bpm <= 190
    assert performance == score_to_performance(load_score(piece), style, piece, seed=4)


def test_short_folk_tunes_are_repeated_up_to_the_styles_minimum_length():
    style = MUSIC21_STYLES["folk song"]
    piece = style_pieces(style)[0]
    performance = performance_for(piece, style, seed=1)
    assert performance.duration_s >= style.min_seconds
    assert len(performance.tracks) == 1
