"""The multi-host run as a test (tests/bench/bench_scale.py): opt-in, because it needs root and
takes a few minutes. `CHORUS_SCALE=1 pytest -m scale tests/bench/test_scale.py`."""

from __future__ import annotations

import json
import os

import pytest

from tests.bench import bench_scale

pytestmark = [
    pytest.mark.scale,
    pytest.mark.skipif(
        os.environ.get("CHORUS_SCALE") != "1", reason="opt-in: CHORUS_SCALE=1 (root, minutes)"
    ),
]


def test_a_worker_killed_mid_run_costs_each_room_at_most_a_chunk_and_nobody_an_error(capsys):
    why = bench_scale.preflight()
    if why:
        pytest.skip(why)
    argv = ["--listeners", "200", "--rooms", "4", "--baseline-s", "20", "--after-kill-s", "30"]
    assert bench_scale.main(argv) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["listeners"] == 200
    assert result["errors"] == 0, result["error_detail"]
    assert result["chunks_missed_before_kill"]["max_per_room"] == 0
    assert result["chunks_missed_after_worker_kill"]["max_per_room"] <= 1, result[
        "chunks_missed_after_worker_kill"
    ]
