"""The MusicGen backend, on a tiny randomly initialised checkpoint written here (no downloads).

The tiny model makes noise, not music: these tests check the plumbing (shapes, windows, seeds,
guidance, progress, the registry and the errors), and the whole file runs in seconds on one core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from generation import interface
from generation.interface import MIN_SONG_SECONDS, SongRequest, get_song_generator
from generation.musicgen import (
    ENV_DIR,
    MusicGenGenerator,
    MusicGenUnavailable,
    describe_prompt,
    plan_windows,
    register,
    write_tiny_checkpoint,
)

REPO = Path(__file__).resolve().parents[2]
TINY_RATE = 16_000

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return write_tiny_checkpoint(tmp_path_factory.mktemp("models") / "musicgen-tiny")


@pytest.fixture(scope="module")
def generator(checkpoint) -> MusicGenGenerator:
    return MusicGenGenerator(checkpoint, device="cpu")


@pytest.fixture
def no_cached_musicgen():
    """get_song_generator keeps instances: make sure no test sees, or leaves, a cached one."""
    interface._INSTANCES.pop("musicgen", None)
    yield
    interface._INSTANCES.pop("musicgen", None)


def render(generator, seed=7, seconds=MIN_SONG_SECONDS, guidance=3.0, progress=None, tags=()):
    request = SongRequest(
        prompt="calm piano with soft drums",
        duration_s=seconds,
        seed=seed,
        guidance=guidance,
        style_tags=tags,
    )
    return generator.generate_song(request, progress or (lambda fraction: None))


def test_a_song_is_mono_float_pcm_of_the_asked_length(generator, checkpoint):
    song = render(generator)

    assert song.sample_rate == TINY_RATE
    assert song.pcm.dtype == np.float32
    assert song.pcm.ndim == 1
    assert len(song.pcm) == round(MIN_SONG_SECONDS * TINY_RATE)
    assert song.duration_s == pytest.approx(MIN_SONG_SECONDS)
    assert np.isfinite(song.pcm).all()
    assert np.abs(song.pcm).max() <= 1.0
    assert song.pcm.std() > 1e-4  # not silence
    assert not song.is_placeholder
    assert song.model_version == "musicgen:musicgen-tiny"


def test_the_provenance_says_how_the_song_was_made(generator, checkpoint):
    song = render(generator, seed=11, guidance=2.5, tags=("jazz", "lofi"))

    assert song.provenance == {
        "generator": "musicgen",
        "model_dir": str(checkpoint),
        "prompt": "calm piano with soft drums",
        "style_tags": ["jazz", "lofi"],
        "text": "calm piano with soft drums, jazz, lofi",
        "seed": 11,
        "guidance": 2.5,
        "windows": 1,
        "window_s": 30.0,
        "context_s": 10.0,
        "frame_rate": 25,
        "device": "cpu",
    }


def test_progress_rises_every_step_and_ends_at_one(generator):
    reported: list[float] = []

    render(generator, progress=reported.append)

    assert len(reported) > 100  # one per decoding step (250 frames at 25 Hz, plus the delay)
    assert reported == sorted(reported)
    assert all(0.0 < fraction <= 1.0 for fraction in reported)
    assert reported[-1] == 1.0
    assert reported.count(1.0) == 1


def test_the_same_seed_gives_the_same_song_and_another_seed_another(generator):
    first = render(generator, seed=3).pcm

    assert np.array_equal(first, render(generator, seed=3).pcm)
    assert not np.array_equal(first, render(generator, seed=4).pcm)


def test_the_seed_leaves_the_global_random_state_alone(generator):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)

    render(generator, seed=5, seconds=1.0)

    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_guidance_is_passed_to_the_model(generator, guidance):
    song = render(generator, seed=9, guidance=guidance)

    assert song.provenance["guidance"] == guidance
    assert len(song.pcm) == round(MIN_SONG_SECONDS * TINY_RATE)


def test_guidance_changes_the_song(generator):
    assert not np.array_equal(render(generator, guidance=1.0).pcm, render(generator).pcm)


def test_a_long_song_is_made_in_several_windows_of_continuation(checkpoint):
    windowed = MusicGenGenerator(checkpoint, device="cpu", window_s=4.0, context_s=1.0)
    reported: list[float] = []

    song = render(windowed, seconds=10.5, progress=reported.append)

    # 4 s, then 3 s at a time (1 s of each window is the audio prompt): 4 + 3 + 3 + 0.5
    assert song.provenance["windows"] == 4
    assert len(song.pcm) == round(10.5 * TINY_RATE)
    assert np.isfinite(song.pcm).all() and np.abs(song.pcm).max() <= 1.0
    assert reported == sorted(reported) and reported[-1] == 1.0
    assert np.array_equal(song.pcm, render(windowed, seconds=10.5).pcm)


def test_windows_add_window_minus_context_frames_each():
    assert plan_windows(250, 750, 250) == [250]
    assert plan_windows(750, 750, 250) == [750]
    assert plan_windows(30_000, 1500, 500) == [1500] + [1000] * 28 + [500]
    assert plan_windows(263, 100, 25) == [100, 75, 75, 13]
    assert plan_windows(0, 100, 25) == []
    with pytest.raises(ValueError):
        plan_windows(263, 100, 100)


def test_the_text_is_the_prompt_then_the_style_tags():
    request = SongRequest(prompt=" upbeat rock ", duration_s=10, seed=1, style_tags=("guitar", ""))

    assert describe_prompt(request) == "upbeat rock, guitar"


def test_the_registry_loads_the_directory_named_by_the_environment(
    checkpoint, monkeypatch, no_cached_musicgen
):
    monkeypatch.setenv(ENV_DIR, str(checkpoint))

    made = get_song_generator("musicgen")

    assert isinstance(made, MusicGenGenerator)
    assert made.model_version == "musicgen:musicgen-tiny"
    assert get_song_generator("musicgen") is made


def test_the_registry_says_what_to_set_when_no_directory_is_named(monkeypatch, no_cached_musicgen):
    monkeypatch.delenv(ENV_DIR, raising=False)

    with pytest.raises(MusicGenUnavailable, match=ENV_DIR):
        get_song_generator("musicgen")


def test_register_points_a_name_at_a_directory(checkpoint):
    register(checkpoint, name="musicgen-under-test", device="cpu", window_s=5.0, context_s=2.0)
    try:
        made = get_song_generator("musicgen-under-test")
        assert isinstance(made, MusicGenGenerator)
        assert made.window_frames == 125
    finally:
        interface._REGISTRY.pop("musicgen-under-test", None)
        interface._INSTANCES.pop("musicgen-under-test", None)


def test_a_missing_directory_is_unavailable(tmp_path):
    with pytest.raises(MusicGenUnavailable, match="does not exist"):
        MusicGenGenerator(tmp_path / "nowhere")


def test_a_directory_without_a_checkpoint_is_unavailable(tmp_path):
    with pytest.raises(MusicGenUnavailable, match="no config.json"):
        MusicGenGenerator(tmp_path)


def test_another_kind_of_checkpoint_is_unavailable(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "musicgen_melody"}))

    with pytest.raises(MusicGenUnavailable, match="'musicgen_melody'"):
        MusicGenGenerator(tmp_path)


def test_a_checkpoint_without_a_tokenizer_is_unavailable(checkpoint, tmp_path):
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        (tmp_path / name).write_bytes((checkpoint / name).read_bytes())

    with pytest.raises(MusicGenUnavailable, match="tokenizer.json"):
        MusicGenGenerator(tmp_path, device="cpu")


def test_the_interface_does_not_import_transformers():
    code = (
        "import sys, generation.interface, generation.musicgen; "
        "assert 'transformers' not in sys.modules, 'transformers was imported'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stderr
