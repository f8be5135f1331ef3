"""Splices: a room chunk remade from its middle, so a vote is heard mid-chunk. The remake keeps
the chunk's first steps exactly (same state, conditions and random draws) and turns to the new
steering after them; the worker measures where the audio starts to differ."""

from __future__ import annotations

import json

import numpy as np
import torch

from generation.lm.stream import Segment
from generation.tasks import SPLICE_GUARD_S, MemoryStore, run_room_jobs, splice_point_s
from tests.generation.test_lm_tasks import job, make_engine, tiny_engine_parts  # noqa: F401

DARK = {"prompts": [["dark techno", 1.0]], "controls": {"bpm": 140.0}}


def codes_of(result: dict, n_codebooks: int) -> np.ndarray:
    import base64

    raw = np.frombuffer(base64.b64decode(result["codes"]), dtype=np.int16)
    return raw.reshape(n_codebooks, -1)


def test_a_segment_cut_short_gives_the_very_conditions_of_the_whole_ramp():
    begin, end = torch.randn(16), torch.randn(16)
    whole = Segment(100, 10, begin, end)
    kept = Segment(100, 6, begin, end, ramp=10)
    assert torch.equal(kept.at(100, 106), whole.at(100, 106))  # bit for bit, not approximately


def test_the_splice_point_is_a_guard_before_the_first_sample_that_differs():
    sr = 1000
    old = np.zeros(500, dtype=np.float32)
    new = old.copy()
    new[300:] = 0.5
    assert splice_point_s(old, new, sr) == 0.3 - SPLICE_GUARD_S
    assert splice_point_s(old, old + 1e-6, sr) == 0.5 - SPLICE_GUARD_S  # float noise is equal
    new[0] = 0.5
    assert splice_point_s(old, new, sr) == 0.0  # different from the start: no splice


def test_a_splice_keeps_the_chunks_beginning_and_turns_after_it(tiny_engine_parts, tmp_path):  # noqa: F811
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    out, k = str(tmp_path), eng.model.config.n_codebooks
    for seq in range(3):
        run_room_jobs([job("r", seq)], out, eng, st)
    original = json.loads(st.get("chunk:r:2"))
    keep_s = 0.2  # of a 0.4 s chunk

    parent = {"stream": "r", "sequence": 2}
    splice = {"keep_s": keep_s, "steering": DARK}
    [spliced] = run_room_jobs(
        [job("r/r2.1", 0, parent=parent, steering=original["steering"], splice=splice)],
        out,
        eng,
        st,
    )
    old, new = codes_of(original, k), codes_of(spliced, k)
    kept = spliced["provenance"]["splice"]["keep_steps"]
    assert kept == round(keep_s * eng.frame_rate) + 1
    assert np.array_equal(new[:, :kept], old[:, :kept])  # the same music up to the splice...
    assert not np.array_equal(new, old)  # ...and another after it
    assert spliced["steering"]["prompts"] == [["dark techno", 1.0]]
    # listeners switch where the audio starts to differ, measured, never after the kept part
    assert 0.0 < spliced["splice_s"] <= kept / eng.frame_rate
    assert spliced["provenance"]["splice"]["splice_s"] == spliced["splice_s"]

    [after] = run_room_jobs([job("r/r2.1", 1)], out, eng, st)  # the branch goes on from it
    assert "error" not in after and after["sequence"] == 1


def test_a_splice_under_the_same_steering_is_the_same_chunk(tiny_engine_parts, tmp_path):  # noqa: F811
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    out = str(tmp_path)
    for seq in range(3):
        run_room_jobs([job("r", seq)], out, eng, st)
    original = json.loads(st.get("chunk:r:2"))
    splice = {"keep_s": 0.2, "steering": original["steering"]}
    parent = {"stream": "r", "sequence": 2}
    [same] = run_room_jobs(
        [job("r/r2.1", 0, parent=parent, steering=original["steering"], splice=splice)],
        out,
        eng,
        st,
    )
    assert same["codes"] == original["codes"]
    # nothing differs: the splice point is the end of the chunk (less the guard)
    assert same["splice_s"] >= original["duration_s"] - SPLICE_GUARD_S - 1e-3


def test_a_splice_that_keeps_nothing_or_everything_is_a_whole_remake(tiny_engine_parts, tmp_path):  # noqa: F811
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    out = str(tmp_path)
    for seq in range(3):
        run_room_jobs([job("r", seq)], out, eng, st)
    parent = {"stream": "r", "sequence": 2}
    for keep_s in (-1.0, 5.0):
        splice = {"keep_s": keep_s, "steering": DARK}
        [whole] = run_room_jobs(
            [job(f"r/r2.{keep_s}", 0, parent=parent, steering=DARK, splice=splice)], out, eng, st
        )
        assert "splice_s" not in whole and "splice" not in whole["provenance"]


def test_a_spliced_state_round_trips(tiny_engine_parts, tmp_path):  # noqa: F811
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    out = str(tmp_path)
    for seq in range(2):
        run_room_jobs([job("r", seq)], out, eng, st)
    original = json.loads(st.get("chunk:r:1"))
    splice = {"keep_s": 0.2, "steering": DARK}
    parent = {"stream": "r", "sequence": 1}
    run_room_jobs(
        [job("b", 0, parent=parent, steering=original["steering"], splice=splice)], out, eng, st
    )
    blob = st.get("state:b")
    session = eng.restore(blob)
    assert any(s.ramp for s in session.segments)
    assert session.to_bytes() == blob
