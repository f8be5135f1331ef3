"""Room chunk jobs and songs on a tiny random model: idempotence, handover, form, best-of-n."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch

from generation.codec import DEFAULT_CHECKPOINT, Codec
from generation.interface import SongRequest
from generation.lm import Engine, LMConfig, TokenLM
from generation.lm.songs import (
    PROCEDURAL_FORM,
    SCORED_FORM,
    ChorusSongGenerator,
    section_at,
    section_plan,
)
from generation.tasks import MemoryStore, run_room_jobs
from tests.generation.test_lm import FakeText


@pytest.fixture(scope="module")
def tiny_engine_parts():
    torch.manual_seed(0)
    config = LMConfig.preset(
        "tiny", sections=["build", "drop", "intro", "outro"], instruments=["piano", "drums"]
    )
    model = TokenLM(config).eval()
    model.extra = {
        "styles": [
            {
                "style": "techno",
                "source": "procedural",
                "embedding": FakeText().encode(["techno"])[0].tolist(),
                "bpm": 128.0,
                "energy": 0.8,
                "brightness": 0.6,
                "minor_share": 0.7,
                "instruments": ["drums"],
                "sections": ["build", "drop"],
            },
        ]
    }
    return model, Codec.load(DEFAULT_CHECKPOINT)


def make_engine(parts):
    model, codec = parts
    return Engine(model, codec, "tiny-test", chunk_s=0.4, text=FakeText())


def job(room, seq, **extra):
    return {"room": room, "sequence": seq, "seed": 7, **extra}


def test_room_jobs_run_batched_and_write_browser_audio(tiny_engine_parts, tmp_path):
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    steer = {"prompts": [["techno", 1.0]], "controls": {"bpm": 128}}
    results = run_room_jobs([job("a", 0, steering=steer), job("b", 0)], str(tmp_path), eng, st)
    assert [r["sequence"] for r in results] == [0, 0]
    assert all(r["provenance"]["batch"] == 2 for r in results)
    audio, rate = soundfile.read(results[0]["path"])
    assert rate == 24000 and abs(len(audio) - 0.4 * rate) < 0.02 * rate
    assert results[0]["steering"]["controls"]["bpm"] == 128


def test_a_repeated_job_returns_the_stored_chunk_without_generating(tiny_engine_parts, tmp_path):
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    first = run_room_jobs([job("a", 0)], str(tmp_path), eng, st)[0]
    again = run_room_jobs([job("a", 0)], str(tmp_path), eng, st)[0]
    assert again["reused"] and again["codes"] == first["codes"]
    state = eng.restore(st.get("state:a"))
    assert state.sequence == 1  # the redelivered job did not advance the room


def test_another_worker_continues_a_room_exactly(tiny_engine_parts, tmp_path):
    st_one, st_two = MemoryStore(), MemoryStore()
    one, two = make_engine(tiny_engine_parts), make_engine(tiny_engine_parts)
    for seq in range(3):  # worker one alone
        run_room_jobs([job("r", seq)], str(tmp_path / "one"), one, st_one)
    last_one = json.loads(st_one.get("chunk:r:2"))
    for seq in range(2):  # worker one, then it dies; worker two (a fresh engine) goes on
        run_room_jobs([job("r", seq)], str(tmp_path / "two"), one, st_two)
    last_two = run_room_jobs([job("r", 2)], str(tmp_path / "two"), two, st_two)[0]
    assert last_two["codes"] == last_one["codes"]


def test_stale_and_unknown_jobs_are_reported_not_run(tiny_engine_parts, tmp_path):
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    run_room_jobs([job("a", 0)], str(tmp_path), eng, st)
    run_room_jobs([job("a", 1)], str(tmp_path), eng, st)
    st._data.pop("chunk:a:0")  # expired result of an old chunk
    stale, unknown = run_room_jobs([job("a", 0), job("zzz", 5)], str(tmp_path), eng, st)
    assert stale["error"] == "stale" and stale["next_sequence"] == 2
    assert unknown["error"] == "no state for this room"


def test_a_hard_cut_restarts_the_music_but_not_the_timeline(tiny_engine_parts, tmp_path):
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    run_room_jobs([job("a", 0)], str(tmp_path), eng, st)
    steer = {"prompts": [["jazz", 1.0]], "controls": {}}
    cut = run_room_jobs([job("a", 1, steering=steer, reset=True)], str(tmp_path), eng, st)[0]
    assert cut["sequence"] == 1 and cut["start_frame"] == 10
    assert cut["steering"]["prompts"] == [["jazz", 1.0]]


# -- songs ----------------------------------------------------------------------------------------


def test_section_plans_scale_with_the_song():
    short = section_plan(10, PROCEDURAL_FORM)
    assert [name for name, _ in short] == ["build", "drop"]
    full = section_plan(300, PROCEDURAL_FORM)
    assert [n for n, _ in full] == ["intro", "build", "drop", "breakdown", "build", "drop", "outro"]
    assert section_at(full, 0) == "intro" and section_at(full, 299) == "outro"
    assert section_at(full, 100) == "drop"
    assert [n for n, _ in section_plan(120, SCORED_FORM)] == ["opening", "middle", "ending"]


def test_a_song_has_its_length_form_expansion_and_progress(tiny_engine_parts):
    gen = ChorusSongGenerator(make_engine(tiny_engine_parts))
    seen = []
    song = gen.generate_song(SongRequest("techno", 12.0, seed=3), seen.append)
    assert song.sample_rate == 24000 and len(song.pcm) == 12 * 24000
    assert np.isfinite(song.pcm).all() and np.abs(song.pcm).max() <= 1
    assert seen == sorted(seen) and seen[-1] == 1.0 and len(seen) > 10
    p = song.provenance
    assert p["expansion"]["style"] == "techno" and p["controls"]["bpm"] == 128
    assert [s for s, _ in p["sections"]] == ["build", "drop"]
    plain = gen.generate_song(
        SongRequest("techno", 10.0, seed=3, expand_prompt=False), lambda f: None
    )
    assert plain.provenance["expansion"] == {} and plain.provenance["controls"]["bpm"] is None


def test_best_of_n_keeps_the_candidate_the_critic_prefers(tiny_engine_parts):
    loudness = lambda pcm, sr: float(np.sqrt(np.mean(pcm**2)))  # noqa: E731
    gen = ChorusSongGenerator(make_engine(tiny_engine_parts), critic=loudness)
    song = gen.generate_song(SongRequest("techno", 10.0, seed=1, candidates=3), lambda f: None)
    best = song.provenance["best_of"]
    assert best["n"] == 3 and len(best["scores"]) == 3
    assert best["chosen"] == int(np.argmax(best["scores"]))
    assert np.isclose(loudness(song.pcm, 24000), max(best["scores"]), rtol=1e-3)


def test_a_reference_clip_starts_the_song(tiny_engine_parts, tmp_path):
    path = tmp_path / "ref.wav"
    t = np.arange(48000 * 3) / 48000  # 3 s at 48 kHz: resampled on the way in
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 48000)
    gen = ChorusSongGenerator(make_engine(tiny_engine_parts))
    song = gen.generate_song(
        SongRequest("", 10.0, seed=1, reference_path=str(path)), lambda f: None
    )
    assert song.provenance["reference"] and len(song.pcm) == 240000


# --- Rewinds (branches) and auditions ------------------------------------------------------------


def test_a_branch_remakes_a_chunk_from_the_state_just_before_it(tiny_engine_parts, tmp_path):
    """The conductor remakes a chunk nobody has heard when the steering changes: a branch
    stream starts from the state kept just before that chunk. Under the same steering the
    remake is the very same music (same context, same random draws); under another it differs,
    and the branch goes on from its own state."""
    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    out = str(tmp_path)
    for seq in range(3):
        run_room_jobs([job("r", seq)], out, eng, st)
    original = json.loads(st.get("chunk:r:2"))
    assert st.get("state:r@2") is not None and st.get("state:r@0") is None  # 0 had no state

    parent = {"stream": "r", "sequence": 2}
    [same] = run_room_jobs([job("r/r2.1", 0, parent=parent)], out, eng, st)
    assert same["codes"] == original["codes"]

    steering = {"prompts": [["dark techno", 1.0]], "controls": {"bpm": 140.0}}
    [other] = run_room_jobs([job("r/r2.2", 0, parent=parent, steering=steering)], out, eng, st)
    assert other["codes"] != original["codes"]
    assert other["steering"]["prompts"] == [["dark techno", 1.0]]
    [after] = run_room_jobs([job("r/r2.2", 1)], out, eng, st)  # the branch continues itself
    assert "error" not in after and after["sequence"] == 1
    assert st.get("chunk:r:2") is not None  # the parent stream is untouched


def test_auditions_preview_a_steering_from_a_copy_of_the_room(tiny_engine_parts, tmp_path):
    from generation.tasks import run_audition_jobs

    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    out = str(tmp_path)
    for seq in range(2):
        run_room_jobs([job("r", seq)], out, eng, st)
    state_before = st.get("state:r")
    jobs = [
        {"key": f"r/{n}", "stream": "r", "steering": {"prompts": [[text, 1.0]]}, "seconds": 2.0}
        for n, text in enumerate(["dark techno", "soft piano"])
    ]
    results = run_audition_jobs(jobs, out, eng, st)

    assert st.get("state:r") == state_before  # the room's own stream goes on as if nothing was
    for result in results:
        audio, rate = soundfile.read(result["path"])
        assert rate == eng.sample_rate and len(audio) / rate == pytest.approx(2.0, abs=0.05)
        assert result["duration_s"] == pytest.approx(len(audio) / rate)
        assert result["provenance"]["kind"] == "audition"
    assert results[0]["steering"]["prompts"] == [["dark techno", 1.0]]
    [again] = run_audition_jobs(jobs[:1], out, eng, st)
    assert again["reused"] and again["path"] == results[0]["path"]
    # a room with no stream yet: the preview starts fresh under the proposal's steering
    [fresh] = run_audition_jobs([{**jobs[1], "key": "new/1", "stream": "new"}], out, eng, st)
    assert fresh["duration_s"] > 1.9


def test_previews_give_way_to_a_remake_and_carry_on_where_they_stopped(tiny_engine_parts, tmp_path):
    from generation.tasks import URGENT_BELL, run_audition_jobs, yielded

    eng, st = make_engine(tiny_engine_parts), MemoryStore()
    out = str(tmp_path)
    for seq in range(2):
        run_room_jobs([job("r", seq)], out, eng, st)
    preview = {"stream": "r", "steering": {"prompts": [["dark techno", 1.0]]}, "seconds": 2.0}
    [whole] = run_audition_jobs([{**preview, "key": "whole"}], out, eng, st)
    whole_audio, _ = soundfile.read(whole["path"])

    interrupted = [{**preview, "key": "cut"}]
    st.ring(URGENT_BELL)  # a ring from before the batch began is not for it
    assert run_audition_jobs([{**preview, "key": "late"}], out, eng, st)[0]["duration_s"] > 1.9

    rings = iter([True])  # the conductor asks for a chunk while the first chunk is made

    def bell_rang() -> bool:
        return next(rings, False)

    first = run_audition_jobs(interrupted, out, eng, st, should_yield=bell_rang)
    assert first == [{"key": "cut", "yielded": True}]
    assert yielded(interrupted, first) == interrupted
    assert st.get("audition:cut") is None  # nothing announced half made

    [done] = run_audition_jobs(interrupted, out, eng, st)  # the bell was answered: it finishes
    audio, _ = soundfile.read(done["path"])
    assert done["duration_s"] == pytest.approx(whole["duration_s"])
    assert done["provenance"]["chunks"] == whole["provenance"]["chunks"]
    # the same music as a preview made in one go (its stream was saved and restored between)
    assert np.abs(audio - whole_audio).max() < 1e-3, np.abs(audio - whole_audio).max()
