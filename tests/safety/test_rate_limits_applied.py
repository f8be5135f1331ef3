"""Rate limits where they cost us: song generation (API and page), and the previews
(auditions) a room's proposals make, bounded per room whoever proposes. The numbers are the
one table's (webapp/ratelimit.RULES); the rules themselves are tested in
tests/unit/test_ratelimit.py."""

from __future__ import annotations

import types

import pytest

from collab import services as room_services
from webapp import ratelimit
from webapp.ratelimit import RULES, RateLimited


@pytest.fixture
def frozen_clock(monkeypatch):
    """The limiter's clock stopped mid-window, so no window edge passes mid-test."""
    monkeypatch.setattr(ratelimit, "time", types.SimpleNamespace(time=lambda: 1_800_000_000.25))


@pytest.fixture
def a_friends_room(db, alice):
    return room_services.room_create(host=alice, title="Friday", anchor_prompt="warm pads")


def per_minute(domain: str) -> int:
    return dict(RULES[domain])[60]


def test_a_room_takes_a_minutes_worth_of_previews_whoever_proposes(a_friends_room, frozen_clock):
    """Each approved proposal becomes a 5 s preview on the GPU: the room as a whole is
    limited, so many listeners each within their own limit cannot flood it."""
    allowed = per_minute("room_audition")
    for n in range(allowed):
        room_services.proposal_create(
            room=a_friends_room, anon_key=f"listener{n}", text=f"idea {n}"
        )

    with pytest.raises(RateLimited) as refused:
        room_services.proposal_create(room=a_friends_room, anon_key="late", text="one more idea")

    assert refused.value.domain == "room_audition"
    assert refused.value.retry_after_s == pytest.approx(59.75)
    assert a_friends_room.proposals.count() == allowed


def test_proposals_waiting_for_the_host_make_no_previews_and_are_not_counted(
    db, alice, frozen_clock
):
    room = room_services.room_create(
        host=alice, title="Stream", anchor_prompt="warm pads", mode="audience"
    )

    for n in range(per_minute("room_audition") + 5):
        room_services.proposal_create(room=room, anon_key=f"viewer{n}", text=f"idea {n}")

    assert room.proposals.filter(status="pending").count() == per_minute("room_audition") + 5


def test_making_songs_in_a_burst_is_refused_on_the_page_with_429(alice_browser, frozen_clock):
    form = {"prompt": "warm pads", "duration_s": 10, "visibility": "private"}
    for _ in range(per_minute("song_create")):
        assert alice_browser.post("/songs/new/", form).status_code == 302

    response = alice_browser.post("/songs/new/", form)

    assert response.status_code == 429
    assert "retry in 60 s" in response.context["form"].non_field_errors()[0]
