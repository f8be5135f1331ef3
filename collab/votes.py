"""The vote ingest path: votes are checked and written in batches, and acknowledged once durable.

A room in audience mode takes thousands of votes a second. Writing each in its own transaction
would cost a few queries per vote; here a per-process :class:`VoteBatcher` (one thread) gathers
the votes that arrive within `BATCH_WAIT_S` (at most `BATCH_MAX` of them) and hands them to
:func:`vote_write_batch`, which

1. reads what the rules need once per batch, not per vote: each room, its open round, and the
   proposals voted for (three queries, whatever the number of rooms);
2. checks every vote with the rules of a single vote (`vote_check`: the same codes and
   messages as collab.services.vote_cast always gave) and counts it against the per-person
   `room_vote` rate limit (one round trip to Redis for the batch: webapp.ratelimit);
3. writes the accepted ones with ONE upsert (`INSERT ... ON CONFLICT (round, voter_key) DO
   UPDATE`; on PostgreSQL the rows travel as six arrays): a participant's later vote in a round
   replaces their earlier one, and only a vote that changes moves `updated_at` (the tally's tie
   order);
4. once that statement has committed, marks each room's tally dirty (collab.broadcast): the
   consumers' 4 Hz ticker sends the count, recounted from these durable rows.

Only then is each vote's future resolved, and the consumer sends its `ack`: a vote that was
acknowledged is in PostgreSQL, so round_close, which counts the rows, counts it. A batch whose
write fails is retried vote by vote, so one bad vote never fails the others; a vote that still
fails gets its own error.

The live tally is the rows themselves, recounted by whichever process claims a room's quarter
second (collab.broadcast.claim_due): one aggregate query per room per 250 ms, exact, and nothing
to drift or to rebuild after a Redis restart. Redis holds the dirty marks and the slot claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import close_old_connections, connection
from django.utils import timezone

from collab import broadcast, services  # services.vote_cast delegates here: no cycle
from collab.models import Proposal, Room, Round, Vote
from collab.selectors import participant_key
from webapp import metrics
from webapp.errors import NotFound, ServiceError
from webapp.ratelimit import RateLimited, ratelimit_check_many

logger = logging.getLogger(__name__)

BATCH_WAIT_S = 0.01  # a batch gathers votes this long after its first one...
BATCH_MAX = 500  # ...or until it holds this many
RATE_DOMAIN = "room_vote"


@dataclass(frozen=True)
class VoteRequest:
    """One participant's vote as it arrives: for `proposal_id`, in the room `room_id` (the
    room of the socket it came through)."""

    room_id: str
    proposal_id: int
    user: object = None  # the account, or None / AnonymousUser for a signed-out listener
    anon_key: str | None = None  # the signed-out listener's session key
    now: datetime | None = None  # when it was cast (the vote's created_at / updated_at)

    @property
    def actor(self) -> str | None:
        return participant_key(self.user, self.anon_key)


@dataclass(frozen=True)
class VoteCast:
    """A vote that is stored: the participant's vote in that round is now for `proposal_id`."""

    round_id: int
    proposal_id: int
    voter_key: str


@dataclass
class Ballots:
    """What the rules need, read once per batch: rooms by str(id), each room's open round,
    and the proposals voted for (id -> (room id, status, round id))."""

    rooms: dict[str, Room] = field(default_factory=dict)
    open_rounds: dict[str, int] = field(default_factory=dict)
    proposals: dict[int, tuple[str, str, int]] = field(default_factory=dict)

    @classmethod
    def read(cls, requests: Sequence[VoteRequest]) -> Ballots:
        room_ids = {str(r.room_id) for r in requests}
        rooms = {str(room.pk): room for room in Room.objects.filter(pk__in=room_ids)}
        rounds = Round.objects.filter(room_id__in=room_ids, status=Round.Status.OPEN)
        proposals = Proposal.objects.filter(pk__in={r.proposal_id for r in requests})
        return cls(
            rooms=rooms,
            open_rounds={str(room): pk for room, pk in rounds.values_list("room_id", "pk")},
            proposals={
                pk: (str(room), status, round_id)
                for pk, room, status, round_id in proposals.values_list(
                    "pk", "room_id", "status", "round_id"
                )
            },
        )


# --- Checks (they raise and change nothing) ---------------------------------------------------


def vote_check_proposal(ballots: Ballots, request: VoteRequest) -> tuple[Room, str, int]:
    """(room, status, round id) of the voted proposal, if it is one of the socket's room's."""
    room = ballots.rooms.get(str(request.room_id))
    found = ballots.proposals.get(request.proposal_id)
    if room is None or found is None or found[0] != str(request.room_id):
        raise NotFound("No such proposal in this room.")
    return room, found[1], found[2]


def vote_check(ballots: Ballots, request: VoteRequest) -> VoteCast:
    """The vote to store, if the room's rules take it (rate limits aside: they are counted
    for the whole batch at once). The rules and their messages are those of a single vote:
    the room is live and lets this participant vote, the proposal is on the ballot, and its
    round is the open one."""
    room, status, round_id = vote_check_proposal(ballots, request)
    actor = services.participant_check_may_take_part(
        room, request.user, request.anon_key, to="vote"
    )
    if status == Proposal.Status.PENDING:
        raise ServiceError("This proposal is waiting for the host's approval.", code="pending")
    if status == Proposal.Status.REJECTED:
        raise ServiceError("The host took this proposal off the ballot.", code="rejected")
    if ballots.open_rounds.get(str(request.room_id)) != round_id:
        raise ServiceError(
            "Voting on that round has closed; the ballot has moved on.", code="round_closed"
        )
    return VoteCast(round_id=round_id, proposal_id=request.proposal_id, voter_key=actor)


def _rate_limited(keys: list[str | None]) -> dict[int, Exception]:
    """Refusals of the per-person vote limit, by request index (one round trip for them all)."""
    counted = [i for i, key in enumerate(keys) if key is not None]
    decisions = ratelimit_check_many(domain=RATE_DOMAIN, keys=[keys[i] for i in counted])
    return {
        i: RateLimited(RATE_DOMAIN, decision.retry_after_s)
        for i, decision in zip(counted, decisions, strict=True)
        if not decision.allowed
    }


def votes_check(ballots: Ballots, requests: Sequence[VoteRequest]) -> list[VoteCast | Exception]:
    """Each request's vote to store, or the error that refuses it, in order.

    A vote for a proposal that is not in the room does not count against the rate limit (as
    the consumer always answered it before the service saw it); every other one does."""
    results: list[VoteCast | Exception | None] = [None] * len(requests)
    keys: list[str | None] = [None] * len(requests)
    for i, request in enumerate(requests):
        try:
            vote_check_proposal(ballots, request)
            keys[i] = request.actor
        except ServiceError as exc:
            results[i] = exc
    refused = _rate_limited(keys)
    for i, request in enumerate(requests):
        if results[i] is not None:
            continue
        if i in refused:
            results[i] = refused[i]
            continue
        try:
            results[i] = vote_check(ballots, request)
        except ServiceError as exc:
            results[i] = exc
    return results


# --- The write --------------------------------------------------------------------------------


COLUMNS = "(round_id, proposal_id, voter_id, voter_key, created_at, updated_at)"
# PostgreSQL takes the rows as six arrays (six parameters, whatever the batch's size: binding
# thousands of scalars costs more than the write); SQLite as a VALUES list.
PG_ROWS = (
    "SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::text[],"
    " %s::timestamptz[], %s::timestamptz[])"
)


def _upsert(rows: list[tuple]) -> tuple[str, list]:
    """The upsert of these rows (in COLUMNS' order) and its parameters. Only the table's name
    and placeholders go into the text."""
    table = connection.ops.quote_name(Vote._meta.db_table)
    if connection.vendor == "postgresql":
        source, params = PG_ROWS, [list(column) for column in zip(*rows, strict=True)]
    else:
        source = "VALUES " + ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
        params = [value for row in rows for value in row]
    sql = (
        f"INSERT INTO {table} {COLUMNS} {source}"  # noqa: S608  # nosec B608 # names, placeholders
        " ON CONFLICT (round_id, voter_key) DO UPDATE"
        " SET proposal_id = excluded.proposal_id, updated_at = excluded.updated_at"
        f" WHERE {table}.proposal_id <> excluded.proposal_id"
    )
    return sql, params


def votes_store(casts: Sequence[tuple[VoteCast, VoteRequest]]) -> None:
    """Write the votes in one statement (an upsert PostgreSQL and SQLite both speak).

    A participant's vote replaces their earlier one in the round (Vote's unique (round,
    voter_key)); a vote for what they already voted for changes nothing. Within the batch, a
    participant's last vote wins, as if each had been written in turn."""
    latest: dict[tuple[int, str], tuple[VoteCast, VoteRequest]] = {}
    for cast, request in casts:
        latest[(cast.round_id, cast.voter_key)] = (cast, request)
    rows = []
    for cast, request in latest.values():
        voter = request.user.pk if cast.voter_key.startswith("user:") else None
        moment = connection.ops.adapt_datetimefield_value(request.now)
        rows.append((cast.round_id, cast.proposal_id, voter, cast.voter_key, moment, moment))
    sql, params = _upsert(rows)
    with connection.cursor() as cursor:  # one statement: atomic on its own
        cursor.execute(sql, params)


def vote_write_batch(requests: Sequence[VoteRequest]) -> list[VoteCast | Exception]:
    """Check and store a batch of votes; each request's stored vote, or its error, in order.

    The rooms whose votes changed have their tally marked dirty once the write has committed.
    Raises only when the write itself fails (the batcher then retries vote by vote)."""
    if not requests:
        return []
    requests = [r if r.now is not None else _stamped(r) for r in requests]
    results = votes_check(Ballots.read(requests), requests)
    accepted = [(c, r) for c, r in zip(results, requests, strict=True) if isinstance(c, VoteCast)]
    if accepted:
        votes_store(accepted)
        metrics.VOTES.inc(len(accepted))
        for room_id in sorted({str(r.room_id) for _, r in accepted}):
            broadcast.tally_changed(room_id=room_id)
    return results


def _stamped(request: VoteRequest) -> VoteRequest:
    return VoteRequest(
        request.room_id, request.proposal_id, request.user, request.anon_key, timezone.now()
    )


# --- The batcher: one per process ---------------------------------------------------------------


Pending = tuple[VoteRequest, asyncio.Future]


class VoteBatcher:
    """Gathers votes from every consumer of this process and writes them in batches, in a
    thread of its own (`write` runs there, with that thread's database connection).

    `submit`, called on an event loop, returns a future of that loop which resolves to the
    stored VoteCast, or to the error that refused the vote, once the batch holding it has
    committed. Each batch wakes each loop once, however many votes it answers."""

    def __init__(
        self, write=vote_write_batch, *, wait_s: float = BATCH_WAIT_S, max_size: int = BATCH_MAX
    ) -> None:
        self.write = write
        self.wait_s = wait_s
        self.max_size = max_size
        self._queue: queue.SimpleQueue[Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, request: VoteRequest) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        self._queue.put((request, future))
        self._ensure_running()
        return future

    def _ensure_running(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="chorus-votes", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = self._gather()
            try:
                self._answer(batch, self._write(batch))
            finally:
                close_old_connections()  # as after a request: stale or broken ones go

    def _gather(self) -> list[Pending]:
        """The next batch: the first vote to arrive, and those that follow within `wait_s`."""
        batch = [self._queue.get()]
        deadline = time.monotonic() + self.wait_s
        while len(batch) < self.max_size:
            left = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=left) if left > 0 else self._queue.get(False))
            except queue.Empty:
                break
        return batch

    def _write(self, batch: list[Pending]) -> list[VoteCast | Exception]:
        requests = [request for request, _ in batch]
        try:
            return self.write(requests)
        except Exception:
            logger.warning(
                "votes: a batch of %d failed; retrying one by one", len(batch), exc_info=True
            )
            return [self._write_one(request) for request in requests]

    def _write_one(self, request: VoteRequest) -> VoteCast | Exception:
        close_old_connections()  # a connection the failed batch broke is replaced
        try:
            return self.write([request])[0]
        except Exception as exc:  # the consumer answers it with an error and logs it
            return exc

    @staticmethod
    def _answer(batch: list[Pending], results: list[VoteCast | Exception]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list] = {}
        for (_, future), result in zip(batch, results, strict=True):
            by_loop.setdefault(future.get_loop(), []).append((future, result))
        for loop, answers in by_loop.items():
            # A loop that has closed has nobody waiting for its answers.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, answers)


def _settle(answers: list[tuple[asyncio.Future, VoteCast | Exception]]) -> None:
    """On the submitter's loop: resolve each future (one whose socket went is cancelled)."""
    for future, result in answers:
        if future.done():
            continue
        if isinstance(result, Exception):
            future.set_exception(result)
        else:
            future.set_result(result)


_batcher: VoteBatcher | None = None
_batcher_lock = threading.Lock()


def default_batcher() -> VoteBatcher:
    global _batcher
    with _batcher_lock:
        if _batcher is None:
            _batcher = VoteBatcher()
        return _batcher


async def vote_submit(request: VoteRequest) -> VoteCast:
    """Cast a vote through this process's batcher; returns once it is durable (raises the
    ServiceError or RateLimited that refused it). For consumers, on the server's event loop."""
    return await default_batcher().submit(request)
