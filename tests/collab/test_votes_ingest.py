"""The vote ingest path (collab.votes): votes checked and written in batches, one upsert per
batch, each acknowledged only once it is stored, and one bad vote never failing the others."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser

from collab import broadcast, services, votes
from collab.models import Vote
from collab.votes import VoteBatcher, VoteCast, VoteRequest, vote_write_batch
from tests.collab.conftest import at
from webapp.errors import NotFound, ServiceError
from webapp.ratelimit import RULES, RateLimited

ANON = AnonymousUser()


def ballot_of(room, *texts, author=None):
    return [
        services.proposal_create(room=room, user=author or room.host, text=text, now=at(1))
        for text in texts
    ]


def request(proposal, *, anon_key=None, user=None, room=None, seconds=2.0) -> VoteRequest:
    return VoteRequest(
        room_id=str((room or proposal.room).pk),
        proposal_id=proposal.pk,
        user=user if user is not None else ANON,
        anon_key=anon_key,
        now=at(seconds),
    )


@pytest.fixture
def strings_and_bass(a_live_room):
    return ballot_of(a_live_room, "add strings", "more bass")


def test_a_batch_of_votes_is_read_once_and_written_in_one_statement(
    make_room, bob, strings_and_bass, django_assert_num_queries
):
    strings, bass = strings_and_bass
    (flute,) = ballot_of(make_room(bob, title="Other room"), "add flute")
    batch = [request(strings if n % 2 else bass, anon_key=f"s{n}") for n in range(40)]
    batch += [request(flute, anon_key=f"s{n}") for n in range(20)]

    # The room, its open round and the proposals: three reads for the batch, one write.
    with django_assert_num_queries(4):
        results = vote_write_batch(batch)

    assert all(isinstance(result, VoteCast) for result in results)
    assert Vote.objects.filter(round=strings.round).count() == 40
    assert Vote.objects.filter(round=flute.round).count() == 20


def test_one_bad_vote_is_refused_with_the_single_vote_message_and_the_rest_are_stored(
    make_room, a_live_room, alice, bob, strings_and_bass
):
    strings, bass = strings_and_bass
    (elsewhere,) = ballot_of(make_room(bob, title="Other room"), "add flute")
    (pending,) = ballot_of(
        make_room(bob, title="Stream", mode="audience"), "add choir", author=alice
    )
    services.proposal_moderate(proposal=bass, user=alice, approve=False)

    results = vote_write_batch(
        [
            request(strings, anon_key="ok-1"),
            request(elsewhere, anon_key="x", room=a_live_room),  # another room's proposal
            request(bass, anon_key="y"),  # taken off the ballot
            request(pending, anon_key="z"),  # waiting for the host
            request(strings),  # no session: only listens
            request(strings, anon_key="ok-2"),
        ]
    )

    stored, *refused, last = results
    assert isinstance(stored, VoteCast) and isinstance(last, VoteCast)
    assert [(type(e), e.code, e.message) for e in refused] == [
        (NotFound, "not_found", "No such proposal in this room."),
        (ServiceError, "rejected", "The host took this proposal off the ballot."),
        (ServiceError, "pending", "This proposal is waiting for the host's approval."),
        (ServiceError, "login_required", "Sign in to vote in this room."),
    ]
    assert sorted(Vote.objects.values_list("voter_key", flat=True)) == ["anon:ok-1", "anon:ok-2"]


def test_votes_for_a_closed_round_or_a_paused_room_are_refused(
    a_live_room, alice, strings_and_bass
):
    strings, _ = strings_and_bass
    services.round_close(room=a_live_room, now=at(20))

    (closed,) = vote_write_batch([request(strings, anon_key="late", seconds=21)])
    services.room_pause(room=a_live_room, user=alice)
    (paused,) = vote_write_batch([request(strings, anon_key="late", seconds=22)])

    assert (closed.code, paused.code) == ("round_closed", "paused")
    assert not Vote.objects.exists()


def test_a_participants_last_vote_in_a_batch_wins(a_live_room, bob, strings_and_bass):
    strings, bass = strings_and_bass

    results = vote_write_batch([request(strings, user=bob), request(bass, user=bob, seconds=3)])

    assert [r.proposal_id for r in results] == [strings.pk, bass.pk]
    vote = Vote.objects.get()
    assert (vote.proposal, vote.voter, vote.voter_key) == (bass, bob, f"user:{bob.pk}")


def test_only_a_vote_that_changes_moves_its_time(a_live_room, bob, strings_and_bass):
    strings, bass = strings_and_bass
    vote_write_batch([request(strings, user=bob, seconds=2)])

    vote_write_batch([request(strings, user=bob, seconds=5)])  # the same vote again
    same = Vote.objects.get()
    vote_write_batch([request(bass, user=bob, seconds=7)])
    changed = Vote.objects.get()

    assert (same.proposal, same.created_at, same.updated_at) == (strings, at(2), at(2))
    assert (changed.proposal, changed.created_at, changed.updated_at) == (bass, at(2), at(7))


def test_the_per_person_vote_limit_counts_every_vote_of_the_batch(a_live_room, strings_and_bass):
    strings, bass = strings_and_bass
    limit = dict(RULES[votes.RATE_DOMAIN])[1]  # votes a second

    results = vote_write_batch(
        [request(strings if n % 2 else bass, anon_key="eager") for n in range(limit + 2)]
    )

    assert all(isinstance(r, VoteCast) for r in results[:limit])
    assert all(isinstance(r, RateLimited) and r.retry_after_s > 0 for r in results[limit:])


def test_a_stored_batch_marks_the_rooms_tally_dirty(a_live_room, strings_and_bass):
    strings, _ = strings_and_bass
    room_id = str(a_live_room.pk)
    broadcast.claim_due(room_id=room_id, now=50.0)  # whatever the proposals marked

    vote_write_batch([request(strings, anon_key="s1")])

    assert broadcast.claim_due(room_id=room_id, now=100.0) == ["tally"]


def test_the_single_vote_service_takes_the_same_path(a_live_room, bob, strings_and_bass):
    strings, _ = strings_and_bass

    vote = services.vote_cast(proposal=strings, user=bob, now=at(3))

    assert (vote.proposal, vote.voter_key, vote.updated_at) == (strings, f"user:{bob.pk}", at(3))
    with pytest.raises(ServiceError) as refused:
        services.vote_cast(proposal=strings, user=ANON)
    assert refused.value.code == "login_required"


# --- The batcher --------------------------------------------------------------------------------


class RecordingWriter:
    """A stand-in for vote_write_batch: records each batch; `bad` proposal ids fail a write."""

    def __init__(self, bad=()) -> None:
        self.batches: list[list[int]] = []
        self.bad = set(bad)

    def __call__(self, requests):
        self.batches.append([r.proposal_id for r in requests])
        if self.bad & {r.proposal_id for r in requests}:
            raise RuntimeError("this batch cannot be written")
        return [VoteCast(1, r.proposal_id, f"anon:{r.anon_key}") for r in requests]


def submit_many(batcher, proposal_ids):
    return [batcher.submit(VoteRequest("room", pid, None, f"s{pid}")) for pid in proposal_ids]


async def answers(futures, timeout=5.0):
    return await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout)


async def test_votes_that_arrive_together_are_written_together():
    writer = RecordingWriter()
    batcher = VoteBatcher(writer, wait_s=0.2, max_size=500)

    casts = await answers(submit_many(batcher, range(1, 31)))

    assert [cast.proposal_id for cast in casts] == list(range(1, 31))
    assert len(writer.batches) <= 2 and sum(map(len, writer.batches)) == 30


async def test_a_batch_holds_at_most_its_maximum():
    writer = RecordingWriter()
    batcher = VoteBatcher(writer, wait_s=0.2, max_size=8)

    await answers(submit_many(batcher, range(1, 21)))

    assert max(map(len, writer.batches)) <= 8


async def test_a_batch_that_fails_is_retried_vote_by_vote():
    writer = RecordingWriter(bad={13})
    batcher = VoteBatcher(writer, wait_s=0.2)

    first, second, bad, last = await answers(submit_many(batcher, [11, 12, 13, 14]))

    assert [first.proposal_id, second.proposal_id, last.proposal_id] == [11, 12, 14]
    assert isinstance(bad, RuntimeError)


async def test_a_vote_is_answered_only_after_its_batch_is_written():
    written = threading.Event()

    def slow_writer(requests):
        time.sleep(0.2)
        written.set()
        return [VoteCast(1, r.proposal_id, "anon:s") for r in requests]

    future = VoteBatcher(slow_writer, wait_s=0.0).submit(VoteRequest("room", 5, None, "s"))

    assert (await asyncio.wait_for(future, 5)).proposal_id == 5 and written.is_set()


@pytest.mark.django_db(transaction=True)
async def test_the_batcher_thread_stores_votes_before_it_answers(a_live_room, strings_and_bass):
    strings, bass = strings_and_bass
    batcher = VoteBatcher(wait_s=0.05)

    futures = [batcher.submit(request(bass, anon_key=f"s{n}")) for n in range(25)]
    futures.append(batcher.submit(request(strings, anon_key="s0", seconds=3)))

    assert all(isinstance(cast, VoteCast) for cast in await answers(futures, timeout=10))
    assert await database_sync_to_async(Vote.objects.filter(proposal=bass).count)() == 24
    last = await database_sync_to_async(Vote.objects.get)(voter_key="anon:s0")
    assert last.proposal_id == strings.pk
