"""Rooms' fixtures: a live room of alice's (friends mode), an audience room, carol the listener,
a clock, and chunk audio files in a throwaway MEDIA_ROOT."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile

from collab import services

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)  # rooms' tests run on this clock, not the real one


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def carol(make_user):
    return make_user("carol", email="carol@example.com")


@pytest.fixture
def make_room(db):
    def make(host, **params):
        params.setdefault("title", "Friday jam")
        params.setdefault("anchor_prompt", "warm lo-fi beat with soft piano")
        params.setdefault("now", T0)
        return services.room_create(host=host, **params)

    return make


@pytest.fixture
def a_live_room(make_room, alice):
    return make_room(alice)


@pytest.fixture
def an_audience_room(make_room, alice):
    return make_room(alice, title="Stream night", mode="audience", visibility="public")


@pytest.fixture
def media(settings, tmp_path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path)
    return tmp_path


@pytest.fixture
def write_chunk(media):
    """Write `seconds` of a tone as the room's chunk file; return its absolute path."""

    def write(room, sequence: int, seconds: float = 2.0, *, rate: int = 24000, fmt="WAV") -> str:
        folder = media / "rooms" / str(room.pk)
        folder.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        pcm = (0.2 * np.sin(2 * np.pi * (220 + 20 * sequence) * t)).astype(np.float32)
        extension, subtype = {"WAV": ("wav", "PCM_16"), "OGG": ("ogg", "OPUS")}[fmt]
        path = folder / f"{sequence:08d}.{extension}"
        soundfile.write(path, pcm, rate, format=fmt, subtype=subtype)
        return str(path)

    return write
