"""The codec: shapes, bitrate, streaming, files, codebook upkeep, training and evaluation.

Everything runs on the tiny preset and on synthetic music made here (harmonic notes with
envelopes and noise bursts), so the file needs no corpus and finishes in seconds on a CPU.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from generation.codec import Codec, CodecConfig, codebook_usage
from generation.codec.quantizer import VectorQuantizer
from generation.train.codec import CodecTrainer, TrainConfig

SR = 24000


def synthetic_clip(seed: int, seconds: float = 2.0) -> np.ndarray:
    """A few harmonic notes with attack/decay envelopes plus short noise bursts, peak 0.5."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    out = np.zeros_like(t)
    for _ in range(6):
        f0 = 110.0 * 2 ** (rng.integers(0, 30) / 12)
        start, length = rng.uniform(0, seconds * 0.8), rng.uniform(0.2, 0.8)
        local = t - start
        envelope = np.where(local >= 0, np.minimum(local / 0.01, 1) * np.exp(-local / length), 0)
        for harmonic in range(1, 7):
            out += envelope * np.sin(2 * np.pi * f0 * harmonic * t) / harmonic
    for _ in range(4):
        start = int(rng.uniform(0, seconds - 0.05) * SR)
        burst = rng.standard_normal(int(0.05 * SR)) * np.exp(-np.arange(int(0.05 * SR)) / 300)
        out[start : start + len(burst)] += burst
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def write_corpus(folder, splits: dict[str, int], seconds: float = 2.0):
    """FLAC clips and a manifest.jsonl in the corpus builder's format; returns the manifest."""
    rows, seed = [], 0
    for split, count in splits.items():
        for _ in range(count):
            seed += 1
            name = f"clips/{split}-{seed}.flac"
            (folder / "clips").mkdir(parents=True, exist_ok=True)
            sf.write(folder / name, synthetic_clip(seed, seconds), SR)
            rows.append(
                {
                    "id": f"synthetic-{seed}",
                    "path": name,
                    "split": split,
                    "source": "synthetic",
                    "piece_id": f"piece-{seed}",
                    "style": "test",
                    "instruments": ["sine"],
                    "bpm": 120,
                    "key": "C",
                    "mode": "major",
                    "energy": 0.5,
                    "section": "a",
                    "caption": "test tones",
                    "duration_s": seconds,
                    "sample_rate": SR,
                }
            )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture
def tiny_codec() -> Codec:
    torch.manual_seed(0)
    return Codec(CodecConfig.preset("tiny")).eval()


@pytest.fixture
def music() -> torch.Tensor:
    return torch.from_numpy(np.stack([synthetic_clip(1), synthetic_clip(2)]))


def test_encode_gives_codes_per_frame_and_decode_gives_whole_frames(tiny_codec):
    wave = torch.randn(2, SR + 100) * 0.1  # not a whole number of frames: padded up
    codes = tiny_codec.encode(wave)
    frames = -(-wave.shape[1] // tiny_codec.hop_length)
    assert codes.shape == (2, tiny_codec.n_codebooks, frames)
    assert codes.dtype == torch.long
    assert codes.min() >= 0 and codes.max() < tiny_codec.codebook_size
    assert tiny_codec.decode(codes).shape == (2, frames * tiny_codec.hop_length)
    # Unbatched in, unbatched out.
    assert tiny_codec.encode(wave[0]).shape == (tiny_codec.n_codebooks, frames)
    assert tiny_codec.decode(codes[0]).shape == (frames * tiny_codec.hop_length,)


def test_bitrate_is_frames_times_codebooks_times_bits():
    default = CodecConfig()
    assert default.frame_rate == 24000 / 960 == 25
    assert default.codebook_bits == 10
    assert default.bitrate_bps == 25 * 8 * 10 == 2000
    assert default.bitrate_bps <= 3000
    assert CodecConfig.preset("hq").bitrate_bps == 25 * 12 * 10 == 3000
    codec = Codec(CodecConfig.preset("tiny"))
    assert codec.bitrate_bps == 25 * 4 * 6


def test_streaming_decode_equals_whole_clip_decode(tiny_codec):
    for block in tiny_codec.decoder.stack.blocks:  # make the blocks matter more than at init
        block.gamma.data.fill_(1.0)
    codes = torch.randint(0, tiny_codec.codebook_size, (2, tiny_codec.n_codebooks, 30))
    whole = tiny_codec.decode(codes)
    state, pieces, start = tiny_codec.init_stream(2), [], 0
    for size in (1, 4, 2, 7, 1, 15):
        pcm, state = tiny_codec.decode_stream(codes[:, :, start : start + size], state)
        assert pcm.shape == (2, size * tiny_codec.hop_length)
        pieces.append(pcm)
        start += size
    streamed = torch.cat(pieces, dim=1)
    assert state.frames == 30
    assert (streamed - whole).abs().max() <= 1e-4 * whole.abs().max()


def test_stream_state_can_move_to_another_process(tiny_codec, tmp_path):
    codes = torch.randint(0, tiny_codec.codebook_size, (1, tiny_codec.n_codebooks, 10))
    first, state = tiny_codec.decode_stream(codes[:, :, :4], tiny_codec.init_stream(1))
    torch.save(state, tmp_path / "state.pt")
    resumed = torch.load(tmp_path / "state.pt", weights_only=False)
    second, _ = tiny_codec.decode_stream(codes[:, :, 4:], resumed)
    whole = tiny_codec.decode(codes)
    assert torch.allclose(torch.cat([first, second], 1), whole, atol=1e-4 * whole.abs().max())


def test_save_and_load_in_fp16_gives_the_same_codes(tiny_codec, music, tmp_path):
    tiny_codec.save(tmp_path / "codec.pt")
    loaded = Codec.load(tmp_path / "codec.pt")
    assert loaded.config == tiny_codec.config
    blob = torch.load(tmp_path / "codec.pt", weights_only=True)
    weights = [v for v in blob["state_dict"].values() if v.is_floating_point()]
    assert all(v.dtype == torch.float16 for v in weights)
    # The file holds the fp16-rounded weights; the original, rounded the same way, agrees exactly.
    rounded = Codec(tiny_codec.config).eval()
    rounded.load_state_dict({k: v.half().float() for k, v in tiny_codec.state_dict().items()})
    assert torch.equal(loaded.encode(music), rounded.encode(music))
    assert torch.equal(loaded.decode(loaded.encode(music)), rounded.decode(rounded.encode(music)))
    # And rounding itself changes almost no code.
    agreement = (loaded.encode(music) == tiny_codec.encode(music)).float().mean()
    assert agreement > 0.9


def test_dead_code_restart_replaces_unused_codes():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(size=8, dim=4)
    quantizer.initialised.fill_(True)
    quantizer.cluster_size.copy_(torch.tensor([5.0, 5, 5, 5, 5, 5, 0, 1.0]))
    before = quantizer.codebook.clone()
    batch = torch.randn(32, 4) + 100.0  # far from every entry: restarted rows are recognisable
    assert quantizer.restart_dead_codes(batch) == 2
    assert torch.equal(quantizer.codebook[:6], before[:6])
    for row in quantizer.codebook[6:]:
        assert (batch == row).all(dim=1).any()
    # A restarted entry starts from the mean count, so it is not dead again at once.
    assert quantizer.restart_dead_codes(batch) == 0


def test_training_restarts_entries_nothing_is_assigned_to():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(size=16, dim=2, decay=0.5).train()
    quantizer(torch.randn(64, 2))
    quantizer.codebook[3] = 1e6  # an entry nothing will ever be nearest to
    quantizer.embed_sum[3] = 1e6 * quantizer.cluster_size[3]
    for _ in range(12):
        quantizer(torch.randn(64, 2))
    assert quantizer.codebook[3].abs().max() < 100


def test_usage_is_perplexity_as_a_share_of_codebook_size():
    # Codebook 0 uses 4 of 8 entries equally: perplexity 4, share 0.5, half the entries used.
    # Codebook 1 always uses one entry: perplexity 1, share 1/8.
    codes = torch.tensor([[[0, 1, 2, 3, 0, 1, 2, 3], [5, 5, 5, 5, 5, 5, 5, 5]]])
    usage = codebook_usage(codes, codebook_size=8)
    assert usage["perplexity_share"] == pytest.approx([0.5, 0.125])
    assert usage["used_fraction"] == pytest.approx([0.5, 0.125])


def test_a_few_training_steps_lower_the_loss(tiny_codec, music):
    config = TrainConfig(preset="tiny", lr=3e-3, warmup_steps=1, steps=10)
    trainer = CodecTrainer(tiny_codec, config)
    batch = music[:, : SR // 2]
    losses = [trainer.train_step(batch)["loss"] for _ in range(10)]
    assert trainer.step == 10
    assert np.mean(losses[-3:]) < losses[0]


def test_adversarial_step_runs_after_warm_up(tiny_codec, music):
    config = TrainConfig(preset="tiny", adversarial=True, adv_start=1, warmup_steps=1)
    trainer = CodecTrainer(tiny_codec, config)
    batch = music[:, : SR // 4]
    assert "disc" not in trainer.train_step(batch)  # warm-up: reconstruction losses only
    logs = trainer.train_step(batch)
    assert {"disc", "adv", "fm"} <= logs.keys()
    assert all(np.isfinite(v) for v in logs.values())


def test_training_command_writes_checkpoints_and_resumes(tmp_path):
    from generation.train.__main__ import main

    manifest = write_corpus(tmp_path / "corpus", {"train": 3, "valid": 1}, seconds=1.0)
    out = tmp_path / "run"
    common = ["codec", "--manifest", str(manifest), "--out", str(out), "--preset", "tiny"]
    common += ["--batch", "2", "--crop-s", "0.4", "--eval-every", "2", "--save-every", "2"]
    main([*common, "--steps", "2", "--device", "cpu"])
    assert {"last.pt", "codec.pt", "codec-best.pt", "log.jsonl"} <= {p.name for p in out.iterdir()}
    main([*common, "--steps", "3", "--device", "cpu", "--resume"])
    assert torch.load(out / "last.pt", weights_only=True)["step"] == 3
    assert Codec.load(out / "codec.pt").n_codebooks == 4
    evals = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any("valid" in row for row in evals)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    from generation.train.__main__ import main

    manifest = write_corpus(tmp_path / "corpus", {"train": 3}, seconds=1.0)
    common = ["codec", "--manifest", str(manifest), "--preset", "tiny", "--batch", "2"]
    common += ["--crop-s", "0.4", "--save-every", "2", "--device", "cpu"]
    main([*common, "--out", str(tmp_path / "straight"), "--steps", "4"])
    main([*common, "--out", str(tmp_path / "resumed"), "--steps", "2"])
    main([*common, "--out", str(tmp_path / "resumed"), "--steps", "4", "--resume"])
    straight = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["codec"]
    resumed = torch.load(tmp_path / "resumed" / "last.pt", weights_only=True)["codec"]
    for name, value in straight.items():
        assert torch.allclose(value.float(), resumed[name].float(), atol=1e-6), name


def test_evaluation_ends_with_a_json_summary(tiny_codec, tmp_path, capsys):
    from generation.eval.__main__ import main

    manifest = write_corpus(tmp_path / "corpus", {"test": 2}, seconds=1.0)
    tiny_codec.save(tmp_path / "codec.pt")
    args = ["codec", "--checkpoint", str(tmp_path / "codec.pt"), "--manifest", str(manifest)]
    args += ["--clips", "2", "--seconds", "1", "--rtf-seconds", "1"]
    has_ffmpeg = shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None
    main(args)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    required = {"bitrate_kbps", "mel_distance", "opus6_mel_distance", "si_sdr", "rtf_1thread"}
    assert required | {"codebook_usage_min"} <= summary.keys()
    assert summary["bitrate_kbps"] == pytest.approx(0.6)
    assert summary["rtf_1thread"] > 0
    if has_ffmpeg:
        assert summary["opus6_mel_distance"] > 0
        assert 4 < summary["opus6_kbps"] < 8
    else:
        # The Opus comparison is skipped with its reason; our own numbers are still there.
        assert summary["opus6_mel_distance"] is None
        assert "ffmpeg" in summary["opus_skipped"]
