"""The committed default codec loads, fits the budget, and round-trips audio at its bitrate."""

import math

import torch

from generation.codec import DEFAULT_CHECKPOINT, Codec

SHIPPED_MODELS_BUDGET_BYTES = 40 * 1024 * 1024  # codec and LM together


def test_the_shipped_codec_is_fp16_and_within_the_budget():
    assert DEFAULT_CHECKPOINT.stat().st_size < SHIPPED_MODELS_BUDGET_BYTES / 3
    blob = torch.load(DEFAULT_CHECKPOINT, map_location="cpu", weights_only=True)
    floats = [t for t in blob["state_dict"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float16 for t in floats)


def test_the_shipped_codec_round_trips_a_second_of_music_like_audio():
    codec = Codec.load(DEFAULT_CHECKPOINT)
    assert codec.config.bitrate_bps <= 3000
    rate = codec.config.sample_rate
    t = torch.arange(rate) / rate
    # A decaying A3 with harmonics every half second: a plucked note, roughly.
    wave = sum(0.2 / k * torch.sin(2 * math.pi * 220 * k * t) for k in (1, 2, 3))
    wave = (wave * torch.exp(-6 * (t % 0.5))).float()
    with torch.no_grad():
        codes = codec.encode(wave)
        out = codec.decode(codes)[: len(wave)]
    assert codes.shape == (codec.config.n_codebooks, math.ceil(rate / codec.config.hop_length))
    assert int(codes.max()) < codec.config.codebook_size
    # Not silence and not noise: the output follows the input's energy envelope.
    envelope = lambda x: x.reshape(-1, rate // 50).pow(2).mean(dim=1).sqrt()  # noqa: E731
    correlation = torch.corrcoef(torch.stack([envelope(wave), envelope(out)]))[0, 1]
    assert correlation > 0.5
