"""The conductor: planning (pure), ticks on a tiny random engine, and chunk audio over HTTP."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import torch
from django.utils import timezone

from collab import broadcast, conductor, services
from collab.conductor import (
    Conductor,
    InFlight,
    InlineDispatcher,
    LastChunk,
    Policy,
    RoomClock,
    Stream,
    choose_stream,
    choose_worker,
    plan,
    plan_room,
    record_start,
    retry_after,
    route_batches,
)
from collab.models import Chunk
from collab.presence import presence_join, presence_leave
from generation.codec import DEFAULT_CHECKPOINT, Codec
from generation.lm import Engine, LMConfig, TokenLM
from generation.tasks import MemoryStore, run_room_jobs
from tests.generation.test_lm import FakeText

POLICY = Policy()
ORIGIN = 1_000_000.0  # a room's timeline_origin in the planning tests


def clock(**fields) -> RoomClock:
    values = {"room": "r", "status": "live", "listeners": 3, "origin": ORIGIN} | fields
    return RoomClock(**values)


# --- Planning --------------------------------------------------------------------------------


def test_a_new_room_with_listeners_asks_for_its_first_chunk_just_ahead_of_now():
    want = plan_room(clock(), ORIGIN + 30.0)
    assert (want.sequence, want.attempt) == (0, 1)
    assert want.start_s == pytest.approx(30.0 + POLICY.start_lead_s)


@pytest.mark.parametrize(
    "fields",
    [{"listeners": 0}, {"status": "paused"}, {"status": "ended"}],
    ids=["empty", "paused", "ended"],
)
def test_nothing_is_made_for_an_empty_paused_or_ended_room(fields):
    last = LastChunk(4, 8.0, 2.0)  # ended at 10 s: the room has run dry
    assert plan_room(clock(last=last, **fields), ORIGIN + 10.5) is None


def test_the_next_chunk_continues_the_last_once_the_lead_runs_low():
    last = LastChunk(7, 7.0, 1.0)  # ends at 8 s on the timeline
    assert plan_room(clock(last=last), ORIGIN + 6.0) is None  # 2 s ahead: enough
    want = plan_room(clock(last=last), ORIGIN + 6.8)  # 1.2 s ahead
    assert (want.sequence, want.start_s, want.lead_s) == (8, 8.0, pytest.approx(1.2))


def test_a_room_that_comes_back_after_a_silence_starts_ahead_of_now_without_a_backlog():
    last = LastChunk(7, 14.0, 2.0)  # ended at 16 s; everyone left; someone is back at 600 s
    want = plan_room(clock(last=last), ORIGIN + 600.0)
    assert want.sequence == 8  # the next chunk, not the 290 that would fill the silence
    assert want.start_s == pytest.approx(600.0 + POLICY.start_lead_s)  # never in the past


def test_a_chunk_in_flight_is_not_asked_for_twice():
    last = LastChunk(7, 14.0, 2.0)
    flight = InFlight(8, 16.0, asked_at=ORIGIN + 13.5)
    assert plan_room(clock(last=last, in_flight=flight), ORIGIN + 15.0) is None


def test_a_chunk_whose_job_vanished_is_asked_for_again_with_the_same_sequence():
    last = LastChunk(7, 14.0, 2.0)
    flight = InFlight(8, 16.0, asked_at=ORIGIN + 13.5, attempts=1)
    now = ORIGIN + 13.5 + POLICY.stale_after_s + 0.1  # 19.6 s: chunk 7 ended 3.6 s ago
    want = plan_room(clock(last=last, in_flight=flight), now)
    assert (want.sequence, want.attempt) == (8, 2)
    assert want.start_s == pytest.approx(19.6 + POLICY.start_lead_s)  # the room misses 8's slot


def test_a_job_well_past_its_round_trip_is_asked_again_once_the_lead_runs_short():
    last = LastChunk(7, 7.0, 1.0)  # ends at 8 s
    flight = InFlight(8, 8.0, asked_at=ORIGIN + 5.7)
    room = clock(last=last, in_flight=flight)
    # 1.2 s old, four round trips of 0.3 s: but 1.1 s of audio still lies ahead
    assert plan_room(room, ORIGIN + 6.9, retry_after_s=0.6) is None
    # 0.9 s ahead and 1.4 s old: the worker has most likely gone; ask again, same sequence
    want = plan_room(room, ORIGIN + 7.1, retry_after_s=0.6)
    assert (want.sequence, want.attempt) == (8, 2)
    # still within its usual time: not yet, however short the lead
    assert plan_room(room, ORIGIN + 7.1, retry_after_s=1.5) is None


def test_only_the_first_ask_is_retried_early_then_the_fixed_bound_holds():
    last = LastChunk(7, 7.0, 1.0)
    second = InFlight(8, 8.0, asked_at=ORIGIN + 7.5, attempts=2)
    room = clock(last=last, in_flight=second)
    assert plan_room(room, ORIGIN + 7.9, retry_after_s=0.1) is None  # no storm of copies
    want = plan_room(room, ORIGIN + 7.5 + POLICY.stale_after_s, retry_after_s=0.1)
    assert want.attempt == 3


def test_the_retry_waits_a_multiple_of_the_measured_round_trip_within_its_bounds():
    assert retry_after([]) == POLICY.retry_unmeasured_s  # nothing measured yet
    assert retry_after([0.3] * 10) == pytest.approx(POLICY.retry_rtt_factor * 0.3)
    assert retry_after([0.05] * 10) == POLICY.min_retry_s  # a GPU's round trip: the floor
    assert retry_after([5.0] * 10) == POLICY.stale_after_s  # never later than the fixed bound
    slow_tail = [0.3] * 9 + [0.9]  # the 90th percentile, not the mean
    assert retry_after(slow_tail) == pytest.approx(POLICY.retry_rtt_factor * 0.3)


def test_a_room_goes_back_to_its_worker_unless_that_worker_let_a_job_down_lately():
    now = ORIGIN
    assert choose_worker("gpu@a", {}, now) == "gpu@a"
    assert choose_worker(None, {}, now) is None  # unknown: the shared queue
    late = {"gpu@a": now - 1.0}
    assert choose_worker("gpu@a", late, now) is None
    assert choose_worker("gpu@b", late, now) == "gpu@b"
    assert choose_worker("gpu@a", late, now + POLICY.worker_probation_s) == "gpu@a"


def test_rooms_are_batched_per_worker_up_to_what_a_worker_makes_in_real_time():
    due = [("r1", "a"), ("r2", None), ("r3", "a"), ("r4", "b"), ("r5", "a"), ("r6", None)]
    assert route_batches(due, worker_batch=2) == [
        ("a", ["r1", "r3"]),
        ("b", ["r4"]),
        (None, ["r2", "r5"]),  # a's third room goes where any worker can take it
        (None, ["r6"]),
    ]
    assert route_batches([("r1", None)], worker_batch=0) == [(None, ["r1"])]


def test_a_worker_with_a_real_time_batch_in_flight_sheds_its_rooms_to_the_shared_queue():
    due = [("r1", "a"), ("r2", "a"), ("r3", "b")]
    busy = {"a": 3, "b": 1}  # rooms asked of them earlier and not back yet
    assert route_batches(due, worker_batch=4, busy=busy) == [
        ("a", ["r1"]),
        ("b", ["r3"]),
        (None, ["r2"]),
    ]


def test_an_old_flight_for_a_recorded_sequence_does_not_hold_the_room_back():
    last = LastChunk(8, 8.0, 1.0)
    flight = InFlight(8, 8.0, asked_at=ORIGIN + 7.0)  # recorded meanwhile
    want = plan_room(clock(last=last, in_flight=flight), ORIGIN + 7.8)
    assert (want.sequence, want.attempt) == (9, 1)


def test_the_most_urgent_rooms_come_first():
    rooms = [
        clock(room="calm", last=LastChunk(0, 0.0, 1.5)),  # 1.0 s ahead at 0.5 s
        clock(room="dry", last=LastChunk(0, 0.0, 0.6)),  # 0.1 s ahead
        clock(room="full", last=LastChunk(1, 1.0, 1.5)),  # 2.0 s ahead: nothing to do
        clock(room="empty", listeners=0),
    ]
    assert [w.room for w in plan(rooms, ORIGIN + 0.5)] == ["dry", "calm"]


def test_a_late_chunk_moves_just_ahead_of_now_and_an_early_one_stays():
    assert record_start(20.0, ORIGIN, ORIGIN + 18.0) == 20.0
    late = record_start(20.0, ORIGIN, ORIGIN + 21.0)
    assert late == pytest.approx(21.0 + POLICY.late_margin_s)


def test_a_stream_is_kept_until_it_fails_too_often_or_its_state_has_expired():
    current, now = Stream("r", 0), ORIGIN

    def choose(sequence, **options):
        return choose_stream("r", sequence, current=current, now=now, **options)

    assert choose(5, last_at=now - 10, attempt=2) == (current, False)
    too_often = choose(5, last_at=now - 10, attempt=POLICY.max_attempts + 1)
    expired = choose(5, last_at=now - POLICY.state_ttl_s - 1, attempt=1)
    assert too_often == expired == (Stream("r/s5", 5), True)
    never_started = choose(0, last_at=None, attempt=POLICY.max_attempts + 1)
    assert never_started == (Stream("r/s0", 0), True)


@pytest.mark.parametrize("latency", [0.2, 0.5, 0.9])
def test_a_simulated_room_stays_one_to_two_chunks_ahead_and_plays_without_gaps(latency):
    """Ticks every 0.25 s; each 1 s job takes `latency` s to come back."""
    tick, chunk_s, now = 0.25, 1.0, ORIGIN
    recorded: list[LastChunk] = []
    flight: tuple[InFlight, float] | None = None  # and when its result is back
    leads = []
    for _ in range(int(120 / tick)):
        now += tick
        if flight is not None and now >= flight[1]:
            f = flight[0]
            recorded.append(LastChunk(f.sequence, record_start(f.start_s, ORIGIN, now), chunk_s))
            flight = None
        last = recorded[-1] if recorded else None
        want = plan_room(clock(last=last, in_flight=flight and flight[0]), now)
        if want is not None:
            flight = (InFlight(want.sequence, want.start_s, now), now + latency)
        if recorded and now - ORIGIN > 10:
            leads.append(recorded[-1].end_s - (now - ORIGIN))
    assert [c.sequence for c in recorded] == list(range(len(recorded)))
    for before, after in zip(recorded, recorded[1:], strict=False):
        assert after.start_s == pytest.approx(before.end_s)  # one seamless stream
    assert min(leads) > 0.2 and max(leads) <= POLICY.lead_s + chunk_s
    assert len(recorded) * chunk_s == pytest.approx(120, abs=6)


# --- Ticks on a tiny engine ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_engine():
    torch.manual_seed(0)
    config = LMConfig.preset("tiny", sections=["build", "drop"], instruments=["piano", "drums"])
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a model this small only waits on a busy CPU's other threads
    yield Engine(
        TokenLM(config).eval(), Codec.load(DEFAULT_CHECKPOINT), "tiny", chunk_s=0.4, text=FakeText()
    )
    torch.set_num_threads(threads)


class SpyDispatcher(InlineDispatcher):
    """Runs each batch in the tick, as the embedded default does, and keeps the jobs."""

    def __init__(self, engine, store) -> None:
        super().__init__(engine, store)
        self.batches: list[list[dict]] = []

    def dispatch(self, jobs, out_dir, on_done) -> None:
        self.batches.append(jobs)
        super().dispatch(jobs, out_dir, on_done)


class LostDispatcher:
    """A broker whose workers die: jobs go out and never come back."""

    synchronous, wake = False, None

    def __init__(self) -> None:
        self.batches: list[list[dict]] = []

    def ready(self) -> bool:
        return True

    def dispatch(self, jobs, out_dir, on_done) -> None:
        self.batches.append(jobs)


@pytest.fixture
def store():
    return MemoryStore()


@pytest.fixture
def frames(monkeypatch):
    """Every broadcast sent, as clients receive it."""
    sent: list[dict] = []
    monkeypatch.setattr(broadcast, "_deliver", lambda group, event: sent.append(event))
    return lambda kind: [json.loads(e["text"]) for e in sent if f'"type":"{kind}"' in e["text"]]


@pytest.fixture
def listened(make_room, alice, media):
    """A public room with one listener, that only the test's conductors conduct."""
    room = make_room(alice, visibility="public", now=timezone.now())
    presence_join(room_id=room.pk)
    yield room
    presence_leave(room_id=room.pk)


def origin_of(room) -> float:
    return conductor.timeline_origin(room)


FAST = Policy(lead_s=2.0, start_lead_s=0.5)  # for 0.4 s chunks: a few per room, quickly


def test_a_tick_makes_records_and_announces_the_first_chunk(
    listened, tiny_engine, store, frames, media, django_capture_on_commit_callbacks
):
    spy = SpyDispatcher(tiny_engine, store)
    now = origin_of(listened) + 5.0

    with django_capture_on_commit_callbacks(execute=True):
        report = Conductor(spy, FAST, store=store).tick(now)

    assert report.requested == report.recorded == [(str(listened.pk), 0)]
    [job] = spy.batches[0]
    assert (job["room"], job["sequence"], job["seed"]) == (str(listened.pk), 0, listened.seed)
    assert job["steering"] == listened.current_steering and job["reset"] is True
    chunk = Chunk.objects.get(room=listened, sequence=0)
    assert chunk.start_s == pytest.approx(5.0 + FAST.start_lead_s)
    assert chunk.duration_s == pytest.approx(0.4)
    assert chunk.audio.name == f"rooms/{listened.pk}/00000000.ogg"
    assert (media / chunk.audio.name).stat().st_size > 0
    assert chunk.provenance["model_version"] == "tiny" and chunk.provenance["stream"] == str(
        listened.pk
    )
    [frame] = frames("chunk")
    assert frame["url"] == f"/rooms/{listened.pk}/chunks/0.ogg"
    assert frame["start_s"] == chunk.start_s


def test_ticks_keep_the_lead_with_one_seamless_stream_and_stop_there(listened, tiny_engine, store):
    spy = SpyDispatcher(tiny_engine, store)
    conductor_ = Conductor(spy, FAST, store=store)
    now = origin_of(listened) + 5.0
    for _ in range(8):
        conductor_.tick(now)
    chunks = list(Chunk.objects.filter(room=listened).order_by("sequence"))
    assert [c.sequence for c in chunks] == [0, 1, 2, 3]  # 0.5 s + 4 x 0.4 s: 2.1 s ahead
    assert [c.start_s for c in chunks[1:]] == pytest.approx([c.start_s + 0.4 for c in chunks[:-1]])
    assert [j["reset"] for batch in spy.batches for j in batch] == [True] + [False] * 3
    assert len(spy.batches) == 4  # nothing asked for once the lead is there


def test_rooms_nobody_hears_or_that_are_paused_get_nothing(
    make_room, alice, listened, tiny_engine, store
):
    quiet = make_room(alice, title="Nobody here", now=timezone.now())
    spy = SpyDispatcher(tiny_engine, store)
    services.room_pause(room=listened, user=alice)

    report = Conductor(spy, FAST, store=store).tick(origin_of(quiet) + 5.0)

    assert report.requested == [] and spy.batches == [] and not Chunk.objects.exists()


def test_rooms_due_at_once_go_in_one_batched_call(make_room, alice, bob, tiny_engine, store):
    rooms = [make_room(alice, title="one"), make_room(bob, title="two")]
    for room in rooms:
        presence_join(room_id=room.pk)
    spy = SpyDispatcher(tiny_engine, store)

    Conductor(spy, FAST, store=store).tick(timezone.now())

    assert len(spy.batches) == 1 and len(spy.batches[0]) == 2
    assert {c.provenance["batch"] for c in Chunk.objects.all()} == {2}
    for room in rooms:
        presence_leave(room_id=room.pk)


def test_a_due_round_closes_and_its_steering_goes_into_the_next_chunk(
    make_room, alice, carol, tiny_engine, store, frames, django_capture_on_commit_callbacks
):
    room = make_room(alice, visibility="public", now=timezone.now() - timedelta(seconds=30))
    presence_join(room_id=room.pk)
    proposal = services.proposal_create(room=room, user=carol, text="add strings")
    services.vote_cast(proposal=proposal, user=carol)
    spy = SpyDispatcher(tiny_engine, store)

    with django_capture_on_commit_callbacks(execute=True):
        report = Conductor(spy, FAST, store=store).tick(timezone.now())

    assert report.closed == [(str(room.pk), 1)]
    assert [f["round"] for f in frames("round_result")] == [1]
    [job] = spy.batches[0]
    assert "add strings" in [text for text, _ in job["steering"]["prompts"]]
    chunk = Chunk.objects.get(room=room, sequence=0)
    assert chunk.steering["prompts"] == job["steering"]["prompts"]
    presence_leave(room_id=room.pk)


def test_a_hard_cut_resets_the_next_chunk_only(listened, alice, tiny_engine, store):
    spy = SpyDispatcher(tiny_engine, store)
    conductor_ = Conductor(spy, FAST, store=store)
    origin = origin_of(listened)
    conductor_.tick(origin + 5.0)  # chunk 0
    services.room_hard_cut(room=listened, user=alice)
    conductor_.tick(origin + 5.0)  # chunk 1: the cut
    conductor_.tick(origin + 5.0)  # chunk 2: carries on

    assert [b[0]["reset"] for b in spy.batches] == [True, True, False]
    cut = Chunk.objects.get(room=listened, sequence=1)
    assert cut.provenance["reset"] and cut.provenance["cut_round"] == 1
    assert Chunk.objects.get(room=listened, sequence=2).provenance["cut_round"] == 1


def test_a_job_that_vanished_is_asked_for_again_and_recorded_once_it_is_made(
    listened, tiny_engine, store, media
):
    lost = LostDispatcher()
    conductor_ = Conductor(lost, FAST, store=store)
    origin = origin_of(listened)

    assert conductor_.tick(origin + 5.0).requested == [(str(listened.pk), 0)]
    assert conductor_.tick(origin + 6.0).requested == []  # in flight: not asked for twice
    again = conductor_.tick(origin + 5.0 + FAST.stale_after_s + 0.5)
    assert again.retried == [(str(listened.pk), 0)]
    first, retry = lost.batches[0][0], lost.batches[1][0]
    assert {**first, "attempt": 2} == retry  # same room, same sequence: idempotent

    # A worker finally runs it (a redelivery, say): the next tick finds it in the store.
    run_room_jobs(lost.batches[1], str(media / "rooms"), tiny_engine, store)
    report = conductor_.tick(origin + 11.6)
    assert report.recorded == [(str(listened.pk), 0)]
    assert Chunk.objects.get(room=listened, sequence=0).start_s == pytest.approx(
        11.5 + FAST.start_lead_s  # planned when it was asked for again, not in the past
    )


def test_a_room_whose_jobs_keep_vanishing_starts_a_fresh_stream(listened, store):
    lost = LostDispatcher()
    conductor_ = Conductor(lost, FAST, store=store)
    now = origin_of(listened) + 5.0
    restarted = []
    for _ in range(FAST.max_attempts + 1):
        restarted += conductor_.tick(now).restarted
        now += FAST.stale_after_s + 0.5
    assert restarted == [(str(listened.pk), 0)]
    assert [b[0]["room"] for b in lost.batches] == [str(listened.pk)] * 3 + [f"{listened.pk}/s0"]


def test_a_room_that_lost_its_stream_state_goes_on_with_a_fresh_one(listened, tiny_engine, store):
    """The embedded default restarted: the store is empty, the database remembers chunks."""
    conductor_ = Conductor(SpyDispatcher(tiny_engine, store), FAST, store=store)
    origin = origin_of(listened)
    conductor_.tick(origin + 5.0)
    conductor_.tick(origin + 5.0)
    empty = MemoryStore()
    after_restart = Conductor(SpyDispatcher(tiny_engine, empty), FAST, store=empty)

    refused = after_restart.tick(origin + 5.5)  # chunk 2: "no state for this room"
    fresh = after_restart.tick(origin + 5.6)

    assert refused.recorded == [] and fresh.restarted == [(str(listened.pk), 2)]
    chunk = Chunk.objects.get(room=listened, sequence=2)
    assert chunk.provenance["stream"] == f"{listened.pk}/s2"
    assert chunk.audio.name == f"rooms/{listened.pk}/s2/00000000.ogg"
    assert chunk.start_s == pytest.approx(
        Chunk.objects.get(room=listened, sequence=1).start_s + 0.4
    )


def test_a_room_silent_for_longer_than_the_store_keeps_state_starts_fresh_at_once(
    listened, tiny_engine, store
):
    conductor_ = Conductor(SpyDispatcher(tiny_engine, store), FAST, store=store)
    origin = origin_of(listened)
    conductor_.tick(origin + 5.0)
    much_later = origin + 5.0 + FAST.state_ttl_s + 60
    Chunk.objects.filter(room=listened).update(created_at=timezone.now() - timedelta(hours=2))

    report = conductor_.tick(much_later)

    assert report.restarted == report.recorded == [(str(listened.pk), 1)]
    chunk = Chunk.objects.get(room=listened, sequence=1)
    assert chunk.start_s == pytest.approx(much_later - origin + FAST.start_lead_s)


def test_a_chunk_made_while_nobody_recorded_it_is_recorded_without_asking_again(
    listened, tiny_engine, store, media
):
    job = {"room": str(listened.pk), "sequence": 0, "seed": listened.seed, "reset": True}
    run_room_jobs([job], str(media / "rooms"), tiny_engine, store)  # a conductor died after this
    lost = LostDispatcher()

    conductor_ = Conductor(lost, FAST, store=store)
    report = conductor_.tick(origin_of(listened) + 5.0)

    assert report.recorded == [(str(listened.pk), 0)] and lost.batches == []
    conductor_.tick(origin_of(listened) + 5.0)
    assert lost.batches[0][0]["sequence"] == 1


def test_conductor_tick_uses_the_configured_engine_inline(
    listened, tiny_engine, store, monkeypatch
):
    import generation.tasks as generation_tasks

    monkeypatch.setattr(generation_tasks, "engine", lambda: tiny_engine)
    generation_tasks.set_store(store)
    conductor.set_default_conductor(None)
    try:
        report = conductor.conductor_tick(now=origin_of(listened) + 5.0)
    finally:
        conductor.set_default_conductor(None)
        generation_tasks.set_store(None)
    assert report.recorded == [(str(listened.pk), 0)]


def test_the_loop_ticks_a_bounded_number_of_times_and_lets_go_of_the_lead(monkeypatch):
    ticks = []

    class Counting:
        dispatcher = LostDispatcher()

        def tick(self, now=None):
            ticks.append(now)

    import threading

    lead = conductor.LocalLeadership()
    made = conductor.run_loop(
        threading.Event(),
        conductor=Counting(),
        lead=lead,
        interval_s=0.01,
        max_ticks=3,
        tidy=lambda: None,
    )
    assert made == len(ticks) == 3 and lead.acquire()
    lead.release()


# --- Chunk audio over HTTP -------------------------------------------------------------------


@pytest.fixture
def recorded(write_chunk):
    def record(room, sequence=0):
        path = write_chunk(room, sequence, 0.5, fmt="OGG")
        return services.chunk_record(
            room=room, sequence=sequence, start_s=0.0, duration_s=0.5, audio=path
        )

    return record


def test_a_public_rooms_chunk_is_served_to_anyone_and_cached_for_good(
    client, make_room, alice, recorded
):
    room = make_room(alice, visibility="public")
    recorded(room)
    url = f"/rooms/{room.pk}/chunks/0.ogg"

    response = client.get(url)

    assert response.status_code == 200 and response["Content-Type"] == "audio/ogg"
    assert response["Cache-Control"] == "public, max-age=31536000, immutable"
    assert b"".join(response.streaming_content)[:4] == b"OggS"
    assert "Cookie" not in response.get("Vary", "")
    again = client.get(url, HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304 and again["ETag"] == response["ETag"]


def test_a_private_rooms_chunk_is_for_its_host_only(client, make_room, alice, bob, recorded):
    room = make_room(alice, visibility="private")
    recorded(room)
    url = f"/rooms/{room.pk}/chunks/0.ogg"

    assert client.get(url).status_code == 404
    client.force_login(bob)
    assert client.get(url).status_code == 404
    client.force_login(alice)
    response = client.get(url)
    assert response.status_code == 200 and response["Cache-Control"].startswith("private")


def test_an_unlisted_rooms_chunk_url_carries_its_share_token(client, make_room, alice, recorded):
    room = make_room(alice, visibility="unlisted")
    chunk = recorded(room)
    url = broadcast.chunk_view(chunk)["url"]

    assert url == f"/rooms/{room.pk}/chunks/0.ogg?share={room.share_token}"
    assert client.get(url).status_code == 200
    assert client.get(url.split("?")[0]).status_code == 404


def test_a_chunk_that_was_never_recorded_or_whose_file_is_gone_is_not_found(
    client, make_room, alice, recorded, media
):
    room = make_room(alice, visibility="public")
    chunk = recorded(room)

    assert client.get(f"/rooms/{room.pk}/chunks/1.ogg").status_code == 404
    (media / chunk.audio.name).unlink()
    assert client.get(f"/rooms/{room.pk}/chunks/0.ogg").status_code == 404


class Workers:
    """Service mode in miniature: each worker's own queue and the shared one. Whatever is
    sent to a dead worker is lost; the shared queue goes to the first worker alive."""

    synchronous, routes = True, True

    def __init__(self, engine, store, worker_batch: int = 4) -> None:
        self.engine, self.store, self.worker_batch = engine, store, worker_batch
        self.sent: list[tuple[str | None, list[int]]] = []
        self.dead: set[str] = set()

    def ready(self) -> bool:
        return True

    def dispatch(self, jobs, out_dir, on_done, worker=None) -> None:
        self.sent.append((worker, [j["sequence"] for j in jobs]))
        if worker in self.dead:
            return
        runner = worker or next(w for w in ("gpu@a", "gpu@b") if w not in self.dead)
        on_done(jobs, run_room_jobs(jobs, out_dir, self.engine, self.store, worker=runner))


def test_a_room_sticks_to_its_worker_and_moves_on_soon_after_that_worker_dies(
    listened, tiny_engine, store
):
    workers = Workers(tiny_engine, store)
    conductor_ = Conductor(workers, FAST, store=store)
    room_id, now = str(listened.pk), origin_of(listened) + 5.0

    conductor_.tick(now)  # chunk 0: nobody holds the room yet
    conductor_.tick(now)  # chunk 1: back to the worker that made chunk 0
    assert workers.sent == [(None, [0]), ("gpu@a", [1])]
    assert Chunk.objects.get(room=listened, sequence=1).provenance["worker"] == "gpu@a"

    workers.dead.add("gpu@a")
    conductor_.tick(now)  # chunk 2 goes to gpu@a, and is lost with it
    assert workers.sent[-1] == ("gpu@a", [2])
    # chunks 0-1 end 0.8 s after 5.5 s; 2 s later the lead is gone and the job is 2 s old:
    # asked again on the shared queue, long before the fixed 6 s
    report = conductor_.tick(now + 2.0)
    assert report.retried == [(room_id, 2)]
    assert workers.sent[-1] == (None, [2])
    assert Chunk.objects.get(room=listened, sequence=2).provenance["worker"] == "gpu@b"
    conductor_.tick(now + 2.0)
    assert workers.sent[-1] == ("gpu@b", [3])  # the room now sticks to its new worker
