"""What the database itself refuses, whatever code (or admin) tries to write."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from collab.models import Chunk, Proposal, Room, Round, Vote
from tests.collab.conftest import T0, at


def refused(make) -> bool:
    try:
        with transaction.atomic():
            make()
    except IntegrityError:
        return True
    return False


def a_room(host, **fields) -> Room:
    fields = {"title": "Raw", "slug": f"raw-{Room.objects.count()}", "seed": 1, **fields}
    return Room.objects.create(host=host, anchor_prompt="drones", **fields)


@pytest.mark.parametrize(
    "fields",
    [
        {"round_length_s": 4},
        {"round_length_s": 121},
        {"slow_mode_s": 301},
        {"min_account_age_days": 366},
        {"status": "ended"},  # without ended_at
        {"status": "live", "ended_at": T0},
    ],
)
def test_rooms_out_of_range_are_refused(alice, fields):
    assert refused(lambda: a_room(alice, **fields))


def test_slugs_are_unique(alice):
    a_room(alice, slug="jam")

    assert refused(lambda: a_room(alice, slug="jam"))


def test_a_room_has_one_open_round_and_each_number_once(a_live_room):
    def another(number, status="open"):
        closed_at = T0 if status == "closed" else None
        return Round.objects.create(
            room=a_live_room,
            number=number,
            status=status,
            opened_at=T0,
            ends_at=at(20),
            closed_at=closed_at,
        )

    assert refused(lambda: another(2))  # round 1 is open
    assert refused(lambda: another(1, "closed"))  # number 1 is taken
    assert not refused(lambda: another(2, "closed"))


def test_a_round_ends_after_it_opens_and_is_closed_exactly_when_it_has_a_close_time(
    a_live_room,
):
    def a_round(**fields):
        values = {"room": a_live_room, "number": 9, "status": "closed", "opened_at": T0}
        return Round.objects.create(**{**values, "ends_at": at(20), "closed_at": at(20), **fields})

    assert refused(lambda: a_round(ends_at=at(-1)))
    assert refused(lambda: a_round(closed_at=None))
    assert refused(lambda: a_round(status="open"))  # another open one, and with a close time


def test_a_proposal_has_text(a_live_room, alice):
    round_ = Round.objects.get(room=a_live_room)

    assert refused(
        lambda: Proposal.objects.create(
            room=a_live_room, round=round_, author_key="user:1", kind="prompt", text=""
        )
    )


def test_one_vote_per_participant_per_round(a_live_room, alice):
    round_ = Round.objects.get(room=a_live_room)
    proposal = Proposal.objects.create(
        room=a_live_room, round=round_, author_key="user:1", kind="prompt", text="strings"
    )
    Vote.objects.create(round=round_, proposal=proposal, voter=alice, voter_key="user:1")

    assert refused(lambda: Vote.objects.create(round=round_, proposal=proposal, voter_key="user:1"))
    assert not refused(
        lambda: Vote.objects.create(round=round_, proposal=proposal, voter_key="anon:abc")
    )


@pytest.mark.parametrize(
    "fields",
    [{"sequence": 0}, {"sequence": 1, "duration_s": 0.0}, {"sequence": 1, "start_s": -0.5}],
)
def test_chunks_are_numbered_once_and_take_up_time(a_live_room, fields):
    Chunk.objects.create(room=a_live_room, sequence=0, start_s=0, duration_s=2, audio="a.ogg")
    values = {"start_s": 2.0, "duration_s": 2.0, **fields}

    assert refused(lambda: Chunk.objects.create(room=a_live_room, audio="b.ogg", **values))
