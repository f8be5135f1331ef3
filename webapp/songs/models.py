"""Songs: made from a prompt, generated on the `gpu` queue, kept and shared by link."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from generation.interface import MAX_SONG_SECONDS, MIN_SONG_SECONDS

MAX_PROMPT_CHARS = 1000
MAX_TITLE_CHARS = 200
MAX_STYLE_TAGS = 10
MAX_STYLE_TAG_CHARS = 32
MIN_GUIDANCE, MAX_GUIDANCE = 0.0, 10.0
PEAKS_PER_SONG = 800


def new_share_token() -> str:
    return secrets.token_urlsafe(16)  # 128 bits: unguessable


def audio_upload_to(song: Song, filename: str) -> str:
    return f"songs/{song.id}/{filename}"


def reference_upload_to(song: Song, filename: str) -> str:
    return f"songs/{song.id}/reference/{filename}"


class Song(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        GENERATING = "generating"
        READY = "ready"
        FAILED = "failed"

    class Visibility(models.TextChoices):
        PRIVATE = "private"
        UNLISTED = "unlisted"
        PUBLIC = "public"

    class Moderation(models.TextChoices):
        VISIBLE = "visible"
        HIDDEN = "hidden"  # by a moderator; reversible; the owner still sees it, marked
        REMOVED = "removed"  # taken down with a recorded reason; audio no longer served

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="songs"
    )
    title = models.CharField(max_length=MAX_TITLE_CHARS)
    prompt = models.TextField(max_length=MAX_PROMPT_CHARS)
    duration_s = models.FloatField(
        validators=[MinValueValidator(MIN_SONG_SECONDS), MaxValueValidator(MAX_SONG_SECONDS)]
    )
    seed = models.BigIntegerField()
    # classifier-free guidance; null: the model's recommended scale (provenance has the one used)
    guidance = models.FloatField(null=True, blank=True, default=None)
    style_tags = models.JSONField(default=list, blank=True)
    # structured controls (generation.steering.Controls as a dict: bpm, key, instruments...)
    controls = models.JSONField(default=dict, blank=True)
    expand_prompt = models.BooleanField(default=True)
    # "Influence": a user's clip that steers the style (validated on upload, see songs/uploads)
    reference = models.FileField(upload_to=reference_upload_to, blank=True)
    reference_info = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)

    audio = models.FileField(upload_to=audio_upload_to, blank=True)
    sample_rate = models.PositiveIntegerField(null=True, blank=True)
    audio_duration_s = models.FloatField(null=True, blank=True)
    peaks = models.JSONField(default=list, blank=True)
    model_version = models.CharField(max_length=64, blank=True)
    is_placeholder = models.BooleanField(default=False)
    provenance = models.JSONField(default=dict, blank=True)
    # Exposure by design (webapp/tuning/exposure.py): a request answered with two candidates to
    # compare names their choice set, this one's slot and the chance of that slot (propensity).
    exposure = models.JSONField(default=dict, blank=True)

    visibility = models.CharField(
        max_length=16, choices=Visibility.choices, default=Visibility.PRIVATE
    )
    share_token = models.CharField(max_length=32, unique=True, default=new_share_token)
    like_count = models.PositiveIntegerField(default=0)

    moderation = models.CharField(
        max_length=16, choices=Moderation.choices, default=Moderation.VISIBLE
    )
    moderation_reason = models.TextField(blank=True)
    moderated_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        indexes = [
            # The public feed: newest and most liked among public, ready songs.
            models.Index(
                fields=["-created_at", "-id"],
                name="song_feed_newest",
                condition=models.Q(visibility="public", status="ready"),
            ),
            models.Index(
                fields=["-like_count", "-created_at", "-id"],
                name="song_feed_liked",
                condition=models.Q(visibility="public", status="ready"),
            ),
            models.Index(fields=["owner", "-created_at", "-id"], name="song_owner_newest"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(duration_s__gte=MIN_SONG_SECONDS)
                & models.Q(duration_s__lte=MAX_SONG_SECONDS),
                name="song_duration_in_range",
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0.0) & models.Q(progress__lte=1.0),
                name="song_progress_fraction",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.status})"

    @property
    def is_ready(self) -> bool:
        return self.status == self.Status.READY


class SongLike(models.Model):
    """The current thumb of one user on one song (the feedback table keeps every event)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    song = models.ForeignKey(Song, on_delete=models.CASCADE, related_name="likes")
    value = models.SmallIntegerField()  # +1 or -1
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "song"], name="song_like_once")]

    def __str__(self) -> str:
        return f"{self.user_id} {'+' if self.value > 0 else '-'} {self.song_id}"
