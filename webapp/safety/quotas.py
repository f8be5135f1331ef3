"""Daily generation quotas: seconds of generated audio and songs per user per UTC day.

GPU time costs money, and rate limits (webapp/ratelimit.py) bound bursts, not a day's total.
The limits come from settings (CHORUS_QUOTA_DAILY_SECONDS, CHORUS_QUOTA_DAILY_SONGS; 0 turns one
off); staff are exempt unless CHORUS_QUOTA_STAFF_EXEMPT=0. Usage is recorded for everyone, so
`GET /api/v1/me/` and the song-create page can show what is left.

`quota_consume` takes a song's seconds from the quota in one conditional UPDATE of the user's
row for the day ("add this much where there is still room for it"), inside the transaction that
creates the song: two requests racing for the last slot are serialised by the row lock, and the
second one's condition is evaluated against the first one's committed row, so it fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from webapp.errors import ServiceError
from webapp.safety.models import DailyUsage

QUOTA_EXCEEDED = "quota_exceeded"


@dataclass(frozen=True)
class Limits:
    """A user's daily limits; None: no limit."""

    seconds: float | None
    songs: int | None

    @property
    def exempt(self) -> bool:
        return self.seconds is None and self.songs is None


@dataclass(frozen=True)
class Quota:
    """Where a user stands today: limits, usage and when the day ends (UTC)."""

    limits: Limits
    day: date
    seconds_used: float
    songs_used: int

    @property
    def resets_at(self) -> datetime:
        return datetime.combine(self.day + timedelta(days=1), time(0), tzinfo=UTC)

    @property
    def seconds_left(self) -> float | None:
        if self.limits.seconds is None:
            return None
        return max(0.0, self.limits.seconds - self.seconds_used)

    @property
    def songs_left(self) -> int | None:
        if self.limits.songs is None:
            return None
        return max(0, self.limits.songs - self.songs_used)

    def allows(self, seconds: float) -> bool:
        """Whether one more song of `seconds` fits in what is left."""
        return (self.seconds_left is None or seconds <= self.seconds_left) and (
            self.songs_left is None or self.songs_left >= 1
        )

    def summary(self) -> str:
        """What is left today, in words, for the song-create page."""
        if self.limits.exempt:
            return "No daily limit on your account."
        left = []
        if self.seconds_left is not None:
            left.append(
                f"{duration_words(self.seconds_left)} of "
                f"{duration_words(self.limits.seconds or 0.0)} of audio"
            )
        if self.songs_left is not None:
            left.append(f"{self.songs_left} of {self.limits.songs} songs")
        return f"Left today: {' and '.join(left)}. Resets at 00:00 UTC."

    def as_dict(self) -> dict:
        return {
            "day": self.day.isoformat(),
            "resets_at": self.resets_at.isoformat().replace("+00:00", "Z"),
            "exempt": self.limits.exempt,
            "seconds_limit": self.limits.seconds,
            "seconds_used": round(self.seconds_used, 3),
            "seconds_left": None if self.seconds_left is None else round(self.seconds_left, 3),
            "songs_limit": self.limits.songs,
            "songs_used": self.songs_used,
            "songs_left": self.songs_left,
        }


class QuotaExceeded(ServiceError):
    """A song that does not fit in today's quota: 429, with when the quota resets."""

    status_code = 429

    def __init__(self, quota: Quota, seconds: float, *, now: datetime) -> None:
        self.quota = quota
        self.retry_after_s = max(1.0, (quota.resets_at - now).total_seconds())
        super().__init__(quota_refusal_message(quota, seconds, now=now), code=QUOTA_EXCEEDED)


def quota_limits(user) -> Limits:
    if getattr(user, "is_staff", False) and settings.QUOTA_STAFF_EXEMPT:
        return Limits(seconds=None, songs=None)
    seconds = float(settings.QUOTA_DAILY_SECONDS)
    songs = int(settings.QUOTA_DAILY_SONGS)
    return Limits(seconds=seconds if seconds > 0 else None, songs=songs if songs > 0 else None)


def utc_day(now: datetime | None = None) -> date:
    return (now or timezone.now()).astimezone(UTC).date()


def quota_get(*, user, now: datetime | None = None) -> Quota:
    """The user's quota today (a read; changes nothing)."""
    day = utc_day(now)
    usage = DailyUsage.objects.filter(user=user, day=day).values_list("seconds", "songs").first()
    seconds, songs = usage or (0.0, 0)
    return Quota(limits=quota_limits(user), day=day, seconds_used=seconds, songs_used=songs)


def quota_check(*, user, seconds: float, now: datetime | None = None) -> None:
    """Refuse early (before an upload is decoded) a song that cannot fit; quota_consume is
    still the one that decides, atomically."""
    now = now or timezone.now()
    quota = quota_get(user=user, now=now)
    if not quota.allows(seconds):
        raise QuotaExceeded(quota, seconds, now=now)


def quota_consume(*, user, seconds: float, now: datetime | None = None) -> Quota:
    """Take one song of `seconds` from the user's quota for today, or raise QuotaExceeded.

    Call it inside the transaction that creates the song: if that rolls back, so does this.
    The row's lock (taken by the UPDATE) is held until that transaction ends."""
    now = now or timezone.now()
    day = utc_day(now)
    limits = quota_limits(user)
    DailyUsage.objects.bulk_create([DailyUsage(user=user, day=day)], ignore_conflicts=True)
    row = DailyUsage.objects.filter(user=user, day=day)
    if limits.seconds is not None:
        row = row.filter(seconds__lte=limits.seconds - seconds)
    if limits.songs is not None:
        row = row.filter(songs__lte=limits.songs - 1)
    if not row.update(seconds=F("seconds") + seconds, songs=F("songs") + 1):
        raise QuotaExceeded(quota_get(user=user, now=now), seconds, now=now)
    return quota_get(user=user, now=now)


def quota_refusal_message(quota: Quota, seconds: float, *, now: datetime) -> str:
    if quota.songs_left == 0:
        used = f"You have made {quota.songs_used} songs today, the daily limit"
    else:
        left = duration_words(quota.seconds_left or 0.0)
        used = (
            f"This song is {duration_words(seconds)} and {left} of today's "
            f"{duration_words(quota.limits.seconds or 0.0)} of generated audio is left"
        )
    wait = duration_words((quota.resets_at - now).total_seconds())
    return f"{used}. Your quota resets at 00:00 UTC, in {wait}."


def duration_words(seconds: float) -> str:
    """ "2 h 5 min", "12 min 30 s", "45 s"."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"
