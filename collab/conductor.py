"""The conductor: keeps every live room that has listeners one or two chunks ahead of its
playback clock, and closes the rounds that are due (docs/rooms.md).

A room's music is a timeline: chunk n plays at `timeline_origin + start_s` for `duration_s`
(docs/protocol.md). Each *tick* the conductor

1. closes the due rounds of rooms with listeners (collab.services.round_close), so the steering
   they vote for goes into the very next chunk asked for;
2. *collects*: for each room with a chunk in flight, looks for the finished chunk in the
   generation store (`generation.tasks.store()`, key `chunk:<stream>:<sequence>`, written by
   `run_room_jobs` with the room's new state in one transaction) and records it
   (collab.services.chunk_record, which announces the `chunk` frame);
3. *plans* (`plan`, pure): which rooms need their next chunk now, at what sequence and start;
4. *dispatches* one batched call for all of them: `generation.tasks.rooms_next_chunks` on
   queue `gpu` in service mode, `generation.tasks.run_room_jobs` in this process otherwise.

Results come back through the store, not through Celery: there is no result backend and no
callback task, and the same path works for the in-process default. What is in flight is kept in
the cache (`room:<id>:conductor`), so a tick holds no state of its own: a conductor that dies is
replaced by another (or by beat's fallback tick) that carries on where it stopped.

Sticky rooms (service mode): each result names the worker that made it (`worker`, kept in the
chunk's provenance), and that worker keeps the room's session resident (generation/resident.py).
The room's next chunk goes back to it, on the worker's own queue (Celery's `worker_direct`
queue, `<node name>.dq2`, which every worker consumes besides `gpu`): `route_batches` groups the
rooms due by worker while it has fewer than `CeleryDispatcher.worker_batch` rooms in flight
(what a worker makes in real time). The rest, rooms with no known worker, and rooms whose worker
let a job down lately (`Policy.worker_probation_s`) go to the shared queue `gpu` in messages of
at most that many, and then stick to whoever took them.

A job that does not come back (its worker died, its message was lost) is asked for again with
the same (room, sequence), on the shared queue: once it is older than a few of the measured
round trips *and* the room's lead is getting short (`retry_after`, `plan_room`), or in any case
after `Policy.stale_after_s`. Idempotent, because the store answers a repeated job with the
stored chunk, and a worker that picks the room up continues from the last stored state; if both
copies run, the first to store its result wins (result and state together, generation.tasks),
so a duplicate costs compute, never a fork in the music. The room misses at most that chunk.
After `Policy.max_attempts` the room starts a fresh *stream* (below) rather than waiting on one
that cannot go on.

Streams: the engine continues a room's stream from its state in the store, which expires an
hour after its last chunk (generation.tasks.RESULT_TTL_S) and is gone after a restart of the
embedded default. A room whose state is presumed gone, or whose jobs keep failing, continues its
timeline on a new stream keyed `<room>/s<first sequence>`, under the room's steering at once.
The first stream is keyed by the room's id, so its audio lies at `rooms/<room>/<sequence>.ogg`
under MEDIA_ROOT. Every chunk's provenance names its stream.

Hard cuts: a round closed by the host's hard cut (Round.cut) makes the next chunk a `reset`
job; chunks carry the number of the latest cut they include (`cut_round` in their provenance).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import json
import logging
import math
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections

from collab import bell, broadcast, selectors, services
from collab.models import Audition, Chunk, Room
from collab.presence import presence_counts
from generation import tasks as generation_tasks
from webapp import metrics
from webapp.errors import ServiceError

logger = logging.getLogger(__name__)

TICK_S = 0.25  # the loop's period when nothing rings its bell (collab/bell.py)
MIN_TICK_GAP_S = 0.02  # ...and the least time between two ticks when something does
FLIGHT_TTL_S = 3600
MAX_ROUNDS_PER_TICK = 200  # a backlog of due rounds is worked off over a few ticks
MAX_SEED = 2**31 - 1
LOCK_TTL_S = 5.0  # a conductor that stops renewing its lock hands over after this long
STANDBY_S = 1.0  # how often a conductor without the lock tries to take it


# --- Planning: pure functions of the rooms' clocks ---------------------------------------------


@dataclass(frozen=True)
class Policy:
    # Ask for the next chunk when less audio than this is scheduled ahead: with 1 s chunks,
    # 1.5 to 2.5 s lie ahead, which covers a batch's time and a listener's fetch.
    lead_s: float = 1.5
    start_lead_s: float = 1.0  # a new stretch of timeline starts this far ahead of now
    late_margin_s: float = 0.3  # a chunk that comes back after its start moves this far ahead
    # Steering changed: remake the first chunk made under the old steering that starts at least
    # this far ahead of the playback clock (there is time to make it and fetch it)...
    # (rewind_margin_s is where it starts; then it follows the measured round trips of batches,
    # see rewind_margin, between the two bounds)
    rewind_margin_s: float = 0.4
    min_rewind_margin_s: float = 0.25
    max_rewind_margin_s: float = 1.5
    rewind_slack_s: float = 0.05
    min_round_trips: int = 5  # batches measured before the margin follows them
    remake_factor: float = 1.6  # a remake's round trip to a chunk's, until remakes are measured
    # ...and put the remake in its place if it is back while the old one is this far from
    # starting, or from its splice point (else the old one plays and the next is remade).
    replace_margin_s: float = 0.15
    # Remake the chunk sounding at the margin from there on (a splice), when this much of it
    # is left after that point; else the next chunk is remade whole.
    splice: bool = True
    min_splice_tail_s: float = 0.2
    audition_s: float = 5.0  # a proposal's preview
    max_auditions: int = 8  # previews asked for in one batch
    stale_after_s: float = 6.0  # a job not back after this long is asked for again...
    max_attempts: int = 3  # ...up to this many times; then the room starts a fresh stream
    # A first ask is asked again sooner (see retry_after): once it is older than this many
    # measured round trips (at least min_retry_s; retry_unmeasured_s before min_round_trips
    # batches came back) while less than retry_lead_s of audio lies ahead of the clock.
    retry_rtt_factor: float = 2.0
    min_retry_s: float = 0.5
    retry_unmeasured_s: float = 2.0
    retry_lead_s: float = 1.0
    # A worker whose job had to be asked again gets no rooms of its own for this long.
    worker_probation_s: float = 30.0
    # A room silent this long has lost its stream state (the store keeps it for an hour).
    state_ttl_s: float = generation_tasks.RESULT_TTL_S - 300
    max_batch: int = 128  # rooms in one batched call; the rest go in the next tick's
    job_expires_s: float = 60.0  # a gpu message older than this is dropped, not run


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class LastChunk:
    sequence: int
    start_s: float
    duration_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass(frozen=True)
class InFlight:
    sequence: int
    start_s: float
    asked_at: float  # server time, unix seconds
    attempts: int = 1


@dataclass(frozen=True)
class RoomClock:
    """What planning needs to know of a room."""

    room: str
    status: str  # live, paused, ended
    listeners: int
    origin: float  # timeline_origin, unix seconds
    last: LastChunk | None = None  # the latest recorded chunk
    in_flight: InFlight | None = None


@dataclass(frozen=True)
class Want:
    """A room's next chunk, to be asked for now."""

    room: str
    sequence: int
    start_s: float  # on the room's timeline
    lead_s: float  # audio scheduled ahead of the playback clock now (lower is more urgent)
    attempt: int = 1  # above 1: the job for this sequence vanished and is asked for again


def plan_room(
    room: RoomClock,
    now: float,
    policy: Policy = DEFAULT_POLICY,
    retry_after_s: float | None = None,
) -> Want | None:
    """The room's next chunk if it needs one now; None otherwise.

    Nothing for a room that is paused, ended or empty. Otherwise the next chunk is asked for
    once less than `lead_s` of audio lies ahead of the playback clock (`now - origin`), and
    starts where the last one ends, or `start_lead_s` from now if that moment is past: a room
    that comes back after a silence starts a new stretch of timeline, it never fills the gap.
    One chunk is in flight per room at a time (each continues the state its predecessor left).
    One in flight is asked for again, same sequence: a first ask once it is `retry_after_s`
    old (see retry_after) while less than `retry_lead_s` lies ahead, so the copy can be back
    before the room runs dry; any ask once it is `stale_after_s` old."""
    if room.status != Room.Status.LIVE or room.listeners <= 0:
        return None
    playhead = now - room.origin
    end = room.last.end_s if room.last is not None else 0.0
    lead = max(0.0, end - playhead)
    start = max(end, playhead + policy.start_lead_s)
    sequence = room.last.sequence + 1 if room.last is not None else 0
    flight = room.in_flight
    if flight is not None and flight.sequence == sequence:
        age = now - flight.asked_at
        early = (
            retry_after_s is not None
            and flight.attempts == 1
            and age >= retry_after_s
            and lead < policy.retry_lead_s
        )
        if age < policy.stale_after_s and not early:
            return None
        return Want(room.room, sequence, start, lead, attempt=flight.attempts + 1)
    if lead >= policy.lead_s:
        return None
    return Want(room.room, sequence, start, lead)


def plan(
    rooms: Iterable[RoomClock],
    now: float,
    policy: Policy = DEFAULT_POLICY,
    retry_after_s: float | None = None,
) -> list[Want]:
    """Every room's next chunk that is due now, the most urgent (least audio ahead) first."""
    wants = [plan_room(r, now, policy, retry_after_s) for r in rooms]
    return sorted((w for w in wants if w is not None), key=lambda w: (w.lead_s, w.room))


def _p90(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(0.9 * len(ordered)) - 1)]


def retry_after(round_trips: Sequence[float], policy: Policy = DEFAULT_POLICY) -> float:
    """How old a first ask may get before it is asked again (when the room's lead is short:
    plan_room): `retry_rtt_factor` times the 90th percentile of the measured round trips, at
    least `min_retry_s` and at most `stale_after_s`; `retry_unmeasured_s` until
    `min_round_trips` batches have come back. A job that far past its usual time has most
    likely lost its worker; if it was only slow, the copy costs compute, not correctness."""
    if len(round_trips) < policy.min_round_trips:
        wait = policy.retry_unmeasured_s
    else:
        wait = max(policy.min_retry_s, policy.retry_rtt_factor * _p90(round_trips))
    return min(policy.stale_after_s, wait)


def choose_worker(
    home: str | None, late: dict[str, float], now: float, policy: Policy = DEFAULT_POLICY
) -> str | None:
    """The worker a room's next chunk goes to: the one that made its last chunk (`home`, which
    holds the room resident), unless it let a job down (asked again) in the last
    `worker_probation_s` (`late`: worker -> when); None: the shared queue."""
    if not home:
        return None
    since = late.get(home)
    if since is not None and now - since < policy.worker_probation_s:
        return None
    return home


def route_batches(
    rooms: Sequence[tuple[str, str | None]],
    worker_batch: int,
    busy: dict[str, int] | None = None,
) -> list[tuple[str | None, list[str]]]:
    """Messages for the rooms due, given as (room, worker or None), most urgent first: each
    worker's rooms in one message, as long as the worker has fewer than `worker_batch` rooms
    (what one worker makes in real time) in flight, counting those it has already (`busy`);
    the rest of them, and rooms with no worker, on the shared queue (None), which the first
    free worker takes, in messages of at most `worker_batch`. A worker that holds more rooms
    than it can make thus sheds them to the others. Most urgent first within each message."""
    cap = max(1, worker_batch)
    busy = busy or {}
    own: dict[str, list[str]] = {}
    shared: list[str] = []
    for room, worker in rooms:
        if worker is not None and len(own.setdefault(worker, [])) + busy.get(worker, 0) < cap:
            own[worker].append(room)
        else:
            shared.append(room)
    batches: list[tuple[str | None, list[str]]] = [(w, rs) for w, rs in own.items() if rs]
    batches += [(None, shared[i : i + cap]) for i in range(0, len(shared), cap)]
    return batches


def record_start(
    planned_s: float, origin: float, now: float, policy: Policy = DEFAULT_POLICY
) -> float:
    """Where a chunk that is back now goes on the timeline: where it was planned, unless that
    moment has (nearly) passed; then just ahead of now, so nobody schedules it in the past."""
    return max(planned_s, now - origin + policy.late_margin_s)


def steering_key(steering: dict | None) -> str:
    """A short fingerprint of a steering (Steering.as_dict): chunks remember what they were
    asked under, so the conductor sees which were made before the steering changed."""
    text = json.dumps(steering or {}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Ahead:
    """A recorded chunk, as rewind planning sees it."""

    sequence: int
    start_s: float
    steering_key: str  # "" when unknown (recorded before chunks remembered it)
    duration_s: float = 0.0  # 0: unknown (then never spliced)


@dataclass(frozen=True)
class Rewind:
    """What to remake: `chunk`, from `keep_s` seconds into it (0: all of it; more: a splice,
    the chunk's beginning made again as it was and the new steering after it)."""

    chunk: Ahead
    keep_s: float = 0.0


def choose_rewind(
    ahead: Iterable[Ahead],
    current_key: str,
    playhead_s: float,
    policy: Policy = DEFAULT_POLICY,
    margin_s: float | None = None,
    splice: bool = False,
) -> Rewind | None:
    """What to make again now that the steering is `current_key`, so that listeners hear the
    change as soon as a remake can be back: `margin_s` (by default `policy.rewind_margin_s`;
    see rewind_margin) after the playhead. None if everything from there on already follows
    the current steering (or was made before chunks remembered theirs).

    Without `splice`, the first chunk made under another steering that starts after that
    moment is remade whole. With it, the chunk sounding at that moment may be remade from
    there on (Rewind.keep_s), unless too little of it is left (`policy.min_splice_tail_s`):
    a vote is then heard a margin after the round closes, wherever the chunk boundaries fall.

    This is what makes a vote heard within about a second: the audio already made ahead of
    the playhead, which would otherwise play first, is made again under the new steering."""
    at = playhead_s + (policy.rewind_margin_s if margin_s is None else margin_s)
    for chunk in sorted(ahead, key=lambda c: c.sequence):
        if not chunk.steering_key or chunk.steering_key == current_key:
            continue
        if chunk.start_s >= at:
            return Rewind(chunk)
        keep = at - chunk.start_s
        if splice and chunk.duration_s - keep >= policy.min_splice_tail_s:
            return Rewind(chunk, keep_s=keep)
    return None


def rewind_margin(round_trips: Sequence[float], policy: Policy = DEFAULT_POLICY) -> float:
    """How far past the playhead a chunk must start for its remake to be back in time: the
    time a batch takes to come back (the 90th percentile of the last few, asked to collected)
    plus the replace margin the listeners need to fetch it, within the policy's bounds.

    A margin too small wastes the remake (back too late: the old chunk plays and the change is
    heard a chunk later); too large, and the change waits for a later chunk than it had to.
    Measuring it lets one setting serve a CPU (a few tenths of a second) and a GPU (tens of ms).
    Until `min_round_trips` batches have come back, `policy.rewind_margin_s`."""
    if len(round_trips) < policy.min_round_trips:
        return policy.rewind_margin_s
    margin = _p90(round_trips) + policy.replace_margin_s + policy.rewind_slack_s
    return min(policy.max_rewind_margin_s, max(policy.min_rewind_margin_s, margin))


def remake_margin(
    round_trips: Sequence[float],
    remake_round_trips: Sequence[float],
    policy: Policy = DEFAULT_POLICY,
) -> float:
    """The rewind margin for a remake: remakes are slower than chunks (an older state restored,
    its cache rebuilt, two decodes, and on a shared engine the step of a preview that gives way
    first), so they are timed apart. Until `min_round_trips` remakes have come back, the chunks'
    round trips scaled by `remake_factor` stand in for theirs; never less than the chunks'
    own margin (rewind_margin)."""
    chunks = rewind_margin(round_trips, policy)
    if len(remake_round_trips) >= policy.min_round_trips:
        return max(chunks, rewind_margin(remake_round_trips, policy))
    if len(round_trips) < policy.min_round_trips:
        return chunks
    guess = [t * policy.remake_factor for t in round_trips]
    return max(chunks, rewind_margin(guess, policy))


@dataclass(frozen=True)
class Stream:
    key: str  # the job's "room" in the generation store
    base: int  # the room's sequence at which it started: job sequence = sequence - base

    @staticmethod
    def first(room: str) -> Stream:
        return Stream(room, 0)

    @staticmethod
    def fresh(room: str, sequence: int) -> Stream:
        return Stream(f"{room}/s{sequence}", sequence)

    @staticmethod
    def branch(room: str, sequence: int, revision: int) -> Stream:
        """A stream that remakes chunk `sequence` (revision `revision`) and goes on from it.
        Its key is new every time: the same chunk may be remade at the same revision again
        later (after an earlier chunk's remake), and the store would answer with the old one."""
        return Stream(f"{room}/r{sequence}.{revision}-{secrets.token_hex(3)}", sequence)


def choose_stream(
    room: str,
    sequence: int,
    *,
    current: Stream,
    last_at: float | None,
    attempt: int,
    now: float,
    policy: Policy = DEFAULT_POLICY,
) -> tuple[Stream, bool]:
    """(stream, restarted): the stream chunk `sequence` continues. A fresh one when the current
    one has failed `max_attempts` times, or when the room's last chunk is so old that the store
    no longer holds the stream's state."""
    expired = last_at is not None and now - last_at > policy.state_ttl_s
    if sequence > current.base and (attempt > policy.max_attempts or expired):
        return Stream.fresh(room, sequence), True
    if sequence == current.base and attempt > policy.max_attempts:
        return Stream.fresh(room, sequence), True  # a new stream that never got going
    return current, False


# --- What is in flight: one record per room in the cache ---------------------------------------


@dataclass
class Flight:
    sequence: int
    start_s: float
    asked_at: float
    attempts: int
    stream: str
    base: int
    reset: bool = False
    cut_round: int = 0
    failed: bool = False  # the in-process engine reported it could not make this chunk
    record_failed_at: float | None = None
    # Above 0: a remake of the recorded chunk `sequence` (a rewind), on a branch stream.
    revision: int = 0
    steering_key: str = ""  # the steering it was asked under (steering_key)
    worker: str = ""  # the worker's own queue it was sent to ("": the shared queue)

    @property
    def job_sequence(self) -> int:
        return self.sequence - self.base

    def planning(self, policy: Policy) -> InFlight:
        if self.failed:  # give up on this stream at once
            return InFlight(self.sequence, self.start_s, -math.inf, policy.max_attempts)
        return InFlight(self.sequence, self.start_s, self.asked_at, self.attempts)


def _flight_key(room_id) -> str:
    return f"room:{room_id}:conductor"


def flights_get(room_ids: Iterable[str]) -> dict[str, Flight]:
    keys = {_flight_key(r): r for r in room_ids}
    found = cache.get_many(list(keys))
    flights = {}
    for key, value in found.items():
        try:
            flights[keys[key]] = Flight(**value)
        except TypeError:  # a record of another version: forget it
            cache.delete(key)
    return flights


def flight_set(room_id: str, flight: Flight) -> None:
    cache.set(_flight_key(room_id), asdict(flight), timeout=FLIGHT_TTL_S)


def flight_forget(room_id: str) -> None:
    cache.delete(_flight_key(room_id))


def chunk_key(stream: str, job_sequence: int) -> str:
    """Where generation.tasks.run_room_jobs stores a finished chunk's result."""
    return f"chunk:{stream}:{job_sequence}"


# --- Dispatchers: where the batched call runs ---------------------------------------------------

OnDone = Callable[[list[dict], list[dict]], None]


class CeleryDispatcher:
    """Service mode: messages on queue `gpu`, or on a worker's own queue (Celery's
    `worker_direct`: `<node name>.dq2`, consumed by that worker only) for the rooms it holds
    resident; results come back through the store."""

    synchronous = False
    routes = True  # the conductor groups rooms by worker (route_batches)

    def __init__(self, expires_s: float = Policy.job_expires_s) -> None:
        self.expires_s = expires_s
        # Previews per batch: a batch holds the worker it lands on (and the rooms' chunks
        # queued behind it) for its whole length. A GPU makes 8 in well under a second.
        self.max_auditions = int(os.environ.get("CHORUS_AUDITION_BATCH", "2"))
        # Rooms in flight on one worker: what it makes in real time (docs/scaling.md). A 2-vCPU
        # worker makes 8 rooms' 1 s chunks in about 0.65 s with the rooms resident; set it to
        # what bench_worker measures on a GPU.
        self.worker_batch = int(os.environ.get("CHORUS_WORKER_BATCH", "8"))

    def ready(self) -> bool:
        return True

    def dispatch(
        self, jobs: list[dict], out_dir: str, on_done: OnDone, worker: str | None = None
    ) -> None:
        from celery.utils.nodenames import worker_direct

        queue = worker_direct(worker) if worker else "gpu"
        generation_tasks.rooms_next_chunks.apply_async(
            (jobs, out_dir, bell.CONDUCTOR), queue=queue, expires=self.expires_s
        )

    def dispatch_auditions(self, jobs: list[dict], out_dir: str) -> None:
        generation_tasks.auditions_render.apply_async(
            (jobs, out_dir, bell.CONDUCTOR), queue="gpu", expires=self.expires_s
        )


class ThreadDispatcher:
    """The embedded default: the engine runs in one thread of this process, one batch at a time.
    While a batch runs, no other is started: the rooms that come due meanwhile wait and go
    together in the next one (a CPU gains more from batching than from queueing)."""

    synchronous = False
    # One preview per batch: the one engine thread makes the rooms' chunks too, and a batch of
    # previews (5 s of music each) must end well inside the 1.5 s of lead the rooms keep.
    max_auditions = 1

    def __init__(self) -> None:
        self._busy = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chorus-rooms")
        # previews that gave way to a remake: they carry on after the next batch of chunks
        self._resume: tuple[list[dict], str] | None = None

    def ready(self) -> bool:
        return not self._busy.is_set()

    def dispatch(self, jobs: list[dict], out_dir: str, on_done: OnDone) -> None:
        self._busy.set()
        self._pool.submit(self._run, jobs, out_dir, on_done)

    def _run(self, jobs: list[dict], out_dir: str, on_done: OnDone) -> None:
        try:
            on_done(jobs, generation_tasks.run_room_jobs(jobs, out_dir))
        except Exception:  # the jobs stay in flight and are asked for again when stale
            logger.exception("rooms: a batch of %d chunks failed", len(jobs))
        finally:
            resume, self._resume = self._resume, None
            if resume is not None:  # the engine stays busy: the previews carry on now
                self._pool.submit(self._run_auditions, *resume)
            else:
                self._busy.clear()
            bell.ring_conductor()  # the loop collects at once

    def dispatch_auditions(self, jobs: list[dict], out_dir: str) -> None:
        self._busy.set()
        self._pool.submit(self._run_auditions, jobs, out_dir)

    def _run_auditions(self, jobs: list[dict], out_dir: str) -> None:
        try:
            results = generation_tasks.run_audition_jobs(jobs, out_dir)
            again = generation_tasks.yielded(jobs, results)
            if again:
                self._resume = (again, out_dir)
        except Exception:  # pending; asked for again when stale
            logger.exception("rooms: a batch of %d auditions failed", len(jobs))
        finally:
            self._busy.clear()
            bell.ring_conductor()


class InlineDispatcher:
    """Tests (CHORUS_TASKS_SYNC): the batch runs in the caller's thread, inside the tick."""

    synchronous = True

    def __init__(self, engine=None, store=None) -> None:
        self.engine, self.store = engine, store

    def ready(self) -> bool:
        return True

    def dispatch(self, jobs: list[dict], out_dir: str, on_done: OnDone) -> None:
        on_done(jobs, generation_tasks.run_room_jobs(jobs, out_dir, self.engine, self.store))

    def dispatch_auditions(self, jobs: list[dict], out_dir: str) -> None:
        generation_tasks.run_audition_jobs(jobs, out_dir, self.engine, self.store)


def default_dispatcher():
    if not settings.TASKS_INPROCESS:
        return CeleryDispatcher()
    if settings.TASKS_INPROCESS_SYNC:
        return InlineDispatcher()
    return ThreadDispatcher()


# --- The tick ----------------------------------------------------------------------------------


@dataclass
class TickReport:
    closed: list[tuple[str, int]] = field(default_factory=list)  # (room, round number)
    recorded: list[tuple[str, int]] = field(default_factory=list)  # (room, sequence)
    requested: list[tuple[str, int]] = field(default_factory=list)
    retried: list[tuple[str, int]] = field(default_factory=list)  # also in requested
    restarted: list[tuple[str, int]] = field(default_factory=list)  # fresh streams
    rewound: list[tuple[str, int]] = field(default_factory=list)  # remakes asked for
    replaced: list[tuple[str, int]] = field(default_factory=list)  # remakes put in place
    auditions: list[tuple[str, int]] = field(default_factory=list)  # (room, proposal) asked
    auditioned: list[tuple[str, int]] = field(default_factory=list)  # ready

    def as_dict(self) -> dict:
        return {name: len(value) for name, value in asdict(self).items()}


def _moments(now: datetime | float | None) -> tuple[datetime, float]:
    if now is None:
        now = time.time()
    if isinstance(now, datetime):
        return now, now.timestamp()
    return datetime.fromtimestamp(now, tz=UTC), float(now)


def timeline_origin(room: Room) -> float:
    """The room's timeline origin as clients get it (room_view's `timeline_origin`)."""
    return broadcast.unix(room.created_at)


def _stream_of(chunk: Chunk | None, room_id: str) -> Stream:
    if chunk is None:
        return Stream.first(room_id)
    provenance = chunk.provenance or {}
    key, base = provenance.get("stream"), provenance.get("stream_base")
    if not isinstance(key, str) or not isinstance(base, int):
        return Stream.first(room_id)
    return Stream(key, base)


def _ahead(chunk: Chunk) -> Ahead:
    key = (chunk.provenance or {}).get("steering_key", "")
    return Ahead(chunk.sequence, chunk.start_s, key, chunk.duration_s)


def _remake_resets(room: Room, chunk: Chunk) -> bool:
    """Whether a remake of `chunk` starts fresh music (as the chunk itself did): it was the
    first of its stream (nothing before it to continue), a reset, or a hard cut came since."""
    provenance = chunk.provenance or {}
    return (
        bool(provenance.get("reset"))
        or chunk.sequence == _stream_of(chunk, str(room.pk)).base
        or (room.last_cut_round or 0) > _cut_of(chunk)
    )


def _rewinding(flight: Flight | None) -> bool:
    return flight is not None and flight.revision > 0


def _seed(room: Room, stream: Stream) -> int:
    return room.seed if stream.base == 0 else (room.seed + stream.base) % (MAX_SEED + 1)


def _audition_key(audition: Audition) -> str:
    return f"{audition.room_id}/{audition.proposal_id}"


def _cut_of(chunk: Chunk | None) -> int:
    value = (chunk.provenance or {}).get("cut_round", 0) if chunk is not None else 0
    return value if isinstance(value, int) else 0


class Conductor:
    """One tick at a time (`tick`). Between ticks it keeps only its dispatcher and the round
    trips of its last few batches (soft state: a new leader starts from the policy's margin);
    the truth is in the rows, the cache (flights) and the store."""

    ROUND_TRIPS_KEPT = 32

    def __init__(self, dispatcher=None, policy: Policy = DEFAULT_POLICY, store=None, out_dir=None):
        self.dispatcher = dispatcher if dispatcher is not None else default_dispatcher()
        self.policy = policy
        self._store = store
        self._out_dir = out_dir
        self.round_trips: deque[float] = deque(maxlen=self.ROUND_TRIPS_KEPT)
        # ...and those of remakes alone: a remake restores an older state, rebuilds its cache
        # and decodes twice (to find its splice point), so it takes longer than a chunk
        self.remake_round_trips: deque[float] = deque(maxlen=self.ROUND_TRIPS_KEPT)
        # workers whose job had to be asked again, and when (soft state, like round_trips)
        self.late_workers: dict[str, float] = {}

    def _came_back(self, flight: Flight, t: float) -> None:
        """A batch's result is in the store: how long it took (first asks only; a retry's
        clock started with an attempt that never came back)."""
        if flight.attempts == 1 and t >= flight.asked_at:
            self.round_trips.append(t - flight.asked_at)
            if flight.revision:
                self.remake_round_trips.append(t - flight.asked_at)

    @property
    def store(self):
        return self._store if self._store is not None else generation_tasks.store()

    @property
    def out_dir(self) -> str:
        return str(self._out_dir or Path(settings.MEDIA_ROOT) / "rooms")

    def tick(self, now: datetime | float | None = None) -> TickReport:
        moment, t = _moments(now)
        report = TickReport()
        on_air = {str(pk): status for pk, status in selectors.room_list_on_air()}
        if not on_air:
            metrics.rooms_observe({}, {})
            return report
        listeners = presence_counts(on_air)
        metrics.rooms_observe(on_air, listeners)
        flights = flights_get(on_air)
        heard = sorted(r for r, s in on_air.items() if s == Room.Status.LIVE and listeners[r] > 0)
        if heard:
            self._close_due_rounds(moment, heard, report)
        wanted = sorted(set(heard) | set(flights))
        if not wanted:
            return report
        rooms = selectors.room_list_for_conductor(room_ids=wanted)
        self._collect(rooms, flights, t, report)
        rewinds = self._rewinds(rooms, heard, flights, t, report)
        clocks = [
            self._clock(rooms[r], listeners[r], flights.get(r))
            for r in heard
            if r in rooms and r not in rewinds and not _rewinding(flights.get(r))
        ]
        metrics.chunk_leads_observe(clocks, t)
        wants = plan(clocks, t, self.policy, retry_after(self.round_trips, self.policy))
        if rewinds or wants:
            # Rooms come first: a batch of previews running on the engine gives way after its
            # current chunk (generation.tasks.run_audition_jobs), so that a room's next chunk,
            # and above all a remake a vote waits on, never queues behind seconds of previews.
            self.store.ring(generation_tasks.URGENT_BELL)
        self._dispatch(wants, rooms, flights, t, report, rewinds)
        # Previews wait while any room's chunk is on its way: on a shared engine (one queue, one
        # worker) a batch of previews would otherwise go ahead of a remade chunk a vote waits on.
        busy = not self.dispatcher.synchronous and bool(report.requested or flights)
        self._auditions(rooms, heard, t, report, ask=not busy)
        return report

    # -- rounds ---------------------------------------------------------------------------------

    def _close_due_rounds(self, moment: datetime, heard: list[str], report: TickReport) -> None:
        """Due rounds of rooms with listeners. A round of an empty room waits: it closes on the
        first tick after someone joins (nobody was there to vote, and an abandoned room does not
        pile up a round every few seconds)."""
        due = selectors.round_list_due(now=moment).filter(room_id__in=heard)
        for round_ in due.order_by("ends_at")[:MAX_ROUNDS_PER_TICK]:
            try:
                services.round_close(room=round_.room, number=round_.number, now=moment)
            except ServiceError as exc:  # ended or paused meanwhile
                logger.info("room %s: round %s not closed: %s", round_.room_id, round_.number, exc)
            except Exception:
                logger.exception("room %s: closing round %s failed", round_.room_id, round_.number)
            else:
                report.closed.append((str(round_.room_id), round_.number))

    # -- collecting -----------------------------------------------------------------------------

    def _collect(self, rooms: dict[str, Room], flights: dict[str, Flight], t, report) -> None:
        store = self.store
        for room_id, flight in list(flights.items()):
            room = rooms.get(room_id)
            if room is None:
                continue
            last = room.last_chunk
            if flight.revision:
                if self._collect_rewind(room, flight, t, report):
                    del flights[room_id]
                continue
            if last is not None and last.sequence >= flight.sequence:  # recorded already
                flight_forget(room_id)
                del flights[room_id]
                continue
            if flight.record_failed_at is not None and (
                t - flight.record_failed_at < self.policy.stale_after_s
            ):
                continue
            try:
                blob = store.get(chunk_key(flight.stream, flight.job_sequence))
                if blob is None:
                    continue
                if flight.record_failed_at is None:
                    self._came_back(flight, t)
                chunk = self._record(room, json.loads(blob), flight, t)
            except Exception:
                logger.exception("room %s: recording chunk %s failed", room_id, flight.sequence)
                flight.record_failed_at = t
                flight_set(room_id, flight)
                continue
            flight_forget(room_id)
            del flights[room_id]
            room.last_chunk = chunk
            report.recorded.append((room_id, chunk.sequence))

    def _collect_rewind(self, room: Room, flight: Flight, t: float, report: TickReport) -> bool:
        """A remake (rewind) in flight: put it in place if it is back in time; forget it when it
        is back too late or never comes back (the next tick looks again at what to remake).
        True when the flight is over."""
        room_id = str(room.pk)
        try:
            blob = self.store.get(chunk_key(flight.stream, flight.job_sequence))
        except Exception:
            logger.exception("room %s: reading remade chunk %s failed", room_id, flight.sequence)
            return False
        if blob is None:
            if t - flight.asked_at < self.policy.stale_after_s:
                return False
            flight_forget(room_id)
            return True
        flight_forget(room_id)
        self._came_back(flight, t)
        result = json.loads(blob)
        playhead = t - timeline_origin(room)
        splice_s = float(result.get("splice_s") or 0.0)
        try:
            chunk = services.chunk_replace(
                room=room,
                sequence=flight.sequence,
                revision=flight.revision,
                duration_s=float(result["duration_s"]),
                audio=result["path"],
                steering=result.get("steering"),
                provenance=self._provenance(result, flight),
                not_before_s=playhead + self.policy.replace_margin_s,
                splice_s=splice_s,
            )
        except Exception:
            logger.exception("room %s: replacing chunk %s failed", room_id, flight.sequence)
            return
        logger.info(
            "room %s: remake of chunk %s back after %.2f s: %s",
            room_id,
            flight.sequence,
            t - flight.asked_at,
            "in place" if chunk is not None else "too late, the old one plays",
        )
        if chunk is not None:
            room.last_chunk = chunk
            report.replaced.append((room_id, chunk.sequence))
            # asked for (t - asked_at) ago; heard (start_s - playhead) from now
            heard_in = chunk.start_s + splice_s - playhead
            metrics.STEERING_LATENCY.observe(t - flight.asked_at + heard_in)
        return True

    @staticmethod
    def _provenance(result: dict, flight: Flight) -> dict:
        return {
            **(result.get("provenance") or {}),
            "stream": flight.stream,
            "stream_base": flight.base,
            "cut_round": flight.cut_round,
            "reset": flight.reset,
            "steering_key": flight.steering_key,
            "revision": flight.revision,
            **({"worker": result["worker"]} if result.get("worker") else {}),
        }

    def _record(self, room: Room, result: dict, flight: Flight, t: float) -> Chunk:
        provenance = self._provenance(result, flight)
        return services.chunk_record(
            room=room,
            sequence=flight.sequence,
            start_s=record_start(flight.start_s, timeline_origin(room), t, self.policy),
            duration_s=float(result["duration_s"]),
            audio=result["path"],
            steering=result.get("steering"),
            provenance=provenance,
        )

    # -- planning and asking --------------------------------------------------------------------

    def _clock(self, room: Room, listeners: int, flight: Flight | None) -> RoomClock:
        last = room.last_chunk
        return RoomClock(
            room=str(room.pk),
            status=room.status,
            listeners=listeners,
            origin=timeline_origin(room),
            last=LastChunk(last.sequence, last.start_s, last.duration_s) if last else None,
            in_flight=flight.planning(self.policy) if flight is not None else None,
        )

    def _rewinds(self, rooms, heard, flights, t: float, report: TickReport) -> dict:
        """Rooms whose steering changed while chunks made under the old one wait to be played:
        {room: (flight, job)} remaking the first of them (choose_rewind)."""
        rewinds: dict[str, tuple[Flight, dict]] = {}
        for room_id in heard:
            room = rooms.get(room_id)
            last = room.last_chunk if room is not None else None
            if last is None or room.status != Room.Status.LIVE:
                continue
            key = steering_key(room.current_steering)
            flight = flights.get(room_id)
            if flight is not None and flight.revision and flight.steering_key == key:
                continue  # a remake under this very steering is on its way
            last_key = (last.provenance or {}).get("steering_key", "")
            if last_key in ("", key) and (flight is None or flight.steering_key in ("", key)):
                continue  # nothing made or being made under another steering
            playhead = t - timeline_origin(room)
            margin = remake_margin(self.round_trips, self.remake_round_trips, self.policy)
            ahead = selectors.chunks_sounding_after(room=room, at_s=playhead + margin)
            target = choose_rewind(
                [_ahead(c) for c in ahead], key, playhead, self.policy, margin, self.policy.splice
            )
            chunks = {c.sequence: c for c in ahead}
            if (
                target is not None
                and target.keep_s
                and _remake_resets(room, chunks[target.chunk.sequence])
            ):
                # a chunk that began its stream (or a cut) starts fresh music: it cannot be
                # made again in part, so the next one is remade whole
                later = [_ahead(c) for c in ahead if c.sequence > target.chunk.sequence]
                target = choose_rewind(later, key, playhead, self.policy, margin)
            if target is None:
                continue
            chunk = chunks[target.chunk.sequence]
            logger.info(
                "room %s: steering changed; remaking chunk %s from %.2f s (starts %.2f s after"
                " the playhead, margin %.2f s)",
                room_id,
                chunk.sequence,
                target.keep_s,
                chunk.start_s - playhead,
                margin,
            )
            rewinds[room_id] = self._rewind(room, chunk, flight, key, t, keep_s=target.keep_s)
            report.rewound.append((room_id, chunk.sequence))
        return rewinds

    def _rewind(
        self,
        room: Room,
        chunk: Chunk,
        flight: Flight | None,
        key: str,
        t: float,
        keep_s: float = 0.0,
    ):
        """The flight and job that remake `chunk` on a branch of its stream (from `keep_s`
        seconds into it: a splice, see choose_rewind)."""
        room_id = str(room.pk)
        parent = _stream_of(chunk, room_id)
        revision = max(chunk.revision, flight.revision if flight is not None else 0) + 1
        stream = Stream.branch(room_id, chunk.sequence, revision)
        cut_round = room.last_cut_round or 0
        reset = _remake_resets(room, chunk)
        new = Flight(
            sequence=chunk.sequence,
            start_s=chunk.start_s,
            asked_at=t,
            attempts=1,
            stream=stream.key,
            base=stream.base,
            reset=reset,
            cut_round=cut_round,
            revision=revision,
            steering_key=key,
        )
        job = {
            "room": stream.key,
            "sequence": 0,
            "seed": _seed(room, parent),
            "steering": room.current_steering or None,
            "reset": reset,
            "parent": {"stream": parent.key, "sequence": chunk.sequence - parent.base},
        }
        if keep_s > 0 and not reset:
            # the kept part is made as it was, under the chunk's own steering; then it turns
            job["steering"] = chunk.steering or None
            job["splice"] = {"keep_s": round(keep_s, 4), "steering": room.current_steering}
        return new, job

    def _dispatch(self, wants, rooms, flights, t: float, report: TickReport, rewinds=None) -> None:
        rewinds = rewinds or {}
        if (not wants and not rewinds) or not self.dispatcher.ready():
            return
        store = self.store
        probation = self.policy.worker_probation_s
        self.late_workers = {w: at for w, at in self.late_workers.items() if t - at < probation}
        jobs: dict[str, dict] = {}
        asked: dict[str, Flight] = {}
        routes: list[tuple[str, str | None]] = []  # (room, its worker or None), urgent first
        for room_id, (flight, job) in rewinds.items():  # first: a vote waits on them
            jobs[room_id] = job
            asked[room_id] = flight
            routes.append((room_id, self._worker_of(rooms[room_id], t)))
        for want in wants:
            if len(jobs) >= self.policy.max_batch:
                break
            room, previous = rooms[want.room], flights.get(want.room)
            last = room.last_chunk
            retry = want.attempt > 1 and previous is not None
            if retry:
                current = Stream(previous.stream, previous.base)
            else:
                current = _stream_of(last, want.room)
            stream, restarted = choose_stream(
                want.room,
                want.sequence,
                current=current,
                last_at=last.created_at.timestamp() if last is not None else None,
                attempt=want.attempt,
                now=t,
                policy=self.policy,
            )
            job_sequence = want.sequence - stream.base
            cut_round = room.last_cut_round or 0
            flight = Flight(
                sequence=want.sequence,
                start_s=want.start_s,
                asked_at=t,
                attempts=1 if restarted else want.attempt,
                stream=stream.key,
                base=stream.base,
                # A new stream starts under the room's steering at once (no ramp from nothing);
                # a hard cut the last chunk does not include yet starts the music afresh.
                reset=job_sequence == 0 or cut_round > _cut_of(last),
                cut_round=cut_round,
            )
            if not retry and not restarted:
                # Made already (a conductor that stopped before recording it): record it now.
                blob = store.get(chunk_key(stream.key, job_sequence))
                if blob is not None:
                    try:
                        chunk = self._record(room, json.loads(blob), flight, t)
                    except Exception:
                        logger.exception(
                            "room %s: recording chunk %s failed", want.room, want.sequence
                        )
                    else:
                        room.last_chunk = chunk
                        report.recorded.append((want.room, chunk.sequence))
                        continue
            flight.steering_key = steering_key(room.current_steering)
            job = {
                "room": stream.key,
                "sequence": job_sequence,
                "seed": _seed(room, stream),
                "steering": room.current_steering or None,
                "reset": flight.reset,
            }
            if flight.attempts > 1:
                job["attempt"] = flight.attempts  # its audio goes to a file of its own
            jobs[want.room] = job
            asked[want.room] = flight
            if retry and previous.worker:
                # the worker it went to let it down: no rooms of its own for a while, and the
                # copy goes to the shared queue
                self.late_workers[previous.worker] = t
            routes.append((want.room, None if retry else self._worker_of(room, t)))
            report.requested.append((want.room, want.sequence))
            if retry and not restarted:
                report.retried.append((want.room, want.sequence))
            if restarted:
                report.restarted.append((want.room, want.sequence))
        if not jobs:
            return
        if getattr(self.dispatcher, "routes", False):
            busy: dict[str, int] = {}
            for room_id, flight in flights.items():
                if flight.worker and room_id not in jobs:
                    busy[flight.worker] = busy.get(flight.worker, 0) + 1
            batches = route_batches(routes, self.dispatcher.worker_batch, busy)
        else:  # one process, one engine: one batch
            batches = [(None, [room_id for room_id, _ in routes])]
        for worker, room_ids in batches:
            for room_id in room_ids:
                asked[room_id].worker = worker or ""
        for room_id, flight in asked.items():
            flight_set(room_id, flight)
        for worker, room_ids in batches:
            batch = [jobs[r] for r in room_ids]
            metrics.BATCH_ROOMS.observe(len(batch))
            on_done = functools.partial(self._on_done, room_ids)
            try:
                if worker is None:
                    self.dispatcher.dispatch(batch, self.out_dir, on_done)
                else:
                    self.dispatcher.dispatch(batch, self.out_dir, on_done, worker=worker)
            except Exception:  # the broker is down: they stay in flight and are asked again
                logger.exception("rooms: dispatching %d chunks failed", len(batch))
        if self.dispatcher.synchronous:
            flights.update(asked)
            self._collect({r: rooms[r] for r in asked}, dict(asked), t, report)

    def _worker_of(self, room: Room, t: float) -> str | None:
        """The worker the room's next chunk goes to (choose_worker), from the last chunk's."""
        last = room.last_chunk
        home = (last.provenance or {}).get("worker") if last is not None else None
        home = home if isinstance(home, str) else None
        return choose_worker(home, self.late_workers, t, self.policy)

    # -- auditions ------------------------------------------------------------------------------

    def _auditions(
        self, rooms: dict[str, Room], heard: list[str], t: float, report, *, ask: bool = True
    ) -> None:
        """Previews of the proposals on the open ballots of rooms with listeners: collect the
        ones made, then (`ask`, when the engine is free: the rooms' own chunks come first) ask
        for those missing, in one batch. Each is made from the room's latest state."""
        if not heard:
            return
        stale = self._collect_auditions(heard, t, report)
        if not ask or not self.dispatcher.ready():
            return
        limit = min(
            self.policy.max_auditions,
            getattr(self.dispatcher, "max_auditions", self.policy.max_auditions),
        )
        proposals = [a.proposal for a in stale[:limit]]
        proposals += selectors.auditions_wanted(room_ids=heard, limit=limit - len(proposals))
        jobs = []
        moment = datetime.fromtimestamp(t, tz=UTC)
        for proposal in proposals:
            room = rooms.get(str(proposal.room_id)) or proposal.room
            audition = services.audition_request(proposal=proposal, now=moment)
            stream = _stream_of(getattr(room, "last_chunk", None), str(room.pk))
            jobs.append(
                {
                    "key": _audition_key(audition),
                    "stream": stream.key,
                    "steering": services.proposal_preview_steering(proposal, room),
                    "seconds": self.policy.audition_s,
                    "seed": _seed(room, stream),
                }
            )
            report.auditions.append((str(room.pk), proposal.pk))
        if not jobs:
            return
        try:
            self.dispatcher.dispatch_auditions(jobs, self.out_dir)
        except Exception:  # pending; asked for again when stale
            logger.exception("rooms: dispatching %d auditions failed", len(jobs))
            return
        if self.dispatcher.synchronous:
            self._collect_auditions(heard, t, report)

    def _collect_auditions(self, heard: list[str], t: float, report) -> list[Audition]:
        """Record the previews that are made; give up on those asked for too often. Returns
        the pending ones to ask for again."""
        store = self.store
        again: list[Audition] = []
        for audition in selectors.auditions_pending(room_ids=heard):
            blob = store.get(generation_tasks.audition_result_key(_audition_key(audition)))
            if blob is not None:
                result = json.loads(blob)
                try:
                    services.audition_record(
                        audition=audition,
                        audio=result["path"],
                        duration_s=float(result["duration_s"]),
                        steering=result.get("steering"),
                        provenance=result.get("provenance"),
                    )
                except Exception:
                    logger.exception("room %s: recording an audition failed", audition.room_id)
                    continue
                report.auditioned.append((str(audition.room_id), audition.proposal_id))
            elif t - audition.asked_at.timestamp() >= self.policy.stale_after_s:
                if audition.attempts >= services.AUDITION_MAX_ATTEMPTS:
                    services.audition_fail(audition=audition)
                else:
                    again.append(audition)
        return again

    def _on_done(self, room_ids: list[str], jobs: list[dict], results: list[dict]) -> None:
        """In-process batches report what they could not make: those rooms go to a fresh
        stream at the next tick instead of waiting to find out the slow way."""
        for room_id, job, result in zip(room_ids, jobs, results, strict=True):
            if "error" not in result:
                continue
            logger.warning(
                "room %s: the engine refused %s#%s: %s",
                room_id,
                job["room"],
                job["sequence"],
                result["error"],
            )
            flight = flights_get([room_id]).get(room_id)
            if flight is not None and flight.stream == job["room"]:
                flight.failed = True
                flight_set(room_id, flight)


_default: Conductor | None = None
_default_lock = threading.Lock()


def default_conductor() -> Conductor:
    global _default
    with _default_lock:
        if _default is None:
            _default = Conductor()
        return _default


def set_default_conductor(conductor: Conductor | None) -> None:
    """Use another conductor (tests); None builds the configured one on next use."""
    global _default
    with _default_lock:
        _default = conductor


def conductor_tick(now: datetime | float | None = None) -> TickReport:
    """One tick of this process's conductor (tests call it with `now`, no thread involved)."""
    return default_conductor().tick(now)


# --- Driving the tick: one loop, one leader ----------------------------------------------------


class LocalLeadership:
    """The embedded default: one conductor per process."""

    _lock = threading.Lock()

    def acquire(self) -> bool:
        return self._lock.acquire(blocking=False)

    def renew(self) -> bool:
        return True

    def release(self) -> None:
        if self._lock.locked():
            self._lock.release()


class RedisLeadership:
    """Service mode: a Redis lock that the leading conductor renews every tick; if it stops
    (dies, hangs), another takes over within LOCK_TTL_S."""

    def __init__(self, url: str, key: str, ttl_s: float = LOCK_TTL_S) -> None:
        import redis

        self._lock = redis.Redis.from_url(url).lock(key, timeout=ttl_s, thread_local=False)

    def acquire(self) -> bool:
        from redis.exceptions import RedisError

        try:
            return bool(self._lock.acquire(blocking=False))
        except RedisError:
            logger.warning("conductor: Redis unavailable", exc_info=True)
            return False

    def renew(self) -> bool:
        from redis.exceptions import LockError, RedisError

        try:
            self._lock.reacquire()
            return True
        except (LockError, RedisError):
            return False

    def release(self) -> None:
        from redis.exceptions import LockError, RedisError

        with contextlib.suppress(LockError, RedisError):
            self._lock.release()


def leadership():
    if settings.REDIS_URL:
        return RedisLeadership(settings.REDIS_URL, f"{settings.CACHE_NAMESPACE}:conductor:lock")
    return LocalLeadership()


def run_loop(
    stop: threading.Event,
    *,
    conductor: Conductor | None = None,
    lead=None,
    interval_s: float = TICK_S,
    max_ticks: int | None = None,
    tidy: Callable[[], None] = close_old_connections,
) -> int:
    """Tick every `interval_s` while this process leads, until `stop` is set (or `max_ticks`
    ticks); a process that does not lead waits and tries again. Returns the ticks made.
    `tidy` runs after each tick (closing database connections that went stale)."""
    conductor = conductor or default_conductor()
    lead = lead or leadership()
    leading, ticks = False, 0
    try:
        while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
            if not leading:
                leading = lead.acquire()
                if not leading:
                    stop.wait(STANDBY_S)
                    continue
                logger.info("conductor: leading (pid %s)", os.getpid())
            elif not lead.renew():
                logger.warning("conductor: lost the lead")
                leading = False
                continue
            started = time.monotonic()
            try:
                conductor.tick()
            except Exception:  # the next tick tries again: rows and the store hold the truth
                logger.exception("conductor: tick failed")
            finally:
                tidy()
            ticks += 1
            _rest(conductor, stop, started, interval_s)
    finally:
        if leading:
            lead.release()
    return ticks


def _rest(conductor, stop: threading.Event, started: float, interval_s: float) -> None:
    """Wait for the next tick: `interval_s` after the last one began, or sooner when the
    conductor's bell rings (a batch's results are stored, a round closed, the steering changed),
    but never sooner than MIN_TICK_GAP_S after it began: many rooms ringing at once cost one
    tick, not one each."""
    store = getattr(conductor, "store", None)
    left = interval_s - (time.monotonic() - started)
    if stop.is_set():
        return
    if store is None or left <= 0:
        if left > 0:
            stop.wait(left)
        return
    try:
        store.wait(bell.CONDUCTOR, left)
    except Exception:  # the store is away (Redis restarting): tick on the clock meanwhile
        logger.warning("conductor: waiting on the bell failed", exc_info=True)
        stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
    gap = MIN_TICK_GAP_S - (time.monotonic() - started)
    if gap > 0:
        stop.wait(gap)


_background: tuple[threading.Thread, threading.Event] | None = None
_background_lock = threading.Lock()


def start_background(interval_s: float = TICK_S) -> threading.Event:
    """Run the loop in a daemon thread of this process (the embedded default's web process);
    idempotent. Set the returned event (or call stop_background) to stop it."""
    global _background
    with _background_lock:
        if _background is not None and _background[0].is_alive():
            return _background[1]
        stop = threading.Event()
        thread = threading.Thread(
            target=run_loop,
            args=(stop,),
            kwargs={"interval_s": interval_s},
            name="chorus-conductor",
            daemon=True,
        )
        thread.start()
        atexit.register(stop.set)
        _background = (thread, stop)
        return stop


def stop_background(timeout_s: float = 5.0) -> None:
    global _background
    with _background_lock:
        if _background is None:
            return
        thread, stop = _background
        stop.set()
        thread.join(timeout_s)
        _background = None


def start_in_process_if_embedded() -> bool:
    """The web process starts its own conductor when background work runs in process (the
    embedded default), unless CHORUS_CONDUCTOR=0 or tasks run inline (tests)."""
    if os.environ.get("CHORUS_CONDUCTOR", "1").strip().lower() in ("0", "false", "no", "off"):
        return False
    if not settings.TASKS_INPROCESS or settings.TASKS_INPROCESS_SYNC:
        return False
    start_background()
    return True
