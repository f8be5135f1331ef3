"""Daily generation quotas: seconds of audio and songs per user per UTC day, taken in the
transaction that creates the song, refused with 429 and when the quota resets, and shown in
`GET /api/v1/me/` and on the song-create page. The race for the last slot runs on PostgreSQL
(integration)."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from webapp.safety.models import DailyUsage
from webapp.safety.quotas import (
    QUOTA_EXCEEDED,
    QuotaExceeded,
    quota_consume,
    quota_get,
    utc_day,
)
from webapp.songs import services as song_services
from webapp.songs.models import Song

NOON = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def small_quota(settings):
    """A minute of audio and three songs a day: a few short songs reach it."""
    settings.QUOTA_DAILY_SECONDS = 60
    settings.QUOTA_DAILY_SONGS = 3
    settings.QUOTA_STAFF_EXEMPT = True
    settings.RATELIMIT_ENABLED = False  # the per-minute rate limit is not what is tested here


# --- The rules, on an explicit clock -------------------------------------------------------------


def test_a_song_takes_its_seconds_and_one_song_from_the_day(db, alice, small_quota):
    quota = quota_consume(user=alice, seconds=25, now=NOON)

    assert (quota.seconds_used, quota.songs_used) == (25, 1)
    assert (quota.seconds_left, quota.songs_left) == (35, 2)
    assert quota.resets_at == datetime(2030, 1, 2, tzinfo=UTC)


def test_the_song_that_does_not_fit_in_the_seconds_left_is_refused(db, alice, small_quota):
    quota_consume(user=alice, seconds=50, now=NOON)

    with pytest.raises(QuotaExceeded) as refused:
        quota_consume(user=alice, seconds=11, now=NOON)

    assert refused.value.status_code == 429 and refused.value.code == QUOTA_EXCEEDED
    assert refused.value.retry_after_s == 12 * 3600
    assert refused.value.message == (
        "This song is 11 s and 10 s of today's 1 min of generated audio is left. "
        "Your quota resets at 00:00 UTC, in 12 h."
    )
    # A song that fits exactly still does.
    assert quota_consume(user=alice, seconds=10, now=NOON).seconds_left == 0


def test_the_song_after_the_last_of_the_day_is_refused(db, alice, small_quota):
    for _ in range(3):
        quota_consume(user=alice, seconds=1, now=NOON)

    with pytest.raises(QuotaExceeded) as refused:
        quota_consume(user=alice, seconds=1, now=NOON + timedelta(hours=11, minutes=30))

    assert refused.value.message.startswith("You have made 3 songs today, the daily limit.")
    assert refused.value.retry_after_s == 30 * 60


def test_a_refusal_takes_nothing(db, alice, small_quota):
    quota_consume(user=alice, seconds=50, now=NOON)
    with pytest.raises(QuotaExceeded):
        quota_consume(user=alice, seconds=30, now=NOON)

    usage = DailyUsage.objects.get(user=alice, day=NOON.date())
    assert (usage.seconds, usage.songs) == (50, 1)


def test_the_quota_starts_again_at_midnight_utc(db, alice, small_quota):
    quota_consume(user=alice, seconds=60, now=datetime(2030, 1, 1, 23, 59, tzinfo=UTC))

    quota = quota_consume(user=alice, seconds=60, now=datetime(2030, 1, 2, 0, 0, tzinfo=UTC))

    assert quota.seconds_left == 0 and quota.day.isoformat() == "2030-01-02"


def test_each_user_has_a_quota_of_their_own(db, alice, bob, small_quota):
    quota_consume(user=alice, seconds=60, now=NOON)

    assert quota_consume(user=bob, seconds=60, now=NOON).seconds_left == 0


def test_staff_are_exempt_but_their_usage_is_recorded(db, admin, small_quota, settings):
    for _ in range(5):
        quota = quota_consume(user=admin, seconds=60, now=NOON)

    assert quota.limits.exempt and quota.seconds_left is None and quota.songs_left is None
    assert (quota.seconds_used, quota.songs_used) == (300, 5)
    settings.QUOTA_STAFF_EXEMPT = False
    with pytest.raises(QuotaExceeded):
        quota_consume(user=admin, seconds=1, now=NOON)


def test_a_limit_of_zero_is_no_limit(db, alice, settings):
    settings.QUOTA_DAILY_SECONDS, settings.QUOTA_DAILY_SONGS = 0, 2

    quota_consume(user=alice, seconds=600, now=NOON)
    quota = quota_consume(user=alice, seconds=600, now=NOON)

    assert (quota.seconds_left, quota.songs_left) == (None, 0)


# --- Through the song service, the API and the page ---------------------------------------------


def test_deleting_a_song_does_not_give_its_seconds_back(make_song, alice, small_quota):
    song = make_song(alice, duration_s=40)
    song_services.song_delete(song=song)

    with pytest.raises(QuotaExceeded):
        song_services.song_create(owner=alice, prompt="warm pads", duration_s=30)


def test_a_song_the_service_refuses_costs_no_quota(db, alice, small_quota):
    with pytest.raises(Exception, match="imitate"):
        song_services.song_create(owner=alice, prompt="like Taylor Swift", duration_s=30)

    assert quota_get(user=alice).seconds_used == 0


def test_the_api_answers_429_with_when_the_quota_resets(alice_api, alice, small_quota, error_of):
    assert alice_api.post("/api/v1/songs/", {"prompt": "pads", "duration_s": 50}).status_code == 202
    midnight = datetime.combine(timezone.now().date() + timedelta(days=1), datetime.min.time(), UTC)
    most = (midnight - timezone.now()).total_seconds()

    response = alice_api.post("/api/v1/songs/", {"prompt": "pads", "duration_s": 30})

    least = (midnight - timezone.now()).total_seconds()
    error = error_of(response, 429)
    assert error["code"] == QUOTA_EXCEEDED
    assert "resets at 00:00 UTC" in error["message"]
    assert math.floor(least) - 1 <= int(response["Retry-After"]) <= math.ceil(most)
    assert Song.objects.filter(owner=alice).count() == 1


def test_me_shows_what_is_left_today(alice_api, alice, small_quota):
    alice_api.post("/api/v1/songs/", {"prompt": "pads", "duration_s": 20})

    quota = alice_api.get("/api/v1/me/").json()["quota"]

    today = timezone.now().astimezone(UTC).date()
    assert quota == {
        "day": today.isoformat(),
        "resets_at": f"{(today + timedelta(days=1)).isoformat()}T00:00:00Z",
        "exempt": False,
        "seconds_limit": 60.0,
        "seconds_used": 20.0,
        "seconds_left": 40.0,
        "songs_limit": 3,
        "songs_used": 1,
        "songs_left": 2,
    }


def test_the_create_page_shows_the_quota_and_refuses_past_it(alice_browser, alice, small_quota):
    page = alice_browser.get("/songs/new/").content.decode()
    assert "Left today: 1 min of 1 min of audio and 3 of 3 songs." in page

    form = {"prompt": "pads", "visibility": "private"}
    made = alice_browser.post("/songs/new/", {**form, "duration_s": 45})
    refused = alice_browser.post("/songs/new/", {**form, "duration_s": 30})

    assert made.status_code == 302
    assert refused.status_code == 429
    assert "resets at 00:00 UTC" in refused.context["form"].non_field_errors()[0]
    assert "Left today: 15 s of 1 min of audio and 2 of 3 songs." in refused.content.decode()


# --- The last slot, raced, on PostgreSQL ----------------------------------------------------------


def _on_postgresql() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the race is about PostgreSQL's row locks")


def _in_thread(target, results: list, index: int) -> threading.Thread:
    def run() -> None:
        try:
            results[index] = target()
        except Exception as exc:  # the refusal is the result under test
            results[index] = exc
        finally:
            connections.close_all()

    return threading.Thread(target=run)


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("racers", [2, 4])
def test_concurrent_requests_for_the_last_slot_make_exactly_one_song(
    make_user, small_quota, racers
):
    """Requests released together for a user's last song of the day: one is made, the others
    get 429. Run for several users in turn, so a race that is lost only sometimes shows."""
    _on_postgresql()
    for round_ in range(5):
        user = make_user(f"racer{round_}")
        for n in range(2):
            song_services.song_create(owner=user, prompt=f"song {n}", duration_s=10)
        start = threading.Barrier(racers)

        def request(n: int, user=user, start=start):
            def make():
                start.wait(10)
                return song_services.song_create(owner=user, prompt=f"race {n}", duration_s=10)

            return make

        results: list = [None] * racers
        threads = [_in_thread(request(n), results, n) for n in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

        made = [r for r in results if isinstance(r, Song)]
        refused = [r for r in results if isinstance(r, QuotaExceeded)]
        assert (len(made), len(refused)) == (1, racers - 1), results
        assert Song.objects.filter(owner=user).count() == 3
        usage = DailyUsage.objects.get(user=user, day=utc_day())
        assert (usage.songs, usage.seconds) == (3, 30)
