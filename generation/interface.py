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
    # the share of best-of-n picks made at random instead of by the critic, so the critic can be
    # judged off-policy (the chosen one's propensity goes into the provenance)
    explore_share: float = 0.0


@dataclass
class RenderedSong:
    pcm: np.ndarray  # float32, mono, in [-1, 1]
    sample_rate: int
    model_version: str
    is_placeholder: bool = False
    provenance: dict = field(default_factory=dict)
    codes: np.ndarray | None = None  # [K, frames] codec codes, from token models (for tuning)

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.sample_rate


class SongGenerator(Protocol):
    model_version: str

    def generate_song(self, request: SongRequest, progress: ProgressCallback) -> RenderedSong: ...


_REGISTRY: dict[str, Callable[..., SongGenerator]] = {}
_VERSIONED: set[str] = set()
_INSTANCES: dict[str, SongGenerator] = {}
MAX_VERSIONS_KEPT = 3  # a promoted version, a canary and one more stay loaded per process


def register_song_generator(
    name: str, factory: Callable[..., SongGenerator], *, versioned: bool = False
) -> None:
    """`factory()` makes the backend's default generator; a `versioned` backend's factory also
    takes the checkpoint of a registered model version (webapp/tuning): `factory(checkpoint)`."""
    _REGISTRY[name] = factory
    if versioned:
        _VERSIONED.add(name)
    else:
        _VERSIONED.discard(name)


def takes_checkpoints(name: str) -> bool:
    """Whether the backend can serve registered model versions (tuned checkpoints)."""
    return name in _VERSIONED


def get_song_generator(name: str, checkpoint: str | None = None) -> SongGenerator:
    """The generator registered under `name` (with this checkpoint of its model), created once
    per process and kept (models are big); past MAX_VERSIONS_KEPT versions, the one loaded
    first is let go."""
    key = name if checkpoint is None else f"{name}@{checkpoint}"
    if key in _INSTANCES:
        return _INSTANCES[key]
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise LookupError(f"unknown generation backend {name!r} (known: {known})")
    if checkpoint is None:
        _INSTANCES[key] = _REGISTRY[name]()
        return _INSTANCES[key]
    if name not in _VERSIONED:
        raise LookupError(f"generation backend {name!r} serves no model versions")
    versions = [k for k in _INSTANCES if "@" in k]
    if len(versions) >= MAX_VERSIONS_KEPT:
        del _INSTANCES[versions[0]]  # the oldest loaded
    _INSTANCES[key] = _REGISTRY[name](checkpoint)
    return _INSTANCES[key]


def _placeholder() -> SongGenerator:
    from generation.placeholder import PlaceholderToneGenerator  # imported when first used

    return PlaceholderToneGenerator()


def _musicgen() -> SongGenerator:
    from generation.musicgen import from_env  # imports transformers only when first used

    return from_env()  # the checkpoint directory is $CHORUS_MUSICGEN_DIR


register_song_generator("placeholder", _placeholder)
register_song_generator("musicgen", _musicgen)


def _chorus(checkpoint: str | None = None) -> SongGenerator:
    from generation.lm.songs import ChorusSongGenerator  # torch and the model load when first used

    if checkpoint is None:
        return ChorusSongGenerator()
    return ChorusSongGenerator.from_checkpoint(checkpoint)


register_song_generator("chorus", _chorus, versioned=True)
