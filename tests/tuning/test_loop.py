"""The round's pure parts: splitting pairs by choice set, merging listeners' pairs, guardrails."""

from __future__ import annotations

import math

import pytest
import torch

from generation.lm import LMConfig, TokenLM
from generation.tuning.dpo import Clip
from generation.tuning.guardrails import Guardrails, code_nll, style_agreement
from generation.tuning.labels import Item, Pair
from generation.tuning.loop import consensus, consensus_counts, preference_pairs, split_pairs

A, B, C = Item("song", "a"), Item("song", "b"), Item("song", "c")
clip_a, clip_b = Clip(torch.zeros(3, 4, dtype=torch.long), {}), Clip(torch.ones(3, 4), {})


def pair(choice_set, actor, chosen, rejected):
    return Pair(choice_set, actor, chosen, rejected, "thumb")


def test_a_choice_set_is_held_out_whole_and_the_split_is_stable():
    pairs = [pair(f"request:{i}", f"u{j}", A, B) for i in range(200) for j in range(3)]
    train, held = split_pairs(pairs, 0.2, seed=0)
    held_sets = {p.choice_set for p in held}
    assert held_sets.isdisjoint({p.choice_set for p in train})
    assert 0.12 < len(held_sets) / 200 < 0.28
    assert split_pairs(pairs, 0.2, seed=0) == (train, held)
    assert {p.choice_set for p in split_pairs(pairs, 0.2, seed=1)[1]} != held_sets


def test_listeners_pairs_merge_into_one_preference_per_pair_of_items_by_majority():
    pairs = [
        pair("r1", "u1", A, B),
        pair("r1", "u2", A, B),
        pair("r1", "u3", B, A),  # outvoted
        pair("r2", "u1", C, A),
        pair("r2", "u2", A, C),  # a tie: no preference
    ]
    assert consensus(pairs) == [(A, B)]
    # held out, each merged pair stands for its net count of judgements
    assert consensus_counts(pairs) == [(A, B, 1)]
    assert consensus_counts([*pairs, pair("r1", "u4", A, B)]) == [(A, B, 2)]
    (weighted,) = preference_pairs(consensus_counts(pairs), {A: clip_a, B: clip_b})
    assert weighted.weight == 1.0 and weighted.chosen is clip_a


def test_dpo_pairs_can_be_cut_to_their_first_frames():
    clips = {A: Clip(torch.zeros(3, 250, dtype=torch.long), {}), B: Clip(torch.ones(3, 90), {})}
    (whole,) = preference_pairs([(A, B)], clips)
    (cut,) = preference_pairs([(A, B)], clips, frames=100)
    assert whole.chosen.codes.shape == (3, 250)
    assert cut.chosen.codes.shape == (3, 100) and cut.rejected.codes.shape == (3, 90)


def test_the_code_nll_of_a_model_is_near_uniform_when_it_knows_nothing():
    torch.manual_seed(0)
    model = TokenLM(LMConfig.preset("tiny", codebook_size=64, sections=["intro"]))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()  # every logit 0: a uniform guess over 64 codes
    items = [torch.randint(0, 64, (3, 20)) for _ in range(5)]
    assert code_nll(model, items) == pytest.approx(math.log(64), rel=1e-5)


def test_a_guardrail_fails_only_when_measured_and_worse_than_its_tolerance():
    assert Guardrails().ok  # nothing measured: nothing blocks
    assert Guardrails(quality_base=3.0, quality_tuned=3.14).ok  # 4.7 % worse: within 5 %
    assert not Guardrails(quality_base=3.0, quality_tuned=3.2).ok
    assert Guardrails(adherence_base=0.8, adherence_tuned=0.77).ok
    worse = Guardrails(adherence_base=0.8, adherence_tuned=0.7)
    assert worse.adherence_ok is False and not worse.ok
    assert worse.as_dict()["adherence_change"] == pytest.approx(-0.125)


def test_style_agreement_counts_what_the_probe_hears():
    class Probe:
        def predict_style(self, pcm, sr):
            return ("techno" if pcm[0] > 0 else "ambient"), {}

    heard = [("techno", [1.0], 8000), ("techno", [-1.0], 8000), ("ambient", [-1.0], 8000)]
    assert style_agreement(Probe(), heard) == pytest.approx(2 / 3)
