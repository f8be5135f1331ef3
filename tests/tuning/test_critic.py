"""The critic on a tiny random trunk: it learns a preference that is there, and only that."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generation.codec import DEFAULT_CHECKPOINT, Codec
from generation.lm import Engine, LMConfig, TokenLM
from generation.lm.songs import ChorusSongGenerator
from generation.tuning.critic import CriticConfig, RewardModel, SongCritic
from tests.generation.test_lm import FakeText

K, FRAMES = 3, 20


@pytest.fixture(scope="module")
def trunk():
    torch.manual_seed(0)
    return TokenLM(LMConfig.preset("tiny", sections=["intro"], instruments=["piano"])).eval()


def item(quality: float, rng: np.random.Generator) -> torch.Tensor:
    """Codes whose coarse level plays a motif (codes 0-3) in this share of frames, anything
    else otherwise: a hidden taste the critic has to find."""
    liked = rng.random(FRAMES) < quality
    level0 = np.where(liked, rng.integers(0, 4, FRAMES), rng.integers(4, 1024, FRAMES))
    finer = rng.integers(0, 1024, (K - 1, FRAMES))
    return torch.from_numpy(np.vstack([level0, finer]))


def preference_data(n_items, n_pairs, seed, noisy=True):
    """Items with a hidden quality, and pairs judged by listeners who prefer higher quality
    (Bradley–Terry noise: a close pair is nearly a coin toss)."""
    rng = np.random.default_rng(seed)
    quality = rng.random(n_items)
    items = [item(q, rng) for q in quality]
    pairs = []
    for _ in range(n_pairs):
        a, b = rng.choice(n_items, 2, replace=False)
        p_a = 1 / (1 + np.exp(-8 * (quality[a] - quality[b]))) if noisy else quality[a] > quality[b]
        pairs.append((int(a), int(b)) if rng.random() < p_a else (int(b), int(a)))
    return items, pairs, quality


def test_the_critic_learns_a_hidden_taste_and_it_holds_on_items_it_never_saw(trunk):
    items, pairs, quality = preference_data(160, 600, seed=1)
    # held-out pairs only between items no training pair touches
    seen = set(range(100))
    train = [p for p in pairs if p[0] in seen and p[1] in seen]
    held_out = [p for p in pairs if p[0] not in seen and p[1] not in seen]
    critic = RewardModel(trunk, hidden=32)
    info = critic.fit(items, train, held_out, CriticConfig(epochs=40))
    # listeners are noisy: even the hidden quality itself orders only so many pairs right
    ceiling = np.mean([quality[a] > quality[b] for a, b in held_out])
    assert info["held_out_accuracy"] >= max(0.65, ceiling - 0.15)
    # the scores order fresh items by their hidden quality
    fresh, _, quality = preference_data(30, 0, seed=2)
    scores = critic.score_many(fresh)
    assert np.corrcoef(scores, quality)[0, 1] > 0.6


def test_without_a_taste_in_the_labels_it_finds_none(trunk):
    # coin-toss labels: held-out accuracy stays near chance, whatever the training set says
    rng = np.random.default_rng(3)
    items, pairs, _ = preference_data(160, 600, seed=3)
    pairs = [p if rng.random() < 0.5 else (p[1], p[0]) for p in pairs]
    seen = set(range(100))
    train = [p for p in pairs if p[0] in seen and p[1] in seen]
    held_out = [p for p in pairs if p[0] not in seen and p[1] not in seen]
    critic = RewardModel(trunk, hidden=32)
    critic.fit(items, train, held_out, CriticConfig(epochs=40))
    # the reported figure is the best epoch (chosen on these pairs), so judge fresh ones
    fresh, fresh_pairs, _ = preference_data(60, 400, seed=4)
    fresh_pairs = [p if rng.random() < 0.5 else (p[1], p[0]) for p in fresh_pairs]
    scores = critic.score_many(fresh)
    right = np.mean([scores[a] > scores[b] for a, b in fresh_pairs])
    assert 0.4 <= right <= 0.6


def test_the_trunk_is_frozen_and_only_the_head_trains(trunk):
    items, pairs, _ = preference_data(40, 100, seed=5)
    critic = RewardModel(trunk, hidden=16)
    before = {k: v.clone() for k, v in critic.trunk.state_dict().items()}
    critic.fit(items, pairs[:80], pairs[80:], CriticConfig(epochs=3))
    assert all(torch.equal(before[k], v) for k, v in critic.trunk.state_dict().items())
    assert not any(p.requires_grad for p in critic.trunk.parameters())
    assert all(torch.equal(trunk.state_dict()[k], v) for k, v in before.items())  # nor the LM's


def test_a_long_item_is_the_length_weighted_mean_of_its_windows(trunk):
    room = trunk.config.context - (K - 1)
    codes = torch.randint(0, 1024, (K, 2 * room))
    critic = RewardModel(trunk)
    whole = critic.features([codes])
    halves = critic.features([codes[:, :room], codes[:, room:]])
    assert torch.allclose(whole[0], halves.mean(0), atol=1e-5)


def test_a_saved_critic_scores_as_it_did(trunk, tmp_path):
    items, pairs, _ = preference_data(60, 200, seed=6)
    critic = RewardModel(trunk, hidden=16)
    critic.fit(items, pairs[:150], pairs[150:], CriticConfig(epochs=10))
    critic.save(tmp_path / "critic.pt")
    loaded = RewardModel.load(tmp_path / "critic.pt")
    assert loaded.info["held_out_accuracy"] == critic.info["held_out_accuracy"]
    # fp16 weights: close, not equal
    assert np.allclose(loaded.score_many(items[:10]), critic.score_many(items[:10]), atol=0.05)


def test_best_of_n_songs_load_the_critic_named_by_chorus_critic(trunk, tmp_path, monkeypatch):
    critic = RewardModel(trunk, hidden=16)
    critic.save(tmp_path / "critic.pt")
    codec = Codec.load(DEFAULT_CHECKPOINT)
    monkeypatch.setenv("CHORUS_CRITIC", str(tmp_path / "critic.pt"))
    gen = ChorusSongGenerator(Engine(trunk, codec, "tiny-test", chunk_s=0.4, text=FakeText()))
    assert isinstance(gen.critic, SongCritic)
    t = np.arange(48000) / 48000  # 1 s at 48 kHz: resampled to the codec's rate
    pcm = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    score = gen.critic(pcm, 48000)
    from scipy.signal import resample_poly

    codes = codec.encode(torch.from_numpy(resample_poly(pcm, 24000, 48000).astype(np.float32)))
    assert score == pytest.approx(gen.critic.model.score(codes), abs=1e-6)
