"""A round of the loop on the web side: feedback through the API -> labels -> critic -> DPO ->
a registered candidate in canary, with a tiny LM and songs whose codes hide a quality."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command

from generation.lm import LMConfig, TokenLM
from generation.lm.conditioning import TextEncoder
from generation.lm.songs import critic_beside
from generation.tuning.audience import Attributes, Habits, Heard, Taste, audience
from generation.tuning.critic import CriticConfig, RewardModel
from generation.tuning.dpo import DPOConfig
from generation.tuning.loop import RoundConfig
from tests.generation.test_lm import FakeText
from tests.tuning.conftest import motif_codes
from webapp.songs.models import Song
from webapp.songs.services import song_create
from webapp.tuning import services
from webapp.tuning.models import ModelVersion, TuningRun

pytestmark = pytest.mark.django_db

# listeners like songs whose codes play the motif more (the tone's hidden quality)
TASTE = Taste(styles={"motif": 6.0}, bpm=120.0, bias=-3.0)
CONFIG = RoundConfig(
    held_out_share=0.3,
    min_critic_pairs=10,
    min_dpo_pairs=5,
    critic=CriticConfig(epochs=40, hidden=32),
    dpo=DPOConfig(lr=3e-3, beta=0.1, batch_size=8, max_steps=30, eval_every=10),
)


@pytest.fixture
def tiny_base(versioned_backend, settings, tmp_path, monkeypatch):
    """A tiny random LM as the base checkpoint; no corpus or probe for the guardrails."""
    torch.manual_seed(0)
    lm = TokenLM(LMConfig.preset("tiny", sections=["intro"], instruments=["piano"]))
    path = tmp_path / "base-tiny.pt"
    lm.save(path, extra={"styles": []})
    settings.TUNING_BASE_CHECKPOINT = str(path)
    settings.TUNING_GUARDRAIL_MANIFEST = str(tmp_path / "no-corpus" / "manifest.jsonl")
    settings.TUNING_PROBE = str(tmp_path / "no-probe.pt")
    settings.TUNING_AB_SHARE = 1.0
    settings.RATELIMIT_ENABLED = False
    settings.QUOTA_DAILY_SONGS = settings.QUOTA_DAILY_SECONDS = 0
    monkeypatch.setattr(TextEncoder, "shared", classmethod(lambda cls: FakeText()))
    return services.model_version_ensure_base()


def requests_heard(owner, listeners, client_for, n_requests):
    """n song requests (two candidates each), every listener hears both and thumbs them."""
    for i in range(n_requests):
        song_create(owner=owner, prompt=f"loop {i}", duration_s=10.0, seed=i, visibility="public")
    songs = list(Song.objects.order_by("created_at"))
    crowd = audience(TASTE, len(listeners), 1, spread=0.2, habits=Habits(thumb_rate=0.8))
    for user, listener in zip(listeners, crowd, strict=True):
        events = []
        for song in songs:
            quality = song.provenance["quality"]
            heard = Heard("song", str(song.pk), 10.0, Attributes({"motif": quality}, 120.0))
            events += [a.as_api() for a in listener.listen(heard)]
        for i in range(0, len(events), 100):
            answer = client_for(user).post(
                "/api/v1/feedback/", {"events": events[i : i + 100]}, format="json"
            )
            assert answer.status_code == 201
    return songs


def test_a_round_turns_feedback_into_a_candidate_in_canary(tiny_base, alice, make_user, client_for):
    listeners = [make_user(f"listener{i}") for i in range(10)]
    requests_heard(alice, listeners, client_for, 60)

    run = services.tuning_round(config=CONFIG, canary_share=0.25)

    assert run.status == TuningRun.Status.DONE, (run.message, run.counts)
    version = run.produced
    assert version.status == ModelVersion.Status.CANARY and version.canary_share == 0.25
    assert version.parent == tiny_base and version.labels_version == "labels-v1"
    assert Path(version.checkpoint).exists() and critic_beside(version.checkpoint).exists()
    assert run.counts["events"] > 5000 and run.counts["items_with_clips"] > 80
    assert "pairs_without_clips" not in run.counts  # every paired song had its codes
    metrics = version.metrics
    assert metrics["critic"]["held_out_accuracy"] > 0.5
    # the critic found the hidden quality: it ranks songs it never saw by it
    critic = RewardModel.load(critic_beside(version.checkpoint))
    qualities = [i / 20 for i in range(21)]
    scores = critic.score_many(
        [torch.from_numpy(motif_codes(q, 10_000 + i)).long() for i, q in enumerate(qualities)]
    )
    assert np.corrcoef(np.argsort(np.argsort(scores)), qualities)[0, 1] > 0.6
    assert metrics["dpo"]["best_step"] > 0
    assert metrics["dpo"]["held_out"]["accuracy"] > metrics["dpo"]["held_out_at_start"]["accuracy"]
    # no corpus and no probe here: the guardrails say so and do not block
    assert metrics["guardrails"]["quality_ok"] is None and metrics["guardrails"]["ok"] is True
    # the tuned weights load, and are not the base's
    tuned, base = TokenLM.load(version.checkpoint), TokenLM.load(tiny_base.checkpoint)
    assert tuned.extra["tuning"]["parent"] == tiny_base.name
    assert any(
        not torch.equal(a, b) for a, b in zip(tuned.parameters(), base.parameters(), strict=True)
    )


def test_a_round_without_enough_feedback_is_recorded_and_makes_nothing(tiny_base, alice):
    song_create(owner=alice, prompt="alone", duration_s=10.0)
    out = StringIO()
    call_command("tune", "round", "--steps", "5", "--no-guardrails", stdout=out)
    last = json.loads(out.getvalue().strip().splitlines()[-1])
    assert last["status"] == "skipped" and last["produced"] is None
    assert "too few" in last["message"]
    assert ModelVersion.objects.count() == 1  # the base, registered on the first round
    assert TuningRun.objects.get().status == TuningRun.Status.SKIPPED
