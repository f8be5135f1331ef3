"""The one interface between the web service and the music engine. No Django here.

The service asks a `SongGenerator` for a song and gets back mono float PCM plus provenance. Which
generator serves a request is a registry lookup by name (`get_song_generator`), so the engine's
own model, a MusicGen checkpoint or the labelled placeholder tone sit behind the same call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

MIN_SONG_SECONDS = 10.0
MAX_SONG_SECONDS = 600.0

ProgressCallback = Callable[[float], None]
"""Called with the fraction done, 0.0 to 1.0, as generation proceeds."""


@dataclass(frozen=True)
class SongRequest:
    prompt: str
    duration_s: float
    seed: int
    guidance: float | None = None  # None: the backend's own recommended scale
    style_tags: tuple[str, ...] = ()
    # structured controls by name (bpm, energy, brightness, key, mode, instruments_in/out);
    # backends that have no such control ignore them
    controls: tuple[tuple[str, object], ...] = ()
    expand_prompt: bool = True  # fill a short prompt out with attributes of the nearest styles
    reference_path: str | None = None  # "Influence": an audio file whose style steers the song
    candidates: int = 1  # best-of-n: generate n and keep the one the critic scores highest


@dataclass
class RenderedSong:
    pcm: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int
    model_version: str
    is_placeholder: bool = False
    provenance: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate


class SongGenerator(Protocol):
    model_version: str

    def generate_song(self, request: SongRequest, progress: ProgressCallback) -> RenderedSong: ...


_REGISTRY: dict[str, Callable[[], SongGenerator]] = {}
_INSTANCES: dict[str, SongGenerator] = {}


def register_song_generator(name: str, factory: Callable[[], SongGenerator]) -> None:
    _REGISTRY[name] = factory


def get_song_generator(name: str) -> SongGenerator:
    """The generator registered under `name`, created once per process and kept (models are big)."""
    if name not in _INSTANCES:
        if name not in _REGISTRY:
            known = ", ".join(sorted(_REGISTRY)) or "none"
            raise LookupError(f"unknown generation backend {name!r} (known: {known})")
        _INSTANCES[name] = _REGISTRY[name]()
    return _INSTANCES[name]


def _placeholder() -> SongGenerator:
    from generation.placeholder import PlaceholderToneGenerator  # imported when first used

    return PlaceholderToneGenerator()


def _musicgen() -> SongGenerator:
    from generation.musicgen import from_env  # imports transformers only when first used

    return from_env()  # the checkpoint directory is $CHORUS_MUSICGEN_DIR


register_song_generator("placeholder", _placeholder)
register_song_generator("musicgen", _musicgen)


def _chorus() -> SongGenerator:
    from generation.lm.songs import ChorusSongGenerator  # torch and the model load when first used

    return ChorusSongGenerator()


register_song_generator("chorus", _chorus)
