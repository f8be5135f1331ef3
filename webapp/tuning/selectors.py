"""Reads for the tuning loop: which version serves what, and the feedback table as label rows."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.db.models.functions import Trunc
from django.utils import timezone

from collab.models import Audition, Chunk
from generation.interface import takes_checkpoints
from generation.tuning.canary import assigned
from generation.tuning.labels import EventRow
from webapp.feedback.models import FeedbackEvent
from webapp.songs.models import Song
from webapp.tuning.models import ModelVersion

# -- which version serves --------------------------------------------------------------------


def version_serving() -> tuple[ModelVersion | None, ModelVersion | None]:
    """(the promoted version, the version in canary), either None when there is none."""
    promoted = canary = None
    for version in ModelVersion.objects.filter(
        status__in=[ModelVersion.Status.PROMOTED, ModelVersion.Status.CANARY]
    ):
        if version.status == ModelVersion.Status.PROMOTED:
            promoted = version
        else:
            canary = version
    return promoted, canary


def version_for_unit(*, unit_id: str) -> ModelVersion | None:
    """The version that makes a new song request or room: the canary for its share of units (a
    fixed hash of the unit's id), the promoted version for the rest; None when no version is
    registered or the configured backend cannot serve versions (then the backend's default)."""
    if not takes_checkpoints(settings.GENERATION_BACKEND):
        return None
    promoted, canary = version_serving()
    if canary is not None and assigned(unit_id, canary.canary_share, canary.name):
        return canary
    return promoted


def version_checkpoint(name: str) -> str | None:
    """The checkpoint of a registered version by name; None for names the registry does not
    know (the backend's default model, or a version made elsewhere)."""
    if not name or not takes_checkpoints(settings.GENERATION_BACKEND):
        return None
    return ModelVersion.objects.filter(name=name).values_list("checkpoint", flat=True).first()


# -- the feedback table as the label builder's rows ------------------------------------------

EVENT_FIELDS = (
    "kind",
    "actor",
    "target_type",
    "target_id",
    "value",
    "position_s",
    "choice_set",
    "slot",
    "model_version",
    "seed",
    "conditioning",
    "server_ts",
)


def feedback_rows(
    *, since: datetime, until: datetime, versions: Iterable[str] | None = None
) -> list[EventRow]:
    """Every event of the window [since, until) as an EventRow, with its target's length.

    ``versions``: only events on items of these model versions (a canary's evaluation)."""
    events = FeedbackEvent.objects.filter(server_ts__gte=since, server_ts__lt=until)
    if versions is not None:
        events = events.filter(model_version__in=list(versions))
    rows = list(events.order_by("server_ts", "id").values_list(*EVENT_FIELDS))
    durations = target_durations({(r[2], r[3]) for r in rows})
    return [
        EventRow(
            kind=kind,
            actor=actor,
            target_type=target_type,
            target_id=target_id,
            value=value,
            position_s=position_s,
            choice_set=choice_set,
            slot=slot,
            model_version=model_version,
            seed=seed,
            conditioning=conditioning or {},
            server_ts=server_ts.timestamp(),
            duration_s=durations.get((target_type, target_id)),
        )
        for (
            kind,
            actor,
            target_type,
            target_id,
            value,
            position_s,
            choice_set,
            slot,
            model_version,
            seed,
            conditioning,
            server_ts,
        ) in rows
    ]


def target_durations(targets: set[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """Seconds of audio of each (target type, id): songs, room chunks, previews."""
    ids: dict[str, list[str]] = defaultdict(list)
    for target_type, target_id in targets:
        ids[target_type].append(target_id)
    out: dict[tuple[str, str], float] = {}
    songs = [i for i in ids.get(FeedbackEvent.TargetType.SONG, []) if is_uuid(i)]
    for pk, heard, asked in Song.objects.filter(pk__in=songs).values_list(
        "pk", "audio_duration_s", "duration_s"
    ):
        out[(FeedbackEvent.TargetType.SONG, str(pk))] = heard or asked
    for target_type, model in (
        (FeedbackEvent.TargetType.CHUNK, Chunk),
        (FeedbackEvent.TargetType.AUDITION, Audition),
    ):
        pks = [int(i) for i in ids.get(target_type, []) if i.isdigit() and len(i) <= 18]
        for pk, seconds in model.objects.filter(pk__in=pks).values_list("pk", "duration_s"):
            if seconds:
                out[(target_type, str(pk))] = seconds
    return out


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def dropped_actors(*, since: datetime, until: datetime) -> set[str]:
    """Listeners whose feedback the loop must not learn from: accounts closed (inactive) and
    accounts under a sanction in force at any time in the window (moderation: bans and
    suspensions), so an abuser's events are dropped whole, not only those after the ban.

    Rate limits need no entry here: events over a limit are refused at the door and never
    reach the table."""
    users = set(get_user_model().objects.filter(is_active=False).values_list("pk", flat=True))
    users |= sanctioned_users(since=since, until=until)
    return {f"user:{pk}" for pk in users}


def sanctioned_users(*, since: datetime, until: datetime) -> set[int]:
    """Users banned or suspended at some time in [since, until), from webapp.moderation when
    that app is installed (nothing otherwise)."""
    if not apps.is_installed("webapp.moderation"):
        return set()
    Sanction = apps.get_model("moderation", "Sanction")  # noqa: N806
    in_window = Sanction.objects.filter(lifted_at__isnull=True, starts_at__lt=until).filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=since)
    )
    return set(in_window.values_list("user_id", flat=True))


# -- what the admin page plots ---------------------------------------------------------------

BUCKETS = (("minute", 60), ("hour", 3600), ("day", 86400), ("week", 7 * 86400))


def bucket_for(span: timedelta, points: int = 24) -> str:
    """The smallest of minute, hour, day, week that puts a span into about `points` buckets."""
    for name, seconds in BUCKETS:
        if span.total_seconds() / seconds <= points:
            return name
    return BUCKETS[-1][0]


def like_rate_series(
    *, since: datetime, until: datetime | None = None, bucket: str | None = None
) -> tuple[str, dict[str, list[tuple[datetime, int, int]]]]:
    """(bucket, {version: [(bucket start, thumbs up, thumbs given)]}) of thumbs on songs, room
    chunks and previews, per model version over time; only buckets with thumbs appear."""
    until = until or timezone.now()
    bucket = bucket or bucket_for(until - since)
    thumbs = (
        FeedbackEvent.objects.filter(
            server_ts__gte=since,
            server_ts__lt=until,
            kind__in=[FeedbackEvent.Kind.THUMB_UP, FeedbackEvent.Kind.THUMB_DOWN],
        )
        .exclude(model_version="")
        .annotate(at=Trunc("server_ts", bucket))
        .values("model_version", "at")
        .annotate(
            up=Count("id", filter=Q(kind=FeedbackEvent.Kind.THUMB_UP)),
            total=Count("id"),
        )
        .order_by("model_version", "at")
    )
    series: dict[str, list[tuple[datetime, int, int]]] = defaultdict(list)
    for row in thumbs:
        series[row["model_version"]].append((row["at"], row["up"], row["total"]))
    return bucket, dict(series)
