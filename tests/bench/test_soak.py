"""How the soak judges memory (tests/bench/soak.py: memory_growth)."""

from __future__ import annotations

from tests.bench.soak import memory_growth


def test_warm_up_is_left_out_and_a_flat_series_does_not_grow():
    warming = [(t, 100.0 + 10 * t) for t in range(5)]  # loading the model
    steady = [(t, 200.0) for t in range(5, 25)]
    figures = memory_growth(warming + steady, warmup_end=5)
    assert (figures["growth_pct"], figures["slope_mb_per_h"], figures["samples"]) == (0.0, 0.0, 20)


def test_a_leak_shows_as_growth_of_the_last_fifth_over_the_first():
    leaking = [(t * 60.0, 1000.0 + t) for t in range(20)]  # 1 MB a minute
    figures = memory_growth(leaking, warmup_end=0)
    # first fifth: 1000..1003 (mean 1001.5); last fifth: 1016..1019 (mean 1017.5)
    assert figures["growth_pct"] == round(16 / 1001.5 * 100, 2)
    assert figures["slope_mb_per_h"] == 60.0


def test_too_few_samples_after_warm_up_give_no_verdict():
    assert memory_growth([(0, 1.0), (1, 1.0), (2, 1.0)], warmup_end=0)["growth_pct"] is None
