"""Exposure by design: two candidates in random slots, propensities logged, a random share of
best-of-n picks, and the codes songs are made from kept for the loop."""

from __future__ import annotations

import random
from collections import Counter

import numpy as np
import pytest

from generation.interface import SongRequest
from generation.lm.songs import ChorusSongGenerator, pick_candidate
from generation.tuning.clips import ClipMaker
from generation.tuning.labels import Item, build_labels
from tests.generation.test_lm import FakeText
from tests.generation.test_lm_tasks import make_engine, tiny_engine_parts  # noqa: F401
from tests.tuning.conftest import TONE_FRAMES, motif_codes, tone_quality
from webapp.feedback.models import FeedbackEvent
from webapp.songs.models import Song
from webapp.tuning.clips import item_clips, song_codes_load
from webapp.tuning.selectors import feedback_rows

# -- best-of-n: the critic's pick, or a random one with its propensity --------------------------


def test_without_exploration_the_critic_picks_its_favourite_for_sure():
    assert pick_candidate([0.1, 0.9, 0.3], 0.0, random.Random(1)) == (1, "critic", 1.0)
    assert pick_candidate([0.5], 0.5, random.Random(1)) == (0, "first", 1.0)
    assert pick_candidate([None, None], 0.5, random.Random(1)) == (0, "first", 1.0)


def test_a_share_of_picks_is_random_and_each_pick_carries_its_propensity():
    rng = random.Random(7)
    picks = [pick_candidate([0.1, 0.9, 0.3, 0.2], 0.2, rng) for _ in range(4000)]
    policies = Counter(policy for _, policy, _ in picks)
    assert 0.17 < policies["random"] / len(picks) < 0.23
    for chosen, _, propensity in picks:
        # the favourite: (1 - 0.2) + 0.2 / 4; any other: 0.2 / 4
        assert propensity == pytest.approx(0.85 if chosen == 1 else 0.05)
    # propensities are honest: each index is picked about as often as its propensity says
    counts = Counter(chosen for chosen, _, _ in picks)
    assert counts[1] / len(picks) == pytest.approx(0.85, abs=0.02)
    assert counts[0] / len(picks) == pytest.approx(0.05, abs=0.015)


def test_best_of_n_songs_are_made_in_one_batch_and_record_how_they_were_picked(
    tiny_engine_parts,  # noqa: F811
):
    loudness = lambda pcm, sr: float(np.sqrt(np.mean(pcm**2)))  # noqa: E731
    gen = ChorusSongGenerator(make_engine(tiny_engine_parts), critic=loudness)
    song = gen.generate_song(SongRequest("techno", 10.0, seed=1, candidates=3), lambda f: None)
    best = song.provenance["best_of"]
    assert (best["policy"], best["propensity"]) == ("critic", 1.0)
    assert best["chosen"] == int(np.argmax(best["scores"]))
    explored = gen.generate_song(
        SongRequest("techno", 10.0, seed=1, candidates=3, explore_share=1.0), lambda f: None
    )
    assert explored.provenance["best_of"]["policy"] == "random"
    assert explored.provenance["best_of"]["propensity"] == pytest.approx(1 / 3)
    # the codes it was made from come with it: every frame of the song, the LM's codebooks
    assert song.codes.shape == (3, 250) and song.codes.max() < 1024


# -- two candidates per request -------------------------------------------------------------------


@pytest.fixture
def two_candidates(settings, versioned_backend):
    settings.TUNING_AB_SHARE = 1.0


@pytest.mark.django_db
def test_a_request_can_be_answered_with_two_candidates_in_random_slots(
    two_candidates, alice, client_for
):
    answer = client_for(alice).post(
        "/api/v1/songs/", {"prompt": "night drive", "duration_s": 12}, format="json"
    )
    assert answer.status_code == 202
    exposure = answer.json()["exposure"]
    first = answer.json()["id"]
    assert exposure["choice_set"] == f"request:{first}" and exposure["propensity"] == 0.5
    assert first in exposure["candidates"] and len(set(exposure["candidates"])) == 2
    songs = {str(s.pk): s for s in Song.objects.filter(pk__in=exposure["candidates"])}
    assert [songs[i].exposure["slot"] for i in exposure["candidates"]] == [0, 1]
    a, b = songs.values()
    assert (a.prompt, a.duration_s, a.model_version) == (b.prompt, b.duration_s, b.model_version)
    assert a.seed != b.seed and a.status == b.status == "ready"


@pytest.mark.django_db
def test_slots_are_a_coin_toss_so_the_first_request_is_not_always_first(
    two_candidates, alice, settings
):
    from webapp.songs.services import song_create

    settings.QUOTA_DAILY_SONGS = settings.QUOTA_DAILY_SECONDS = 0
    settings.RATELIMIT_ENABLED = False
    slots = [
        song_create(owner=alice, prompt=f"p{i}", duration_s=10.0).exposure["slot"]
        for i in range(24)
    ]
    assert set(slots) == {0, 1}  # all 24 the same would happen once in 8 million runs


@pytest.mark.django_db
def test_without_the_share_a_request_makes_one_song(versioned_backend, alice, client_for):
    answer = client_for(alice).post("/api/v1/songs/", {"prompt": "calm", "duration_s": 10})
    assert answer.json()["exposure"] == {} and Song.objects.count() == 1


@pytest.mark.django_db
def test_the_server_writes_the_choice_set_slot_and_propensity_into_the_feedback(
    two_candidates, alice, bob, client_for
):
    made = client_for(alice).post("/api/v1/songs/", {"prompt": "rain", "duration_s": 10})
    exposure = made.json()["exposure"]
    Song.objects.filter(pk__in=exposure["candidates"]).update(visibility="public")
    liked, other = exposure["candidates"]
    events = []
    for song, up in ((liked, True), (other, False)):
        events += [
            {"kind": "play_start", "target_type": "song", "target_id": song},
            # a client that forgets the choice set, or names another: the server's record wins
            {"kind": "complete", "target_type": "song", "target_id": song, "choice_set": "lies"},
            {"kind": "thumb_up" if up else "thumb_down", "target_type": "song", "target_id": song},
        ]
    posted = client_for(bob).post("/api/v1/feedback/", {"events": events}, format="json")
    assert posted.status_code == 201
    rows = FeedbackEvent.objects.filter(actor=f"user:{bob.pk}")
    assert {r.choice_set for r in rows} == {exposure["choice_set"]}
    assert {(r.target_id, r.slot) for r in rows} == {(liked, 0), (other, 1)}
    assert {r.conditioning["exposure"]["propensity"] for r in rows} == {0.5}

    from django.utils import timezone

    labels = build_labels(
        feedback_rows(since=timezone.now() - timezone.timedelta(hours=1), until=timezone.now())
    )
    (pair,) = labels.pairs
    assert (pair.chosen, pair.rejected) == (Item("song", liked), Item("song", other))
    assert pair.choice_set == exposure["choice_set"] and pair.signal == "thumb"


@pytest.mark.django_db
def test_a_best_of_n_pick_carries_its_propensity_into_the_feedback(a_public_song, bob, client_for):
    Song.objects.filter(pk=a_public_song.pk).update(
        provenance={"best_of": {"n": 4, "chosen": 2, "policy": "random", "propensity": 0.025}}
    )
    event = {"kind": "thumb_up", "target_type": "song", "target_id": str(a_public_song.pk)}
    client_for(bob).post("/api/v1/feedback/", {"events": [event]}, format="json")
    row = FeedbackEvent.objects.get()
    assert row.conditioning["best_of"] == {"n": 4, "policy": "random", "propensity": 0.025}


# -- the codes a song was made from ---------------------------------------------------------------


@pytest.mark.django_db
def test_songs_keep_the_codes_they_were_made_from_and_the_loop_reads_them(
    versioned_backend, make_song, alice
):
    from generation.lm import LMConfig, TokenLM

    song = make_song(alice, prompt="dusty tape loop", duration_s=10.0)
    codes = song_codes_load(song)
    assert codes.shape == (3, TONE_FRAMES)
    assert np.array_equal(codes, motif_codes(tone_quality(song.seed), song.seed))
    lm = TokenLM(LMConfig.preset("tiny", sections=["intro"], instruments=["piano"]))
    clips = item_clips(
        [Item("song", str(song.pk)), Item("song", "gone")], ClipMaker(lm, None, FakeText())
    )
    (clip,) = clips.values()
    assert np.array_equal(clip.codes.numpy(), codes) and bool(clip.condition["text_on"][0])
