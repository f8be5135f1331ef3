"""Resident rooms: a worker keeps its rooms' sessions (and KV caches) between chunks, and uses
them only while the store holds exactly the state it wrote (generation/resident.py)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from generation import tasks
from generation.codec import DEFAULT_CHECKPOINT, Codec
from generation.lm import Engine, LMConfig, TokenLM
from generation.resident import ResidentRooms, cache_bytes, default_capacity
from generation.tasks import MemoryStore, run_room_jobs
from tests.generation.test_lm import FakeText

# --- The bound and the rule, without a model ---------------------------------------------------


def a_session(engine="engine"):
    return SimpleNamespace(engine=engine)


def test_the_least_recently_used_rooms_go_first_and_the_bound_holds():
    rooms = ResidentRooms(capacity=3)
    for name in "abcd":
        rooms.keep(name, a_session(), name.encode())
    assert len(rooms) == 3 and "a" not in rooms

    # b is used (taken and kept again): c is now the oldest
    rooms.keep("b", rooms.take("b", b"b", "engine"), b"b2")
    rooms.keep("e", a_session(), b"e")
    assert len(rooms) == 3 and "c" not in rooms
    assert all(name in rooms for name in "bde")


def test_a_held_session_is_used_only_for_the_very_state_this_process_wrote():
    rooms = ResidentRooms(capacity=4)
    mine = a_session()
    rooms.keep("r", mine, b"state written here")

    assert rooms.take("r", b"state written elsewhere", "engine") is None
    assert "r" not in rooms  # a room moved elsewhere is forgotten, not kept stale
    rooms.keep("r", mine, b"state written here")
    assert rooms.take("r", None, "engine") is None  # the store lost it (expired, reset)
    rooms.keep("r", mine, b"state written here")
    assert rooms.take("r", b"state written here", "another engine") is None
    rooms.keep("r", mine, b"state written here")
    assert rooms.take("r", b"state written here", "engine") is mine
    assert "r" not in rooms  # in use: held by nobody else until it is kept again


def test_residency_can_be_turned_off():
    rooms = ResidentRooms(capacity=0)
    rooms.keep("r", a_session(), b"s")
    assert len(rooms) == 0


def test_the_default_bound_fits_the_shipped_models_caches_in_the_budget():
    # dim 192, 4 layers, context 256, guided: 3 MiB of keys and values a room
    per_room = cache_bytes(dim=192, layers=4, context=256, guided=True)
    assert per_room == 3 * 2**20
    assert default_capacity(per_room) == 170  # 512 MiB
    assert default_capacity(per_room, budget_bytes=2**20) == 8  # never fewer than 8


# --- The job path on a tiny model --------------------------------------------------------------


@pytest.fixture(scope="module")
def parts():
    torch.manual_seed(0)
    config = LMConfig.preset("tiny", sections=["build", "drop"], instruments=["piano", "drums"])
    return TokenLM(config).eval(), Codec.load(DEFAULT_CHECKPOINT)


def an_engine(parts):
    model, codec = parts
    return Engine(model, codec, "tiny-test", chunk_s=0.4, text=FakeText())


def job(room, seq, **extra):
    return {"room": room, "sequence": seq, "seed": 7, **extra}


STEER = {"prompts": [["techno", 1.0]], "controls": {"bpm": 128}}


def chunks(eng, store, out, resident, sequences, room="r"):
    codes = []
    for seq in sequences:
        steering = STEER if seq == 2 else None  # a change of steering on the way
        [result] = run_room_jobs(
            [job(room, seq, steering=steering)], out, eng, store, resident=resident
        )
        assert "error" not in result, result
        codes.append(result["codes"])
    return codes


def test_a_resident_rooms_caches_are_the_ones_a_restore_rebuilds_to_float_error(parts, tmp_path):
    eng, st, resident = an_engine(parts), MemoryStore(), ResidentRooms(capacity=4)
    for seq in range(12):  # 10 steps a chunk on a 48-step context: the window slides
        steering = STEER if seq == 2 else None
        [result] = run_room_jobs(
            [job("r", seq, steering=steering)], str(tmp_path), eng, st, resident=resident
        )
        assert result["resident"] == (seq > 0)
        held = resident.take("r", st.get("state:r"), eng)
        n = held.window.shape[-1]
        rebuilt, rebuilt_null = eng.prefill(held)
        for kept, again in [(held.cache, rebuilt), (held.null_cache, rebuilt_null)]:
            assert kept.lengths.tolist() == again.lengths.tolist() == [n]
            for a, b in zip(kept.k + kept.v, again.k + again.v, strict=True):
                assert torch.allclose(a[:, :, :n], b[:, :, :n], atol=1e-4)
        resident.keep("r", held, st.get("state:r"))


def test_a_resident_room_makes_the_same_music_as_one_restored_on_the_tiny_model(parts, tmp_path):
    """Measured, not promised: the caches agree only to float error (above), and a sampled
    token can flip where a random draw lands on a boundary between two codes; from there the
    two paths make different (equally valid) continuations. On this tiny model the twelve
    chunks are identical. On the shipped model `bench_worker` reports `same_codes`: they
    diverge after a few chunks (4 of 13 identical in one run)."""
    eng = an_engine(parts)
    resident = ResidentRooms(capacity=4)
    kept = chunks(eng, MemoryStore(), str(tmp_path / "a"), resident, range(12))
    restored = chunks(eng, MemoryStore(), str(tmp_path / "b"), ResidentRooms(0), range(12))
    assert resident.hits == 11  # every chunk after the first continued the held session
    assert kept == restored


def test_a_state_written_by_another_worker_is_not_served_from_the_stale_resident_copy(
    parts, tmp_path
):
    st, out = MemoryStore(), str(tmp_path)
    one, two = an_engine(parts), an_engine(parts)
    held_by_one, held_by_two = ResidentRooms(4), ResidentRooms(4)
    for seq in range(2):
        run_room_jobs([job("r", seq)], out, one, st, resident=held_by_one)
    run_room_jobs([job("r", 2)], out, two, st, resident=held_by_two)  # the room moved
    assert "r" in held_by_one  # one still holds the room as it was after chunk 1

    [result] = run_room_jobs([job("r", 3)], out, one, st, resident=held_by_one)

    assert "error" not in result  # a stale copy would be at sequence 2 and refuse the job
    assert held_by_one.misses == 2  # chunk 0 (nothing held yet) and chunk 3 (moved on)
    reference, ref_out = MemoryStore(), str(tmp_path / "reference")
    for seq in range(3):
        run_room_jobs([job("r", seq)], ref_out, one, reference, resident=ResidentRooms(0))
    [expected] = run_room_jobs([job("r", 3)], ref_out, one, reference, resident=ResidentRooms(0))
    assert result["codes"] == expected["codes"]


class FailingOnce(MemoryStore):
    """A store whose next write fails (Redis away for a moment)."""

    fail = False

    def set_many(self, items, ttl_s, unless=None):
        if self.fail:
            self.fail = False
            raise ConnectionError("store away")
        return super().set_many(items, ttl_s, unless)


def test_after_a_failed_store_write_the_room_goes_on_from_the_stored_state(parts, tmp_path):
    eng, st, resident, out = an_engine(parts), FailingOnce(), ResidentRooms(4), str(tmp_path)
    run_room_jobs([job("r", 0)], out, eng, st, resident=resident)
    st.fail = True
    with pytest.raises(ConnectionError):
        run_room_jobs([job("r", 1)], out, eng, st, resident=resident)
    assert "r" not in resident  # it had moved past what the store holds

    [again] = run_room_jobs([job("r", 1)], out, eng, st, resident=resident)  # redelivered

    assert again["sequence"] == 1 and not again["reused"]
    assert eng.restore(st.get("state:r")).sequence == 2


class SlowCopy(MemoryStore):
    """A copy of a chunk that read the store before the other copy stored the chunk (a retry
    beside a slow first ask): it sees the store as it was until it writes."""

    def __init__(self, live: MemoryStore, as_it_was: dict) -> None:
        super().__init__()
        self._data, self._was = live._data, as_it_was

    def get(self, key):
        return self._was.get(key) if self._was is not None else super().get(key)

    def set_many(self, items, ttl_s, unless=None):
        self._was = None
        return super().set_many(items, ttl_s, unless)


def test_of_two_copies_of_a_chunk_the_first_stored_wins_and_the_other_is_dropped(parts, tmp_path):
    eng, st, out = an_engine(parts), MemoryStore(), str(tmp_path)
    run_room_jobs([job("r", 0)], out, eng, st, resident=ResidentRooms(0))
    as_it_was = dict(st._data)
    [first] = run_room_jobs([job("r", 1)], out, eng, st, resident=ResidentRooms(0))
    state_after_first = st.get("state:r")

    late, resident = SlowCopy(st, as_it_was), ResidentRooms(4)
    [copy] = run_room_jobs([job("r", 1, attempt=2)], out, eng, late, resident=resident)

    assert copy["reused"] and copy["path"] == first["path"] and copy["codes"] == first["codes"]
    assert st.get("state:r") == state_after_first  # the room goes on from the chunk kept
    assert not (tmp_path / "r" / "00000001-a2.ogg").exists()  # the copy's audio is gone
    assert "r" not in resident


def test_a_room_that_moves_to_a_branch_leaves_no_session_of_its_old_stream_behind(
    parts, tmp_path
):
    """Every remake moves a room to a new branch stream: without this, a room steered every
    20 s would fill the bound with sessions nobody continues (a soak saw the worker grow)."""
    eng, st, held = an_engine(parts), MemoryStore(), ResidentRooms(capacity=8)
    out = str(tmp_path)
    chunks(eng, st, out, held, [0, 1, 2])
    assert "r" in held
    remake = job("r/r1.1-abc", 0, parent={"stream": "r", "sequence": 1}, steering=STEER)
    [result] = run_room_jobs([remake], out, eng, st, resident=held)
    assert "error" not in result
    assert "r" not in held and "r/r1.1-abc" in held and len(held) == 1


def test_results_name_the_worker_that_made_them(parts, tmp_path):
    eng, st = an_engine(parts), MemoryStore()
    [result] = run_room_jobs([job("r", 0)], str(tmp_path), eng, st, worker="gpu@node-1")
    assert result["worker"] == "gpu@node-1"
    assert json.loads(st.get("chunk:r:0"))["worker"] == "gpu@node-1"


def test_a_workers_default_resident_rooms_come_from_the_setting(monkeypatch, parts):
    monkeypatch.setenv("CHORUS_RESIDENT_ROOMS", "5")
    tasks.set_resident_rooms(None)
    try:
        assert tasks.resident_rooms(an_engine(parts)).capacity == 5
    finally:
        tasks.set_resident_rooms(None)


# --- Devices (CPU only here) -------------------------------------------------------------------


def test_the_engine_runs_where_chorus_device_says(monkeypatch):
    monkeypatch.setenv("CHORUS_DEVICE", "cpu")
    eng = Engine.load(text=FakeText())
    assert eng.device == "cpu"
    assert next(eng.model.parameters()).device.type == "cpu"


def test_a_restored_session_lives_on_the_engines_device_and_gives_numpy_back(parts, tmp_path):
    eng, st = an_engine(parts), MemoryStore()
    run_room_jobs([job("r", 0, steering=STEER)], str(tmp_path), eng, st)
    session = eng.restore(st.get("state:r"))
    device = torch.device(eng.device)
    assert session.cond_now.device == device
    assert all(s.begin.device == device for s in session.segments)
    assert all(h.device == device for h in session.decoder.history)
    chunk = session.next_chunk()
    assert chunk.pcm.dtype.name == "float32" and chunk.codes.dtype.name == "int16"
    assert session.cache.k[0].device == device
