"""The feedback table: one append-only log of what listeners did, with its provenance.

Impressions, plays, progress, completions, skips, replays, thumbs, shares, downloads and votes all
land here. Labels for tuning are derived offline into versioned tables; this log is never rewritten.
The app only inserts; the one exception is erasing a deleted account's events (CASCADE on user).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AppendOnlyQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("feedback events are append-only: they are never updated")


class FeedbackEvent(models.Model):
    class Kind(models.TextChoices):
        IMPRESSION = "impression"
        PLAY_START = "play_start"
        PROGRESS = "progress"
        COMPLETE = "complete"
        SKIP = "skip"
        REPLAY = "replay"
        THUMB_UP = "thumb_up"
        THUMB_DOWN = "thumb_down"
        SHARE = "share"
        DOWNLOAD = "download"
        VOTE = "vote"

    class TargetType(models.TextChoices):
        SONG = "song"
        CHUNK = "chunk"  # a room's chunk (collab.models.Chunk)
        AUDITION = "audition"  # a proposal's preview (collab.models.Audition)

    id = models.BigAutoField(primary_key=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # Who did it, always set: "user:<id>" or "anon:<session key>" for anonymous listeners.
    actor = models.CharField(max_length=80)
    target_type = models.CharField(max_length=16, choices=TargetType.choices)
    target_id = models.CharField(max_length=64)
    value = models.FloatField(null=True, blank=True)  # progress fraction, thumb ±1, vote weight
    position_s = models.FloatField(null=True, blank=True)  # where in the audio it happened
    choice_set = models.CharField(max_length=64, blank=True)  # candidates shown together
    slot = models.SmallIntegerField(null=True, blank=True)  # which of them this was
    # Provenance, copied from the target by the server (never trusted from the client).
    model_version = models.CharField(max_length=64, blank=True)
    seed = models.BigIntegerField(null=True, blank=True)
    conditioning = models.JSONField(default=dict, blank=True)
    client_event_id = models.CharField(max_length=64, blank=True)  # makes client retries idempotent
    client_ts = models.DateTimeField(null=True, blank=True)
    server_ts = models.DateTimeField(default=timezone.now)

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        indexes = [
            # The tuning job reads by time window, by kind, by model version and by choice set.
            models.Index(fields=["server_ts"], name="fb_server_ts"),
            models.Index(fields=["kind", "server_ts"], name="fb_kind_ts"),
            models.Index(fields=["model_version", "kind", "server_ts"], name="fb_version_kind_ts"),
            models.Index(
                fields=["choice_set", "slot"],
                name="fb_choice_set",
                condition=~models.Q(choice_set=""),
            ),
            models.Index(fields=["target_type", "target_id", "kind"], name="fb_target"),
            models.Index(fields=["user", "server_ts"], name="fb_user_ts"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["actor", "client_event_id"],
                name="fb_client_event_once",
                condition=~models.Q(client_event_id=""),
            ),
            models.CheckConstraint(condition=~models.Q(actor=""), name="fb_has_actor"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target_type}:{self.target_id}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise TypeError("feedback events are append-only: they are never updated")
        super().save(*args, **kwargs)
