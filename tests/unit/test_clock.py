"""Clock sync and the playback timeline: everyone hears the same moment."""

import pytest

from collab.clock import ChunkSlot, ClockSample, estimate_offset, lead_time, playback_position


def sample(t0, one_way_out, one_way_back, true_offset):
    server = t0 + one_way_out + true_offset
    return ClockSample(
        client_sent=t0, server_time=server, client_received=t0 + one_way_out + one_way_back
    )


def test_a_symmetric_round_trip_gives_the_exact_offset():
    s = sample(10.0, 0.05, 0.05, true_offset=123.4)
    assert s.offset == pytest.approx(123.4)
    assert s.rtt == pytest.approx(0.1)


def test_the_lowest_round_trips_win_over_congested_ones():
    samples = [
        sample(0.0, 0.40, 0.01, 5.0),  # congested out-leg: its offset is 0.195 s off
        sample(1.0, 0.010, 0.012, 5.0),
        sample(2.0, 0.011, 0.010, 5.0),
        sample(3.0, 0.012, 0.011, 5.0),
        sample(4.0, 0.01, 0.30, 5.0),  # congested back-leg
    ]
    offset, error = estimate_offset(samples)
    assert offset == pytest.approx(5.0, abs=0.002)
    assert error <= 0.012


def test_samples_from_a_stepped_clock_are_ignored_and_none_is_an_error():
    with pytest.raises(ValueError):
        estimate_offset([ClockSample(5.0, 1.0, 4.0)])


def test_a_late_joiner_starts_mid_chunk_at_the_right_offset():
    chunks = [ChunkSlot(7, 100.0, 1.5), ChunkSlot(8, 101.5, 1.5), ChunkSlot(9, 103.0, 1.5)]
    chunk, into = playback_position(chunks, 102.2)
    assert chunk.sequence == 8
    assert into == pytest.approx(0.7)
    assert playback_position(chunks, 99.0) is None
    assert playback_position(chunks, 104.5) is None  # end is exclusive: chunk 10 not announced


def test_lead_time_is_the_audio_generated_beyond_now():
    chunks = [ChunkSlot(1, 10.0, 2.0), ChunkSlot(2, 12.0, 2.0)]
    assert lead_time(chunks, 11.0) == pytest.approx(3.0)
    assert lead_time(chunks, 15.0) == 0.0
    assert lead_time([], 1.0) == 0.0
