"""DPO on a tiny random token LM: the layout, the masking, the loss, and a few real steps."""

from __future__ import annotations

import math

import pytest
import torch

from generation.lm import Controls, LMConfig, TokenLM
from generation.lm.conditioning import condition_features
from generation.lm.model import KVCache
from generation.tuning.dpo import (
    Clip,
    DPOConfig,
    PreferencePair,
    TokenBatch,
    dpo_forward,
    evaluate_pairs,
    frozen_reference,
    reference_logps_of,
    sequence_logps,
    train_dpo,
)

CARD = 32  # a small codebook keeps the tiny model's logits small


def tiny_lm(seed: int = 0) -> TokenLM:
    torch.manual_seed(seed)
    config = LMConfig.preset("tiny", codebook_size=CARD, sections=["intro", "drop"])
    return TokenLM(config)


def condition(model: TokenLM, bpm: float | None = None) -> dict[str, torch.Tensor]:
    return condition_features([(None, Controls(bpm=bpm))], model.config.vocab)


def clip(model, frames, seed, context=0, bpm=None) -> Clip:
    g = torch.Generator().manual_seed(seed)
    k = model.config.n_codebooks
    codes = torch.randint(0, CARD, (k, frames), generator=g)
    before = torch.randint(0, CARD, (k, context), generator=g) if context else None
    return Clip(codes, condition(model, bpm), before)


def pairs(model, n, seed=0, frames=10) -> list[PreferencePair]:
    return [
        PreferencePair(clip(model, frames, seed + 2 * i), clip(model, frames, seed + 2 * i + 1))
        for i in range(n)
    ]


# -- sequence log-probabilities ------------------------------------------------------------------


def test_every_code_of_every_scored_frame_counts_once_and_nothing_else_does():
    model = tiny_lm()
    k = model.config.n_codebooks
    batch = TokenBatch.of([clip(model, 10, 1, context=4), clip(model, 6, 2)], model)
    assert batch.mask[0].sum() == k * 10  # the 4 frames of context are not scored
    assert batch.mask[1].sum() == k * 6  # the right padding of the shorter row is not either
    assert (batch.targets[batch.mask] < CARD).all()  # never a PAD target


def test_the_log_probability_is_what_the_sampler_drew_it_with():
    # Teacher forcing over the delay layout must score each code at the step where
    # generation (model.step with a KV cache, starting from a PAD input) would draw it.
    model = tiny_lm().eval()
    item = clip(model, 8, 3, bpm=100)
    batch = TokenBatch.of([item], model)
    with torch.no_grad():
        whole = sequence_logps(model, batch)[0]
        cond = model.encode_condition(item.condition)
        cache = KVCache.empty(model.config, 1)
        last = torch.full((1, model.config.n_codebooks), CARD)
        stepped = torch.zeros(())
        for t in range(batch.targets.shape[-1]):
            logp = model.step(last, cond, cache).log_softmax(-1)[0]  # [K, card]
            target = batch.targets[0, :, t]
            for level in range(model.config.n_codebooks):
                if t - level >= 0 and t - level < 8:  # a real frame at this position
                    stepped = stepped + logp[level, target[level]]
            last = target[None]
    assert whole.item() == pytest.approx(stepped.item(), abs=1e-4)


def test_padding_a_row_in_a_batch_changes_nothing():
    model = tiny_lm().eval()
    short, long = clip(model, 5, 4), clip(model, 30, 5)
    with torch.no_grad():
        alone = sequence_logps(model, TokenBatch.of([short], model))
        together = sequence_logps(model, TokenBatch.of([short, long], model))
    assert together[0].item() == pytest.approx(alone[0].item(), abs=1e-4)


def test_a_clip_longer_than_the_context_is_scored_on_the_frames_that_fit():
    model = tiny_lm()
    batch = TokenBatch.of([clip(model, 200, 6, context=20)], model)
    latency = model.config.n_codebooks - 1
    assert batch.inputs.shape[-1] == model.config.context
    assert batch.mask.sum() == model.config.n_codebooks * (model.config.context - latency)


# -- the loss ------------------------------------------------------------------------------------


def test_the_loss_is_ln_2_when_the_policy_is_the_reference():
    policy = tiny_lm()
    reference = frozen_reference(policy)
    out = dpo_forward(policy, reference, pairs(policy, 4), DPOConfig(nll_weight=0.0))
    assert out.loss.item() == pytest.approx(math.log(2), abs=1e-6)
    assert torch.all(out.margins == 0)
    with_nll = dpo_forward(policy, reference, pairs(policy, 4), DPOConfig(nll_weight=0.5))
    assert with_nll.dpo.item() == pytest.approx(math.log(2), abs=1e-6)
    assert with_nll.loss.item() == pytest.approx(math.log(2) + 0.5 * with_nll.nll.item(), abs=1e-5)


def test_only_the_policy_gets_gradients():
    policy = tiny_lm()
    reference = frozen_reference(policy)
    with torch.no_grad():  # move the policy off the reference, so the DPO term has a gradient
        for p in policy.parameters():
            p.add_(0.01 * torch.randn_like(p))
    out = dpo_forward(policy, reference, pairs(policy, 3), DPOConfig())
    out.loss.backward()
    assert all(not p.requires_grad and p.grad is None for p in reference.parameters())
    grads = [p.grad for p in policy.parameters()]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


# -- training ------------------------------------------------------------------------------------


def test_a_few_steps_raise_the_chosen_over_rejected_margin_on_the_training_pairs():
    policy = tiny_lm()
    train = pairs(policy, 6)
    config = DPOConfig(lr=3e-3, beta=0.1, batch_size=6, max_steps=15, eval_every=5)
    reference = frozen_reference(policy)
    before = evaluate_pairs(policy, reference, train, config)
    result = train_dpo(policy, train, train, config, reference=reference, progress=False)
    after = evaluate_pairs(policy, reference, train, config)
    assert before["margin"] == 0 and before["accuracy"] == 0.5
    assert after["margin"] > 0.5 and after["accuracy"] == 1.0
    assert result.best_step > 0 and len([h for h in result.history if "loss" in h]) == 15


def test_the_kept_checkpoint_is_the_one_best_on_held_out_pairs_even_the_reference():
    # Held-out pairs that say the opposite of the training pairs: training only makes them
    # worse, so the step 0 weights (the reference) come back.
    policy = tiny_lm()
    start = {k: v.clone() for k, v in policy.state_dict().items()}
    train = pairs(policy, 4)
    opposite = [PreferencePair(p.rejected, p.chosen) for p in train]
    config = DPOConfig(lr=3e-3, batch_size=4, max_steps=6, eval_every=2)
    result = train_dpo(policy, train, opposite, config, progress=False)
    assert result.best_step == 0 and result.best["accuracy"] == 0.5
    assert all(torch.equal(start[k], v) for k, v in policy.state_dict().items())


def test_held_out_pairs_count_by_their_weight_and_the_reference_runs_once():
    policy = tiny_lm()
    reference = frozen_reference(policy)
    config = DPOConfig(batch_size=2)
    held = pairs(policy, 3)
    with torch.no_grad():  # move the policy off the reference, so margins are not zero
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    plain = evaluate_pairs(policy, reference, held, config)
    cached = evaluate_pairs(
        policy, reference, held, config, reference_logps_of(reference, held, config.batch_size)
    )
    assert cached == pytest.approx(plain)
    # a pair of weight 3 counts as three copies of it
    heavy = [PreferencePair(held[0].chosen, held[0].rejected, weight=3.0), *held[1:]]
    copies = [held[0], held[0], held[0], *held[1:]]
    assert evaluate_pairs(policy, reference, heavy, config) == pytest.approx(
        evaluate_pairs(policy, reference, copies, config)
    )
