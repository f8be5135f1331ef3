"""The simulated audience: a hidden taste over probe attributes, and listeners who act on it."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from generation.tuning.audience import (
    Attributes,
    Habits,
    Heard,
    Listener,
    Taste,
    audience,
    expected_like_rate,
    hidden_taste,
    like_probability,
    measure,
)
from generation.tuning.labels import build_labels

STYLES = ["techno", "ambient", "chorale", "folk", "drum_and_bass", "lofi"]
TASTE = Taste(styles={"techno": 2.0, "ambient": -2.0}, bpm=124.0, minor=1.0, bias=0.0)


def attrs(style, bpm=124.0, mode="minor") -> Attributes:
    return Attributes({style: 0.9, "unknown": 0.1}, bpm, 0, mode)


# -- the hidden taste ------------------------------------------------------------------------------


def test_the_taste_prefers_its_styles_its_tempo_and_its_mode():
    p = lambda a: like_probability(TASTE, a)  # noqa: E731
    assert p(attrs("techno")) > p(attrs("folk")) > p(attrs("ambient"))
    assert p(attrs("techno", bpm=124)) > p(attrs("techno", bpm=100)) > p(attrs("techno", bpm=70))
    # tempo is judged in octaves: a half and a double time are equally far
    assert p(attrs("folk", bpm=62)) == pytest.approx(p(attrs("folk", bpm=248)))
    assert p(attrs("folk", mode="minor")) > p(attrs("folk", mode="major"))
    assert all(0 < p(attrs(s, bpm)) < 1 for s in STYLES for bpm in (40, 124, 220))


def test_a_style_that_is_only_probably_there_counts_as_much_as_it_is_probably_there():
    sure = Attributes({"techno": 1.0}, 124.0)
    unsure = Attributes({"techno": 0.5, "folk": 0.5}, 124.0)
    assert TASTE.logit(sure) - TASTE.logit(unsure) == pytest.approx(1.0)


def test_a_hidden_taste_is_fixed_by_its_seed_and_listeners_vary_around_it():
    assert hidden_taste(STYLES, seed=4) == hidden_taste(STYLES, seed=4)
    shared = hidden_taste(STYLES, seed=4)
    loved = [s for s, w in shared.styles.items() if w > 0]
    hated = [s for s, w in shared.styles.items() if w < 0]
    assert len(loved) == len(hated) == 2
    people = audience(shared, 50, seed=1)
    assert len({p.name for p in people}) == 50
    # individuals differ, but on average they agree with the shared taste
    loved_item, hated_item = attrs(loved[0], shared.bpm), attrs(hated[0], shared.bpm)
    mean = lambda a: sum(like_probability(p.taste, a) for p in people) / 50  # noqa: E731
    assert mean(loved_item) > 0.7 > 0.3 > mean(hated_item)
    assert len({round(like_probability(p.taste, loved_item), 6) for p in people}) == 50


def test_the_expected_like_rate_is_the_mean_like_probability():
    items = [attrs("techno"), attrs("ambient")]
    expected = (like_probability(TASTE, items[0]) + like_probability(TASTE, items[1])) / 2
    assert expected_like_rate(TASTE, items) == pytest.approx(expected)


def test_measure_reads_style_tempo_and_key_from_the_probe():
    class FakeProbe:
        def predict_style(self, pcm, sr):
            return "techno", {"techno": 0.8, "ambient": 0.2}

        def tempo(self, pcm, sr):
            return 126.0

        def key(self, pcm, sr):
            return type("Key", (), {"tonic": 9, "mode": "minor", "score": 0.7})()

    a = measure(FakeProbe(), [0.0] * 100, 24000)
    assert a == Attributes({"techno": 0.8, "ambient": 0.2}, 126.0, 9, "minor")


# -- listeners -----------------------------------------------------------------------------------


def song(n, style, bpm=124.0, mode="minor", **extra) -> Heard:
    return Heard("song", f"s{n}", 60.0, attrs(style, bpm, mode), model_version="v1", **extra)


def test_listeners_finish_and_thumb_up_what_they_like_and_skip_what_they_do_not():
    listener = Listener("sim-0", TASTE, seed=0, habits=Habits(thumb_rate=1.0))
    liked, disliked = Counter(), Counter()
    for n in range(300):
        liked.update(a.kind for a in listener.listen(song(n, "techno")))
        disliked.update(a.kind for a in listener.listen(song(n, "ambient", 70.0, "major")))
    assert liked["complete"] > 3 * disliked["complete"]
    assert liked["thumb_up"] > 3 * liked["thumb_down"]
    assert disliked["thumb_down"] > 3 * disliked["thumb_up"]
    assert disliked["skip"] > 3 * liked["skip"]


def test_a_listen_is_a_well_formed_sequence_of_feedback_api_events():
    listener = Listener("sim-0", TASTE, seed=1)
    for n in range(50):
        actions = listener.listen(song(n, "folk", choice_set="request:3", slot=1))
        assert actions[0].kind == "play_start"
        assert [a.at_s for a in actions] == sorted(a.at_s for a in actions)
        assert sum(a.kind in ("complete", "skip") for a in actions) == 1
        for a in actions:
            event = a.as_api()
            assert event["target_type"] == "song" and event["choice_set"] == "request:3"
            assert event["slot"] == 1
            if a.kind == "progress":
                assert 0 <= event["value"] <= 1 and event["position_s"] <= 60.0


def test_votes_follow_the_taste_as_a_luce_choice():
    listener = Listener("sim-0", TASTE, seed=2)
    previews = [
        Heard("audition", str(i), 4.0, attrs(s), choice_set="round:1", slot=i)
        for i, s in enumerate(["ambient", "techno", "folk"])
    ]
    picks = Counter(listener.choose(previews)[0] for _ in range(300))
    assert picks[1] > picks[2] > picks[0]
    sure = Listener("sim-1", TASTE, seed=2, habits=Habits(vote_temperature=0))
    assert {sure.choose(previews)[0] for _ in range(20)} == {1}
    _, heard = listener.choose(previews)
    assert {a.target_id for a in heard if a.kind == "play_start"} == {"0", "1", "2"}


# -- listeners -> labels -------------------------------------------------------------------------


def test_a_b_feedback_from_the_audience_becomes_pairs_that_agree_with_the_hidden_taste():
    # Every listener hears an A/B of a song the shared taste likes and one it does not, in
    # random slots. The labels never see the taste, yet their pairs should mostly agree with it.
    shared = Taste(styles={"techno": 1.5, "ambient": -1.5}, bpm=124.0)
    rng = random.Random(0)
    rows = []
    for i, listener in enumerate(audience(shared, 200, seed=3)):
        a_b = [("techno", f"good{i}"), ("ambient", f"bad{i}")]
        rng.shuffle(a_b)
        for slot, (style, target) in enumerate(a_b):
            item = Heard("song", target, 60.0, attrs(style), f"request:{i}", slot, "v1")
            rows += [a.as_row(listener.name, item, 100.0 * slot) for a in listener.listen(item)]
    labels = build_labels(rows)
    agree = sum(p.chosen.target_id.startswith("good") for p in labels.pairs)
    assert len(labels.pairs) > 60
    assert agree / len(labels.pairs) > 0.75


def test_asked_to_compare_a_listener_hears_each_candidate_fairly_and_votes():
    listener = Listener("sim-0", TASTE, seed=4)
    pair = [
        Heard("song", "a", 10.0, attrs("ambient", 70.0, "major"), "request:9", 0),
        Heard("song", "b", 10.0, attrs("techno"), "request:9", 1),
    ]
    for _ in range(50):
        choice, actions = listener.choose(pair)
        for target in ("a", "b"):
            ends = [a for a in actions if a.target_id == target and a.kind in ("skip", "complete")]
            assert ends[0].position_s >= 0.5 * 10.0  # never skipped before half
        vote = listener.vote(pair[choice], max(a.at_s for a in actions) + 1).as_api()
        assert vote == {
            "kind": "vote",
            "target_type": "song",
            "target_id": pair[choice].target_id,
            "value": 1.0,
            "choice_set": "request:9",
            "slot": choice,
        }


def test_votes_on_a_b_songs_become_pairs_that_agree_with_the_hidden_taste():
    shared = Taste(styles={"techno": 1.5, "ambient": -1.5}, bpm=124.0)
    rows = []
    for i, listener in enumerate(audience(shared, 100, seed=5)):
        items = [
            Heard("song", f"good{i}", 10.0, attrs("techno"), f"request:{i}", 0, "v1"),
            Heard("song", f"bad{i}", 10.0, attrs("ambient"), f"request:{i}", 1, "v1"),
        ]
        choice, actions = listener.choose(items)
        vote = listener.vote(items[choice], max(a.at_s for a in actions) + 1)
        rows += [
            a.as_row(listener.name, items[0]) for a in actions if a.target_id == items[0].target_id
        ]
        rows += [
            a.as_row(listener.name, items[1]) for a in actions if a.target_id == items[1].target_id
        ]
        rows.append(vote.as_row(listener.name, items[choice]))
    labels = build_labels(rows)
    assert len(labels.pairs) > 90  # both candidates were heard: nearly every comparison counts
    agree = sum(p.chosen.target_id.startswith("good") for p in labels.pairs)
    assert agree / len(labels.pairs) > 0.75
