"""The token LM's mechanics on a tiny random model: layout, cache, batching, state, steering."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from generation.codec import DEFAULT_CHECKPOINT, Codec
from generation.lm import Controls, DelayPattern, Engine, LMConfig, Sampling, Steering, TokenLM
from generation.lm.conditioning import blend_embeddings, condition_features
from generation.lm.model import KVCache
from generation.lm.stream import Segment


class FakeText:
    """Deterministic unit vectors per text, so stream tests need not load MiniLM."""

    def encode(self, texts):
        out = []
        for text in texts:
            seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
            v = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


@pytest.fixture(scope="module")
def codec():
    return Codec.load(DEFAULT_CHECKPOINT)


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    config = LMConfig.preset("tiny", sections=["intro", "drop"], instruments=["piano", "drums"])
    return TokenLM(config).eval()


@pytest.fixture
def engine(tiny_model, codec):
    return Engine(tiny_model, codec, "tiny-test", chunk_s=0.4, text=FakeText())


# -- the delay pattern --------------------------------------------------------------------------


def test_pattern_round_trips_and_delays_each_level_by_its_index():
    pattern = DelayPattern(4, pad_token=99)
    codes = torch.randint(0, 99, (2, 4, 30))
    steps = pattern.apply(codes)
    assert steps[0, 2, 5].item() == codes[0, 2, 3].item()  # level 2 of step 5 is frame 3
    assert (steps[:, 3, :3] == 99).all() and (steps[:, 0] == codes[:, 0]).all()
    # all 30 frames are complete after 33 steps: the steps of 3 frames more
    longer = pattern.apply(torch.cat([codes, torch.randint(0, 99, (2, 4, 3))], -1))
    assert torch.equal(pattern.revert(longer), codes)


def test_pattern_incremental_frames_equal_the_whole():
    pattern = DelayPattern(3, pad_token=50)
    codes = torch.randint(0, 50, (1, 3, 20))
    steps = pattern.apply(torch.cat([codes, torch.randint(0, 50, (1, 3, 2))], -1))  # 22 steps
    pending, got, first = torch.full((1, 3, 2), 50), [], 0
    for size in (1, 5, 2, 7, 7):
        frames, pending = pattern.frames(steps[..., first : first + size], first, pending)
        got.append(frames)
        first += size
    assert torch.equal(torch.cat(got, -1), codes)


def test_pattern_uses_history_when_cropping_a_longer_stream():
    pattern = DelayPattern(3, pad_token=50)
    codes = torch.randint(0, 50, (1, 3, 20))
    whole = pattern.apply(codes)
    assert torch.equal(pattern.apply(codes[..., 8:], history=codes[..., :8]), whole[..., 8:])


# -- the model ------------------------------------------------------------------------------------


def test_cached_steps_give_the_logits_of_a_whole_pass(tiny_model):
    c = tiny_model.config
    tokens = torch.randint(0, c.codebook_size, (2, c.n_codebooks, 20))
    cond = torch.randn(2, 20, c.dim)
    with torch.no_grad():
        whole = tiny_model(tokens, cond)
        cache = KVCache.empty(c, 2)
        stepped = torch.stack(
            [tiny_model.step(tokens[..., t], cond[:, t], cache) for t in range(20)], 1
        )
        # a prefilled cache continues like the step-by-step one
        _, prefilled = tiny_model(tokens[..., :12], cond[:, :12], return_cache=True)
        later = tiny_model.step(tokens[..., 12], cond[:, 12], prefilled)
    torch.testing.assert_close(stepped, whole, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(later, whole[:, 12], atol=1e-5, rtol=1e-4)


def test_rows_of_a_batch_at_different_positions_are_independent(tiny_model):
    c = tiny_model.config
    a = torch.randint(0, c.codebook_size, (1, c.n_codebooks, 10))
    b = torch.randint(0, c.codebook_size, (1, c.n_codebooks, 4))
    cond = torch.randn(2, c.dim)
    with torch.no_grad():
        _, cache_a = tiny_model(a, cond[:1, None].expand(1, 10, -1), return_cache=True)
        _, cache_b = tiny_model(b, cond[1:, None].expand(1, 4, -1), return_cache=True)
        x = torch.randint(0, c.codebook_size, (2, c.n_codebooks))
        alone = [
            tiny_model.step(x[:1], cond[:1], cache_a.select([0])),
            tiny_model.step(x[1:], cond[1:], cache_b.select([0])),
        ]
        batched = tiny_model.step(x, cond, KVCache.stack([cache_a, cache_b]))
    torch.testing.assert_close(batched, torch.cat(alone), atol=1e-5, rtol=1e-4)


def test_save_and_load_keep_the_config_and_weights(tiny_model, tmp_path):
    tiny_model.save(tmp_path / "lm.pt", {"note": "x"})
    loaded = TokenLM.load(tmp_path / "lm.pt")
    assert loaded.config == tiny_model.config and loaded.extra == {"note": "x"}
    tokens = torch.randint(0, 1024, (1, 3, 8))
    cond = torch.randn(1, 8, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(tokens, cond), tiny_model(tokens, cond), atol=2e-2, rtol=2e-2
        )  # fp16 on disk


# -- conditions -----------------------------------------------------------------------------------


def test_controls_refuse_out_of_range_values():
    with pytest.raises(ValueError, match="bpm"):
        Controls(bpm=400)
    with pytest.raises(ValueError, match="energy"):
        Controls(energy=1.5)
    with pytest.raises(ValueError, match="key"):
        Controls(key="H")
    assert Controls(key="Db").key == "Db"  # enharmonic spellings are fine


def test_steering_round_trips_through_a_dict():
    s = Steering(
        (("slow strings", 0.7), ("drop", 0.3)),
        Controls(bpm=90, instruments_in=("strings",), instruments_out=("drums",)),
    )
    assert Steering.from_dict(s.as_dict()) == s


def test_blend_is_a_unit_vector_between_its_prompts():
    a, b = np.eye(384, dtype=np.float32)[:2]
    mid = blend_embeddings(np.stack([a, b]), [1, 1])
    assert np.isclose(np.linalg.norm(mid), 1) and np.isclose(mid[0], mid[1])
    assert blend_embeddings(np.stack([a, b]), [0, 0]) is None
    assert np.allclose(blend_embeddings(np.stack([a, b]), [3, 0]), a)


def test_unknown_names_are_unspecified_not_errors():
    vocab = LMConfig.preset("tiny", sections=["drop"], instruments=["piano"]).vocab
    f = condition_features(
        [(None, Controls(section="chorus", instruments_in=("kazoo", "piano")))], vocab
    )
    assert f["section"].item() == 1  # the "unspecified" index
    assert f["instruments"].tolist() == [[1.0]]


def test_ramp_reaches_the_new_condition_at_the_end_of_the_chunk():
    seg = Segment(100, 4, torch.zeros(2), torch.ones(2) * 4)
    assert seg.at(100, 104)[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert seg.at(102, 103)[:, 0].tolist() == [3.0]


# -- streams ------------------------------------------------------------------------------------


def codes_of(chunks):
    return np.concatenate([c.codes for c in chunks], -1)


def test_chunks_are_contiguous_and_deterministic_given_the_seed(engine):
    def run(seed):
        s = engine.session(seed, Steering.of("techno", bpm=128))
        return [s.next_chunk() for _ in range(4)]

    first, again, other = run(3), run(3), run(4)
    assert [c.sequence for c in first] == [0, 1, 2, 3]
    assert all(c.codes.shape[-1] == engine.chunk_frames for c in first)
    assert [c.start_frame for c in first] == [0, 10, 20, 30]
    assert all(len(c.pcm) == engine.chunk_frames * 960 for c in first)
    assert (codes_of(first) < 1024).all()  # real codes only: PAD never reaches the decoder
    assert np.array_equal(codes_of(first), codes_of(again))
    assert not np.array_equal(codes_of(first), codes_of(other))


def test_streaming_decode_equals_one_decode_of_all_frames(engine, codec):
    s = engine.session(1, Steering.of("piano"))
    chunks = [s.next_chunk() for _ in range(3)]
    whole = codec.decode(torch.from_numpy(codes_of(chunks).astype(np.int64))).numpy()
    np.testing.assert_allclose(
        np.concatenate([c.pcm for c in chunks]), whole.clip(-1, 1), atol=1e-4
    )


def test_a_batch_of_streams_equals_the_same_streams_alone(engine):
    steer = [Steering.of("ambient"), Steering.of("house", bpm=124), Steering.of("jazz")]

    def alone(i):
        s = engine.session(10 + i, steer[i], Sampling(guidance=1.0 if i == 1 else 3.0))
        if i == 2:
            s.next_chunk()  # this stream is a chunk ahead of the others
        return [s.next_chunk(Steering.of("drums") if n == 2 else None) for n in range(5)]

    expected = [codes_of(alone(i)) for i in range(3)]
    sessions = [
        engine.session(10 + i, steer[i], Sampling(guidance=1.0 if i == 1 else 3.0))
        for i in range(3)
    ]
    sessions[2].next_chunk()
    got = [[], [], []]
    for n in range(5):
        chunks = engine.next_chunks(sessions, [Steering.of("drums") if n == 2 else None] * 3)
        for i, chunk in enumerate(chunks):
            got[i].append(chunk)
    for i in range(3):
        assert np.array_equal(codes_of(got[i]), expected[i]), f"stream {i} differs"


def test_a_restored_session_continues_exactly(engine):
    s = engine.session(5, Steering.of("rock", bpm=140))
    for n in range(3):
        s.next_chunk(Steering.of("orchestral") if n == 1 else None)
    blob = s.to_bytes()
    restored = engine.restore(blob)
    # 8 more chunks: the 48-step window slides several times on the way
    original = [s.next_chunk() for _ in range(8)]
    continued = [restored.next_chunk() for _ in range(8)]
    assert [c.sequence for c in continued] == list(range(3, 11))
    assert np.array_equal(codes_of(original), codes_of(continued))
    np.testing.assert_allclose(
        np.concatenate([c.pcm for c in continued]),
        np.concatenate([c.pcm for c in original]),
        atol=1e-5,
    )
    assert len(blob) < 64_000


def test_restore_refuses_another_models_state(engine, tiny_model, codec):
    blob = engine.session(1).to_bytes()
    other = Engine(tiny_model, codec, "another-model", chunk_s=0.4, text=FakeText())
    with pytest.raises(ValueError, match="model"):
        other.restore(blob)


def test_a_stream_goes_on_past_its_window_with_bounded_state(engine):
    s = engine.session(2, Steering.of("lofi"))
    for _ in range(30):  # 300 frames through a 48-step window
        chunk = s.next_chunk()
        assert s.window.shape[-1] <= engine.model.config.context
        assert np.isfinite(chunk.pcm).all()
    assert s.frames_out == 300
    assert sum(seg.length for seg in s.segments) >= s.window.shape[-1]


def test_hard_reset_starts_afresh_and_keeps_the_timeline(engine):
    s = engine.session(2, Steering.of("lofi"))
    s.next_chunk()
    s.next_chunk()
    s.hard_reset(Steering.of("metal", bpm=170))
    chunk = s.next_chunk()
    assert chunk.sequence == 2 and chunk.start_frame == 20
    assert chunk.steering == Steering.of("metal", bpm=170)
    assert s.window.shape[-1] == engine.chunk_frames + engine.model.pattern.latency


def test_priming_continues_a_reference_clip(engine, codec):
    reference = torch.randint(0, 64, (3, 30))
    s = engine.session(9, Steering())
    s.prime(reference)
    chunk = s.next_chunk()
    assert chunk.codes.shape == (3, engine.chunk_frames)
    # the first frames finish the reference's partial ones: their coarse level is the reference's
    assert chunk.codes[0, 0] == reference[0, -2]


def test_a_new_leading_prompt_keeps_only_a_second_of_context(engine):
    engine.switch_context_s = 0.2  # 5 steps at 25 Hz
    s = engine.session(4, Steering.of("techno"))
    for _ in range(3):
        s.next_chunk()
    s.next_chunk(Steering.of("techno", bpm=140))  # same leading prompt: context kept
    kept = s.window.shape[-1]
    s.next_chunk(Steering((("piano", 0.8), ("techno", 0.2))))  # the lead changes
    assert kept > 5 + engine.chunk_frames
    assert s.window.shape[-1] == 5 + engine.chunk_frames
