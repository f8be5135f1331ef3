"""The tuning tests run tiny models: one torch thread is faster than a pool fighting for cores.

Web-side tests use a *versioned* test backend: a short tone whose model version is the name of
the checkpoint it was given (as the real engine names itself by its checkpoint's stem), and
whose codes carry a hidden quality (the share of frames whose coarse code plays a motif, codes
0-3) that simulated listeners can like or not, and that DPO can learn.
"""

from __future__ import annotations

import random
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

from generation.interface import RenderedSong, SongRequest, register_song_generator

VERSIONED_TONE = "versioned-tone-for-tests"
TONE_RATE = 8000
TONE_CODEBOOKS = 3  # the tiny LM's
TONE_FRAMES = 40  # fits the tiny LM's 48-step context with the delay pattern's latency


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tone_quality(seed: int) -> float:
    """The hidden quality of the tone made with this seed, in [0, 1]."""
    return float(np.random.default_rng(seed).random())


def motif_codes(quality: float, seed: int, frames: int = TONE_FRAMES) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    liked = rng.random(frames) < quality
    level0 = np.where(liked, rng.integers(0, 4, frames), rng.integers(4, 1024, frames))
    finer = rng.integers(0, 1024, (TONE_CODEBOOKS - 1, frames))
    return np.vstack([level0, finer]).astype(np.int16)


class VersionedTone:
    def __init__(self, checkpoint: str | None = None):
        self.model_version = Path(checkpoint).stem if checkpoint else "tone-default"

    def generate_song(self, request: SongRequest, progress) -> RenderedSong:
        quality = tone_quality(request.seed)
        t = np.arange(int(request.duration_s * TONE_RATE)) / TONE_RATE
        progress(1.0)
        return RenderedSong(
            pcm=(0.2 * np.sin(2 * np.pi * (200 + 200 * quality) * t)).astype(np.float32),
            sample_rate=TONE_RATE,
            model_version=self.model_version,
            is_placeholder=True,
            provenance={"generator": VERSIONED_TONE, "seed": request.seed, "quality": quality},
            codes=motif_codes(quality, request.seed),
        )


register_song_generator(VERSIONED_TONE, VersionedTone, versioned=True)


@pytest.fixture
def versioned_backend(settings, tmp_path):
    """The versioned tone serves songs; tuned checkpoints go to a temporary folder."""
    settings.GENERATION_BACKEND = VERSIONED_TONE
    settings.TUNING_DIR = tmp_path / "tuning"
    return VERSIONED_TONE


@pytest.fixture
def checkpoint_file(tmp_path):
    """A file standing for a checkpoint (the versioned tone never reads it)."""

    def make(name: str, content: bytes | None = None) -> Path:
        path = tmp_path / "checkpoints" / f"{name}.pt"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content if content is not None else name.encode())
        return path

    return make


@pytest.fixture
def seeded_song_ids(monkeypatch):
    """Song ids from a seeded generator instead of uuid4. Which songs a canary serves follows a
    hash of their ids, so with random ids a canary test heard different evidence on every run;
    with these it hears the same (the rule's error rates over many such draws are measured by
    generation/tuning/canary_sim.py, not left to chance here)."""
    from webapp.songs.models import Song

    rng = random.Random(0)
    monkeypatch.setattr(
        Song._meta.pk, "_get_default", lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    )
