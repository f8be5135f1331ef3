"""The placeholder tone: a labelled test signal that stands in for the music engine."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from generation.interface import SongRequest, get_song_generator, register_song_generator
from generation.placeholder import SAMPLE_RATE, PlaceholderToneGenerator

REPO = Path(__file__).resolve().parents[2]


def render(seconds: float = 10.0, seed: int = 7, progress=None):
    request = SongRequest(prompt="anything", duration_s=seconds, seed=seed)
    return PlaceholderToneGenerator().generate_song(request, progress or (lambda fraction: None))


def test_it_is_labelled_as_a_placeholder():
    song = render()

    assert song.is_placeholder
    assert song.model_version == "placeholder-tone-v1"
    assert song.provenance["generator"] == "placeholder"
    assert song.provenance["seed"] == 7


@pytest.mark.parametrize("seconds", [10.0, 12.5, 61.0])
def test_it_lasts_exactly_as_long_as_asked(seconds):
    song = render(seconds)

    assert song.sample_rate == SAMPLE_RATE
    assert len(song.pcm) == round(seconds * SAMPLE_RATE)
    assert song.duration_s == pytest.approx(seconds)


def test_it_is_mono_float_within_full_scale():
    song = render()

    assert song.pcm.dtype == np.float32
    assert song.pcm.ndim == 1
    assert 0.1 < np.abs(song.pcm).max() <= 1.0


def test_the_same_seed_gives_the_same_sound():
    assert np.array_equal(render(seed=3).pcm, render(seed=3).pcm)
    assert render(seed=7).provenance["base_hz"] != render(seed=8).provenance["base_hz"]


def test_it_reports_progress_as_it_goes_and_ends_at_one():
    reported: list[float] = []

    render(seconds=10.5, progress=reported.append)

    assert len(reported) == 11  # one report per second of audio
    assert reported == sorted(reported)
    assert reported[-1] == 1.0


def test_it_is_the_generator_registered_as_placeholder():
    assert isinstance(get_song_generator("placeholder"), PlaceholderToneGenerator)
    assert get_song_generator("placeholder") is get_song_generator("placeholder")


def test_an_unknown_backend_names_the_known_ones():
    register_song_generator("also-known-for-tests", PlaceholderToneGenerator)

    with pytest.raises(LookupError, match="'no-such-engine'.*placeholder"):
        get_song_generator("no-such-engine")


def test_the_placeholder_module_can_be_imported_on_its_own():
    result = subprocess.run(
        [sys.executable, "-c", "import generation.placeholder"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stderr
