"""The stalled-song sweeper: songs whose worker died or whose queue message was lost are retried,
and given up on after MAX_ATTEMPTS. Run by beat every minute; here with a chosen `now`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from webapp.songs.models import Song
from webapp.songs.services import (
    MAX_ATTEMPTS,
    STALL_GENERATING_S,
    STALL_QUEUED_S,
    songs_requeue_stalled,
)


@pytest.fixture
def a_song_in(alice):
    """A song left in a given state, as a dead worker or a lost message would leave it."""

    def make(status: str, *, attempts: int = 0) -> Song:
        return Song.objects.create(
            owner=alice,
            title="Stuck",
            prompt="a drone",
            duration_s=10,
            seed=1,
            status=status,
            attempts=attempts,
        )

    return make


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def test_a_song_whose_worker_died_is_generated_again(a_song_in):
    song = a_song_in("generating", attempts=1)

    result = songs_requeue_stalled(now=later(STALL_GENERATING_S + 1))

    assert result == {"requeued": 1, "failed": 0}
    song.refresh_from_db()
    assert (song.status, song.attempts) == ("ready", 2)  # generation runs inline in tests


def test_a_song_whose_message_was_lost_is_generated_again(a_song_in):
    song = a_song_in("queued")

    assert songs_requeue_stalled(now=later(STALL_QUEUED_S + 1)) == {"requeued": 1, "failed": 0}
    song.refresh_from_db()
    assert song.status == "ready"


@pytest.mark.parametrize(
    ("status", "quiet_for_s"),
    [
        ("generating", STALL_GENERATING_S - 5),
        ("queued", STALL_QUEUED_S - 5),
        ("ready", STALL_QUEUED_S * 10),
        ("failed", STALL_QUEUED_S * 10),
    ],
)
def test_songs_that_are_not_stalled_are_left_alone(a_song_in, status, quiet_for_s):
    song = a_song_in(status)

    assert songs_requeue_stalled(now=later(quiet_for_s)) == {"requeued": 0, "failed": 0}
    after = Song.objects.get(pk=song.pk)
    assert (after.status, after.attempts, after.updated_at) == (
        status,
        0,
        song.updated_at,
    )


def test_a_song_that_keeps_failing_is_given_up_on(a_song_in):
    song = a_song_in("generating", attempts=MAX_ATTEMPTS)

    result = songs_requeue_stalled(now=later(STALL_GENERATING_S + 1))

    assert result == {"requeued": 0, "failed": 1}
    song.refresh_from_db()
    assert song.status == "failed"
    assert song.error == "Generation kept failing; try again."
    assert song.attempts == MAX_ATTEMPTS
