"""FluidSynth rendering: deterministic, levelled, and clear about what is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generation.data.performance import to_midi
from generation.data.procedural import generate_piece
from generation.data.render import (
    FluidSynthUnavailable,
    Renderer,
    RenderSettings,
    check_fluidsynth,
    normalise_loudness,
    resolve_soundfont,
)
from generation.data.styles import STYLES


@pytest.fixture(scope="module")
def renderer():
    try:
        renderer = Renderer(resolve_soundfont())
    except FluidSynthUnavailable as error:
        pytest.skip(f"FluidSynth or its soundfont is missing: {error}")
    yield renderer
    renderer.close()


def _short(style: str, seed: int):
    return generate_piece(STYLES[style], seed, piece_id="t", form="short").truncated(8.0)


def test_a_piece_renders_identically_whatever_was_rendered_before(renderer):
    rock, techno = _short("rock", 1), _short("techno", 2)
    first = renderer.render(to_midi(rock), room_size=rock.room_size)
    renderer.render(to_midi(techno), room_size=techno.room_size)
    again = renderer.render(to_midi(rock), room_size=rock.room_size)
    np.testing.assert_array_equal(first, again)
    tail = RenderSettings().tail_s
    assert first.ndim == 1 and first.dtype == np.float32
    assert abs(first.size / 24_000 - (rock.duration_s + tail)) < 0.1
    assert np.abs(first).max() > 0.01


def test_levelled_audio_reaches_the_target_loudness_without_clipping(renderer):
    import pyloudnorm

    piece = _short("orchestral cinematic", 3)
    settings = RenderSettings()
    audio, before = normalise_loudness(
        renderer.render(to_midi(piece), room_size=piece.room_size), settings
    )
    after = pyloudnorm.Meter(24_000).integrated_loudness(audio.astype(np.float64))
    assert np.isfinite(before)
    assert np.abs(audio).max() <= 10 ** (settings.peak_dbfs / 20) + 1e-6
    assert after <= settings.target_lufs + 0.1
    assert after > settings.target_lufs - 6  # only peak safety may pull it lower


def test_silence_is_left_alone_by_levelling():
    silence = np.zeros(24_000, dtype=np.float32)
    audio, loudness = normalise_loudness(silence, RenderSettings())
    assert loudness == float("-inf") and not audio.any()


def test_a_missing_soundfont_says_what_to_install(tmp_path: Path):
    with pytest.raises(FluidSynthUnavailable) as raised:
        check_fluidsynth(tmp_path / "nowhere.sf2")
    message = str(raised.value)
    assert "nowhere.sf2" in message
    assert "apt-get install fluidsynth fluid-soundfont-gm" in message
    assert "--soundfont" in message and "CHORUS_SOUNDFONT" in message


def test_the_soundfont_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.setenv("CHORUS_SOUNDFONT", "/somewhere/else.sf2")
    assert resolve_soundfont() == Path("/somewhere/else.sf2")
    assert resolve_soundfont("/explicit.sf2") == Path("/explicit.sf2")
    monkeypatch.delenv("CHORUS_SOUNDFONT")
    assert resolve_soundfont().name == "FluidR3_GM.sf2"
