"""How bench_scale.py and soak.py count missed chunks (tests/bench/listening.py)."""

from __future__ import annotations

from tests.bench.listening import (
    Missed,
    Receipt,
    TimelineChunk,
    connection_windows,
    missed_chunks,
    silent_stretches,
    votes_lost,
)

ORIGIN = 1_000.0


def timeline(*starts: float, duration: float = 1.0) -> list[TimelineChunk]:
    return [TimelineChunk(i + 1, i, 0, s, duration) for i, s in enumerate(starts)]


def on_time(chunks: list[TimelineChunk], ahead_s: float = 1.5) -> list[Receipt]:
    return [Receipt(c.id, c.revision, ORIGIN + c.start_s - ahead_s) for c in chunks]


def test_a_listener_who_got_every_chunk_in_time_missed_nothing():
    chunks = timeline(10, 11, 12, 13)
    missed = missed_chunks(
        chunks, on_time(chunks), origin=ORIGIN, window=(ORIGIN + 10, ORIGIN + 14), chunk_s=1.0
    )
    assert missed == Missed()


def test_a_chunk_placed_late_leaves_a_hole_counted_in_chunks():
    # The worker died: chunk 2 was asked for again and placed 4.8 s after chunk 1 ended.
    chunks = timeline(10, 11, 16.8, 17.8)
    missed = missed_chunks(
        chunks, on_time(chunks), origin=ORIGIN, window=(ORIGIN + 10, ORIGIN + 18.8), chunk_s=1.0
    )
    assert (missed.silent, missed.silent_s, missed.longest_silence_s) == (5, 4.8, 4.8)
    assert missed.total == 5


def test_a_hole_at_the_end_of_the_window_counts_too():
    assert silent_stretches(timeline(10, 11), 10, 14) == [(12, 14)]


def test_joins_within_the_tolerance_are_not_silence():
    assert silent_stretches(timeline(10, 11.03, 12.03), 10, 13.03) == []


def test_chunks_never_announced_late_or_stale_are_counted_apart():
    chunks = [
        TimelineChunk(1, 0, 0, 10, 1),
        TimelineChunk(2, 1, 0, 11, 1),  # never announced to this listener
        TimelineChunk(3, 2, 0, 12, 1),  # announced after its start
        TimelineChunk(4, 3, 1, 13, 1),  # remade: the listener only has revision 0
    ]
    receipts = [
        Receipt(1, 0, ORIGIN + 8.5),
        Receipt(3, 0, ORIGIN + 12.2),
        Receipt(4, 0, ORIGIN + 11.5),
    ]
    missed = missed_chunks(
        chunks, receipts, origin=ORIGIN, window=(ORIGIN + 10, ORIGIN + 14), chunk_s=1.0
    )
    assert (missed.never, missed.late, missed.stale, missed.silent) == (1, 1, 1, 0)


def test_only_chunks_starting_inside_the_window_count():
    chunks = timeline(10, 11, 12, 13)
    receipts = on_time(chunks[1:3])  # the first and last are outside the window
    missed = missed_chunks(
        chunks, receipts, origin=ORIGIN, window=(ORIGIN + 10.5, ORIGIN + 13), chunk_s=1.0
    )
    assert missed == Missed()


def test_connection_windows_skip_the_settling_moment_and_clip_to_the_run():
    windows = connection_windows([(100.0, 110.0), (112.0, None)], start=105.0, end=120.0)
    assert windows == [(105.0, 110.0), (112.5, 120.0)]


def test_a_vote_is_lost_only_if_its_round_holds_something_else():
    round_of = {11: 1, 12: 1, 21: 2}
    acked = [(1, 0.01, 11, 5.0), (2, 0.01, 12, 6.0), (3, 0.01, 21, 30.0)]
    history = [(1, 11), (2, 12), (3, 21), (4, 11)]  # 4 went unanswered
    kept = votes_lost(
        acked=acked, history=history, refused=[], stored={1: 12, 2: 21}, round_of=round_of
    )
    unanswered_but_stored = votes_lost(
        acked=acked, history=history, refused=[], stored={1: 11, 2: 21}, round_of=round_of
    )
    overwritten_by_a_refused_vote = votes_lost(
        acked=acked, history=history, refused=[4], stored={1: 11, 2: 21}, round_of=round_of
    )
    missing = votes_lost(
        acked=acked, history=history, refused=[], stored={1: 12}, round_of=round_of
    )
    found = [len(x) for x in (kept, unanswered_but_stored, overwritten_by_a_refused_vote, missing)]
    assert found == [0, 0, 1, 1]
    assert missing[0]["round"] == 2 and missing[0]["acked"] == 21
