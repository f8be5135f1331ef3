"""Each user's generation usage per UTC day: what the daily quotas count (quotas.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class DailyUsage(models.Model):
    """Seconds of audio asked for and songs made by one user on one UTC day.

    A ledger, not a count of Song rows: deleting a song does not give its seconds back, and a
    song that failed still cost its GPU time. One row per user and day, updated by one
    conditional UPDATE per song (quotas.quota_consume), which is what makes the last slot
    impossible to take twice.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="daily_usage"
    )
    day = models.DateField()
    seconds = models.FloatField(default=0.0)
    songs = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "day"], name="daily_usage_once_a_day")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.day}: {self.songs} songs, {self.seconds:g} s"
