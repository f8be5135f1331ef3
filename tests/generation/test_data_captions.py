"""Captions match the audio: tempo and key read back from rendered clips agree with the manifest.

A small corpus of drum-driven procedural styles is built end to end (generator, FluidSynth,
loudness, clip cutting, FLAC), and the estimators of ``generation.data.analysis`` listen to the
FLAC files. Lofi hip hop is left out of the tempo check on purpose: its hi-hats are louder on the
eighth notes than its drums are on the beat, so an autocorrelation-style estimator hears double
time there (see docs/corpus.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from generation.data import BuildConfig, build_corpus, iter_clips
from generation.data.analysis import estimate_key, estimate_tempo
from generation.data.render import FluidSynthUnavailable, check_fluidsynth, resolve_soundfont
from generation.data.theory import key_name

DRUM_STYLES = ("techno", "house", "drum and bass", "rock", "jazz trio")


@pytest.fixture(scope="module")
def drum_corpus(tmp_path_factory) -> Path:
    try:
        check_fluidsynth(resolve_soundfont())
    except FluidSynthUnavailable as error:
        pytest.skip(f"FluidSynth or its soundfont is missing: {error}")
    out = tmp_path_factory.mktemp("drums")
    config = BuildConfig(
        out_dir=out, hours=0.01, seed=3, workers=1, styles=DRUM_STYLES, max_piece_seconds=42.0
    )
    build_corpus(config, progress=False)
    return out / "manifest.jsonl"


def test_captions_state_every_attribute(drum_corpus):
    for row, _ in iter_clips(drum_corpus):
        text = row["caption"].lower()
        assert f"{row['bpm']:.0f} bpm" in text
        assert f"{row['key']} {row['mode']}".lower() in text
        assert row["style"] in text
        assert all(name in text for name in row["instruments"])


def test_tempo_heard_in_clips_with_drums_is_within_3_percent_of_the_caption(drum_corpus):
    checked = []
    for row, audio in iter_clips(drum_corpus):
        if row["section"] not in ("build", "drop"):
            continue  # intros play hats only; the tempo is written, not yet heard
        heard = estimate_tempo(audio, row["sample_rate"])
        checked.append((row["id"], row["bpm"], heard))
    assert len(checked) >= 5
    wrong = [c for c in checked if abs(c[2] - c[1]) / c[1] > 0.03]
    assert not wrong, wrong


def test_key_heard_in_most_clips_is_the_captions_key(drum_corpus):
    results = []
    for row, audio in iter_clips(drum_corpus):
        heard = estimate_key(audio, row["sample_rate"])
        results.append((row["key"], row["mode"], key_name(heard.tonic), heard.mode))
    agree = sum(key == k and mode == m for key, mode, k, m in results)
    assert len(results) >= 6
    assert agree / len(results) >= 2 / 3, results
