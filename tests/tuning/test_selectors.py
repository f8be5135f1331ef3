"""The feedback table as the label builder reads it: rows with their targets' lengths, the
listeners whose feedback is dropped, and the like-rate series the admin page plots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from collab import services as room_services
from tests.collab.conftest import make_room, media, write_chunk  # noqa: F401
from webapp.feedback.models import FeedbackEvent
from webapp.tuning.plot import Point, like_rate_svg
from webapp.tuning.selectors import (
    bucket_for,
    dropped_actors,
    feedback_rows,
    like_rate_series,
)

HOUR = timedelta(hours=1)


def event(actor, target_type, target_id, kind="play_start", version="v1", at=None, **fields):
    return FeedbackEvent.objects.create(
        kind=kind,
        actor=actor,
        target_type=target_type,
        target_id=target_id,
        model_version=version,
        server_ts=at or timezone.now(),
        **fields,
    )


@pytest.mark.django_db
def test_rows_carry_their_targets_length_and_stay_in_their_window(
    a_public_song,
    make_room,  # noqa: F811
    write_chunk,  # noqa: F811
    alice,
):
    room = make_room(alice, visibility="public")
    chunk = room_services.chunk_record(
        room=room, sequence=0, start_s=0.0, duration_s=1.0, audio=write_chunk(room, 0, 1.0)
    )
    now = timezone.now()
    event("user:1", "song", str(a_public_song.pk), at=now - HOUR)
    event("user:1", "chunk", str(chunk.pk), kind="thumb_up", value=1.0, at=now - HOUR)
    event("user:1", "audition", "999999", at=now - HOUR)  # gone: no length known
    event("user:1", "song", str(a_public_song.pk), at=now - 5 * HOUR)  # before the window
    rows = feedback_rows(since=now - 2 * HOUR, until=now)
    assert sorted((r.target_type, r.duration_s) for r in rows) == [
        ("audition", None),
        ("chunk", 1.0),
        ("song", a_public_song.audio_duration_s),
    ]
    assert all(isinstance(r.server_ts, float) for r in rows)
    only_v2 = feedback_rows(since=now - 2 * HOUR, until=now, versions=["v2"])
    assert only_v2 == []


@pytest.mark.django_db
def test_banned_suspended_and_closed_accounts_are_dropped_for_the_whole_window(
    alice, bob, make_user, admin
):
    from webapp.moderation.models import Sanction

    carol, dave = make_user("carol"), make_user("dave")
    now = timezone.now()
    Sanction.objects.create(user=alice, kind="ban", reason="spam", starts_at=now - HOUR)
    Sanction.objects.create(
        user=bob, kind="suspension", reason="abuse", starts_at=now - 3 * HOUR, ends_at=now - HOUR
    )
    Sanction.objects.create(  # lifted: their feedback counts again
        user=carol, kind="ban", reason="mistake", starts_at=now - HOUR, lifted_at=now
    )
    dave.is_active = False
    dave.save()
    window = dict(since=now - 2 * HOUR, until=now)
    assert dropped_actors(**window) == {f"user:{alice.pk}", f"user:{bob.pk}", f"user:{dave.pk}"}
    # bob's suspension ended before this window began
    assert f"user:{bob.pk}" not in dropped_actors(since=now - 0.5 * HOUR, until=now)


@pytest.mark.django_db
def test_the_like_rate_series_counts_thumbs_per_version_and_bucket():
    t0 = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    for i, kind in enumerate(["thumb_up", "thumb_up", "thumb_down"]):
        event(f"user:{i}", "song", "a", kind=kind, version="v1", at=t0 + timedelta(minutes=5))
    event("user:9", "song", "b", kind="thumb_down", version="v2", at=t0 + timedelta(hours=2))
    event("user:9", "song", "b", kind="complete", version="v2", at=t0 + timedelta(hours=2))
    bucket, series = like_rate_series(since=t0, until=t0 + timedelta(days=1), bucket="hour")
    assert bucket == "hour"
    assert series == {"v1": [(t0, 2, 3)], "v2": [(t0 + timedelta(hours=2), 0, 1)]}


def test_buckets_grow_with_the_period():
    assert bucket_for(timedelta(minutes=20)) == "minute"
    assert bucket_for(timedelta(hours=12)) == "hour"
    assert bucket_for(timedelta(days=7)) == "day"
    assert bucket_for(timedelta(days=90)) == "week"


def test_the_chart_is_labelled_escaped_and_has_a_point_per_bucket():
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    svg = like_rate_svg(
        {
            "base <v1>": [Point(t0, 3, 4), Point(t0 + HOUR, 1, 4)],
            "tuned": [Point(t0 + HOUR, 2, 2)],
        },
        title="Like rate & more",
        desc="Two versions",
    )
    assert svg.startswith("<svg") and 'role="img"' in svg
    assert '<title id="lr-title">Like rate &amp; more</title>' in svg
    assert "base &lt;v1&gt;" in svg and "<v1>" not in svg
    assert svg.count("<circle") == 3 and svg.count("<polyline") == 1  # one line needs 2 points
    assert "75% (3 of 4 thumbs up)" in svg
    empty = like_rate_svg({}, title="t", desc="d")
    assert "No thumbs in this period." in empty
