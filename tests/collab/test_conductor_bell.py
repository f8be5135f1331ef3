"""The conductor's doorbell and its measured rewind margin: what lets a remade chunk come back in
time for a vote to be heard within about a chunk (collab/bell.py, rewind_margin)."""

from __future__ import annotations

import threading

import pytest

from collab import bell, conductor, services
from collab.conductor import Ahead, Policy, choose_rewind, remake_margin, rewind_margin
from generation import tasks as generation_tasks
from generation.tasks import MemoryStore
from tests.collab.conftest import at

POLICY = Policy()

# --- rewind_margin (pure) --------------------------------------------------------------------


def test_the_margin_is_the_policys_until_enough_batches_came_back():
    few = [2.0] * (POLICY.min_round_trips - 1)
    assert rewind_margin(few, POLICY) == POLICY.rewind_margin_s
    assert rewind_margin([], POLICY) == POLICY.rewind_margin_s


def test_the_margin_follows_the_90th_percentile_of_round_trips_plus_the_replace_margin():
    trips = [0.1] * 9 + [0.5]  # the slowest tenth does not set it; the 90th percentile does
    expected = 0.1 + POLICY.replace_margin_s + POLICY.rewind_slack_s
    assert rewind_margin(trips, POLICY) == pytest.approx(expected)
    slower = [0.1] * 8 + [0.5, 0.5]
    assert rewind_margin(slower, POLICY) == pytest.approx(
        0.5 + POLICY.replace_margin_s + POLICY.rewind_slack_s
    )


def test_the_margin_stays_within_the_policys_bounds():
    assert rewind_margin([0.0] * 20, POLICY) == POLICY.min_rewind_margin_s  # a GPU, or inline
    assert rewind_margin([9.0] * 20, POLICY) == POLICY.max_rewind_margin_s  # a stuck worker


def test_remakes_get_a_margin_of_their_own_that_is_never_below_the_chunks():
    chunks = [0.30] * 10
    expected_chunks = rewind_margin(chunks, POLICY)
    # no remake measured yet: the chunks' round trips, scaled, stand in
    assert remake_margin(chunks, [], POLICY) == pytest.approx(
        0.30 * POLICY.remake_factor + POLICY.replace_margin_s + POLICY.rewind_slack_s
    )
    # measured remakes decide, but a fast remake never brings the margin below the chunks'
    slow = [0.55] * 5
    assert remake_margin(chunks, slow, POLICY) == pytest.approx(
        0.55 + POLICY.replace_margin_s + POLICY.rewind_slack_s
    )
    assert remake_margin(chunks, [0.05] * 5, POLICY) == pytest.approx(expected_chunks)
    # nothing measured at all: the policy's starting margin
    assert remake_margin([], [], POLICY) == POLICY.rewind_margin_s


def test_choose_rewind_takes_the_first_chunk_past_the_given_margin():
    ahead = [Ahead(5, 10.0, "old"), Ahead(6, 11.0, "old"), Ahead(7, 12.0, "old")]
    # playhead 9.5: chunk 5 starts 0.5 s ahead
    assert choose_rewind(ahead, "new", 9.5, POLICY, margin_s=0.4).chunk.sequence == 5
    assert choose_rewind(ahead, "new", 9.5, POLICY, margin_s=0.6).chunk.sequence == 6
    assert choose_rewind(ahead, "new", 9.5, POLICY).chunk.sequence == 5  # the policy's 0.4


def test_the_conductor_measures_first_asks_only():
    made = conductor.Conductor(dispatcher=conductor.InlineDispatcher(), store=MemoryStore())
    first = conductor.Flight(
        sequence=1, start_s=0.0, asked_at=100.0, attempts=1, stream="r", base=0
    )
    retry = conductor.Flight(
        sequence=1, start_s=0.0, asked_at=100.0, attempts=2, stream="r", base=0
    )
    made._came_back(first, 100.3)
    made._came_back(retry, 107.0)
    assert list(made.round_trips) == [pytest.approx(0.3)]


# --- the bell ----------------------------------------------------------------------------------


def test_a_ring_before_the_wait_is_kept_once():
    store = MemoryStore()
    store.ring("bell:x")
    store.ring("bell:x")
    assert store.wait("bell:x", 0.0) is True
    assert store.wait("bell:x", 0.0) is False  # one ring, not a count
    assert store.wait("bell:y", 0.0) is False  # bells are separate


@pytest.mark.integration
def test_the_redis_bell_rings_once_and_times_out(settings):
    store = generation_tasks.RedisStore(settings.REDIS_URL, prefix=f"{settings.CACHE_NAMESPACE}:")
    store.client.delete(f"{settings.CACHE_NAMESPACE}:bell:t")
    store.ring("bell:t")
    store.ring("bell:t")
    assert store.wait("bell:t", 0.5) is True
    assert store.wait("bell:t", 0.0) is False
    assert store.wait("bell:t", 0.05) is False  # BLPOP's timeout, not forever


def test_a_worker_rings_the_bell_it_was_given_when_its_batch_is_stored(tmp_path):
    store = MemoryStore()
    generation_tasks.set_store(store)
    try:
        assert generation_tasks.rooms_next_chunks([], str(tmp_path), bell.CONDUCTOR) == []
        assert store.wait(bell.CONDUCTOR, 0.0) is True
        generation_tasks.rooms_next_chunks([], str(tmp_path))  # no bell: nothing rung
        assert store.wait(bell.CONDUCTOR, 0.0) is False
    finally:
        generation_tasks.set_store(None)


def test_a_change_of_steering_rings_the_conductor(
    a_live_room, bob, django_capture_on_commit_callbacks
):
    store = MemoryStore()
    generation_tasks.set_store(store)
    try:
        proposal = services.proposal_create(
            room=a_live_room, user=bob, text="add strings", now=at(1)
        )
        services.vote_cast(proposal=proposal, user=bob, now=at(2))
        store.wait(bell.CONDUCTOR, 0.0)  # whatever rang so far
        with django_capture_on_commit_callbacks(execute=True):
            services.round_close(room=a_live_room, now=at(20))
        assert store.wait(bell.CONDUCTOR, 0.0) is True
    finally:
        generation_tasks.set_store(None)


def test_the_loop_ticks_again_at_once_when_the_bell_rings():
    """With an hour between ticks, the second tick can only come from the bell."""
    store, stop, ticks = MemoryStore(), threading.Event(), []

    class Ringing:
        dispatcher = conductor.InlineDispatcher()

        def __init__(self):
            self.store = store

        def tick(self, now=None):
            ticks.append(now)
            if len(ticks) == 1:
                store.ring(bell.CONDUCTOR)  # as a worker finishing a batch would
            else:
                stop.set()

    loop = threading.Thread(
        target=conductor.run_loop,
        args=(stop,),
        kwargs={
            "conductor": Ringing(),
            "lead": conductor.LocalLeadership(),
            "interval_s": 3600.0,
            "tidy": lambda: None,
        },
    )
    loop.start()
    loop.join(timeout=30)  # hang detection only: without the bell this waits an hour
    alive = loop.is_alive()
    stop.set()
    store.ring(bell.CONDUCTOR)
    loop.join()
    assert not alive and len(ticks) == 2


# --- splices: the chunk sounding at the margin, remade from there ------------------------------


def test_with_splices_the_chunk_sounding_at_the_margin_is_remade_from_there():
    ahead = [Ahead(5, 10.0, "old", 1.0), Ahead(6, 11.0, "old", 1.0)]
    rewind = choose_rewind(ahead, "new", 9.9, POLICY, margin_s=0.5, splice=True)
    assert rewind.chunk.sequence == 5 and rewind.keep_s == pytest.approx(0.4)
    # without splices the same moment waits for the next boundary
    assert choose_rewind(ahead, "new", 9.9, POLICY, margin_s=0.5).chunk.sequence == 6


def test_a_splice_too_near_the_chunks_end_remakes_the_next_chunk_whole():
    ahead = [Ahead(5, 10.0, "old", 1.0), Ahead(6, 11.0, "old", 1.0)]
    tail = POLICY.min_splice_tail_s / 2  # the margin lands this close to chunk 5's end
    rewind = choose_rewind(ahead, "new", 10.5 - tail, POLICY, margin_s=0.5, splice=True)
    assert (rewind.chunk.sequence, rewind.keep_s) == (6, 0.0)


def test_a_chunk_already_under_the_new_steering_is_not_spliced():
    ahead = [Ahead(5, 10.0, "new", 1.0), Ahead(6, 11.0, "old", 1.0)]
    rewind = choose_rewind(ahead, "new", 9.9, POLICY, margin_s=0.5, splice=True)
    assert (rewind.chunk.sequence, rewind.keep_s) == (6, 0.0)
    assert choose_rewind([Ahead(5, 10.0, "", 1.0)], "new", 9.9, POLICY, splice=True) is None
