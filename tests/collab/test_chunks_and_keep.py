"""Recording a room's chunks, and keeping the last stretch of a room as a song."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile
from django.contrib.auth.models import AnonymousUser

from collab import selectors, services
from collab.models import Chunk
from generation.steering import Steering
from webapp.errors import ServiceError
from webapp.songs.models import Song

STRINGS = Steering.of("add strings", bpm=128).as_dict()


def _samples(chunk: Chunk) -> np.ndarray:
    with chunk.audio.open("rb") as file:
        return soundfile.read(io.BytesIO(file.read()))[0]


@pytest.fixture
def six_seconds_played(a_live_room, write_chunk):
    """Three 2 s chunks; the last one was generated under a new steering."""
    for sequence in range(3):
        services.chunk_record(
            room=a_live_room,
            sequence=sequence,
            start_s=2.0 * sequence,
            duration_s=2.0,
            audio=write_chunk(a_live_room, sequence),
            steering=STRINGS if sequence == 2 else None,
            provenance={"model_version": "chorus-lm-v1", "seed": 7},
        )
    return a_live_room


def test_a_chunk_is_recorded_once_however_often_it_is_reported(a_live_room, write_chunk):
    path = write_chunk(a_live_room, 0)

    first = services.chunk_record(
        room=a_live_room, sequence=0, start_s=0.0, duration_s=2.0, audio=path
    )
    again = services.chunk_record(
        room=a_live_room, sequence=0, start_s=9.0, duration_s=9.0, audio=path
    )

    assert again.pk == first.pk and Chunk.objects.count() == 1
    assert (again.start_s, again.duration_s) == (0.0, 2.0)
    assert first.audio.name == f"rooms/{a_live_room.pk}/00000000.wav"  # a name in storage
    assert first.steering == a_live_room.current_steering  # what the room played then


def test_chunk_audio_outside_media_storage_is_refused(a_live_room, media, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "chunk.ogg"

    with pytest.raises(ServiceError, match="must be stored under MEDIA_ROOT") as refused:
        services.chunk_record(
            room=a_live_room, sequence=0, start_s=0.0, duration_s=2.0, audio=str(elsewhere)
        )

    assert refused.value.field == "audio" and not Chunk.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"sequence": -1}, "sequence"),
        ({"duration_s": 0.0}, "duration_s"),
        ({"start_s": -1.0}, "start_s"),
    ],
)
def test_a_chunk_that_takes_no_time_or_has_no_place_is_refused(a_live_room, fields, field):
    values = {"sequence": 0, "start_s": 0.0, "duration_s": 2.0, "audio": "rooms/x.ogg", **fields}

    with pytest.raises(ServiceError) as refused:
        services.chunk_record(room=a_live_room, **values)

    assert refused.value.field == field and not Chunk.objects.exists()


def test_a_client_catches_up_with_the_chunks_after_the_last_it_has(six_seconds_played):
    room = six_seconds_played

    assert [c.sequence for c in selectors.chunks_since(room=room, sequence=0)] == [1, 2]
    assert [c.sequence for c in selectors.chunks_since(room=room, sequence=-1, limit=2)] == [0, 1]


def test_keeping_makes_a_ready_song_of_the_last_seconds(six_seconds_played, write_chunk, bob):
    room = six_seconds_played
    for sequence in range(3, 6):  # 12 s played in all
        services.chunk_record(
            room=room,
            sequence=sequence,
            start_s=2.0 * sequence,
            duration_s=2.0,
            audio=write_chunk(room, sequence),
        )

    song = services.room_keep(room=room, user=bob, seconds=11)

    song.refresh_from_db()
    assert (song.owner, song.status, song.visibility) == (bob, "ready", "private")
    assert song.title == "Friday jam (kept)"
    assert song.audio_duration_s == pytest.approx(11.0)
    with song.audio.open("rb") as master:
        pcm, rate = soundfile.read(io.BytesIO(master.read()))
    assert rate == 24000 and len(pcm) == 11 * 24000
    assert len(song.peaks) == 800
    assert song.provenance["source"] == "room"
    assert song.provenance["room"] == str(room.pk)
    assert song.provenance["chunks"] == [0, 1, 2, 3, 4, 5]
    assert song.provenance["first_chunk_from_s"] == 1.0  # of chunk 0, only its last second
    first, last = (_samples(Chunk.objects.get(room=room, sequence=n)) for n in (0, 5))
    assert np.allclose(pcm[:24000], first[-24000:], atol=1e-4)
    assert np.allclose(pcm[-48000:], last, atol=1e-4)
    steering = song.provenance["steering"]
    assert [(s["sequence"], s["steering"]) for s in steering] == [
        (0, room.current_steering),
        (2, STRINGS),
        (3, room.current_steering),
    ]
    assert song.model_version == "chorus-lm-v1"  # the latest chunk that names one
    assert song.seed == room.seed


def test_keeping_reads_ogg_opus_chunks_as_the_workers_write_them(a_live_room, write_chunk, carol):
    for sequence in range(6):
        services.chunk_record(
            room=a_live_room,
            sequence=sequence,
            start_s=2.0 * sequence,
            duration_s=2.0,
            audio=write_chunk(a_live_room, sequence, fmt="OGG"),
        )

    song = services.room_keep(room=a_live_room, user=carol, seconds=10, visibility="unlisted")

    assert song.audio_duration_s == pytest.approx(10.0, abs=0.05)
    assert song.visibility == "unlisted"
    assert song.provenance["chunks"] == [1, 2, 3, 4, 5]


def test_keeping_more_than_was_played_keeps_what_there_is(six_seconds_played, write_chunk, bob):
    room = six_seconds_played
    services.chunk_record(
        room=room, sequence=3, start_s=6.0, duration_s=5.0, audio=write_chunk(room, 3, 5.0)
    )

    song = services.room_keep(room=room, user=bob, seconds=60, title="Our jam")

    assert song.title == "Our jam"
    assert song.audio_duration_s == pytest.approx(11.0)
    assert song.duration_s == pytest.approx(11.0)


@pytest.mark.parametrize(
    ("user", "seconds", "code", "message"),
    [
        ("anonymous", 30, "login_required", "Sign in to keep music from a room."),
        ("bob", 5, "invalid", "Keep between 10 and 600 seconds; got 5."),
        ("bob", 601, "invalid", "Keep between 10 and 600 seconds; got 601."),
        ("bob", 30, "too_short", "The room has played 6 s so far; keep at least 10 s."),
    ],
)
def test_keeping_is_refused_with_a_reason_and_makes_no_song(
    six_seconds_played, bob, user, seconds, code, message
):
    who = bob if user == "bob" else AnonymousUser()

    with pytest.raises(ServiceError) as refused:
        services.room_keep(room=six_seconds_played, user=who, seconds=seconds)

    assert (refused.value.code, refused.value.message) == (code, message)
    assert not Song.objects.exists()


def test_keeping_audio_that_is_gone_is_refused(six_seconds_played, write_chunk, media, bob):
    room = six_seconds_played
    services.chunk_record(
        room=room, sequence=3, start_s=6.0, duration_s=6.0, audio=write_chunk(room, 3, 6.0)
    )
    (media / Chunk.objects.get(room=room, sequence=1).audio.name).unlink()

    with pytest.raises(ServiceError, match="no longer stored") as refused:
        services.room_keep(room=room, user=bob, seconds=12)

    assert refused.value.code == "audio_missing" and not Song.objects.exists()
