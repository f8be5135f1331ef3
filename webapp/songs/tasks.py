"""Celery tasks for songs: thin, they call one service each."""

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from webapp.songs import services


@shared_task(name="webapp.songs.tasks.songs_requeue_stalled")
def songs_requeue_stalled() -> dict[str, int]:
    """Beat, every minute (queue `default`): recover songs whose worker or message was lost."""
    return services.songs_requeue_stalled()


@shared_task(
    name="webapp.songs.tasks.song_generate",
    soft_time_limit=settings.SONG_TASK_SOFT_TIME_LIMIT_S,
    time_limit=settings.SONG_TASK_TIME_LIMIT_S,
)
def song_generate(song_id: str) -> None:
    """Generate a song's audio (queue `gpu`). Safe to run twice: see song_claim_for_generation."""
    try:
        services.song_render(song_id=song_id)
    except SoftTimeLimitExceeded:
        services.song_mark_failed(song_id=song_id, error="Generation took too long.")
