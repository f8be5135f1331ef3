"""Label building: which events become preference pairs, and which never do."""

from __future__ import annotations

import random

from generation.tuning.labels import (
    LABELS_VERSION,
    EventRow,
    Item,
    LabelRules,
    build_labels,
)

SONG_S = 60.0


def listened(actor, song, *, heard=1.0, choice_set="", slot=None, version="v1", ts=0.0):
    """A listener's play of a 60 s song up to `heard` of it (a skip there if it stops early)."""
    common = dict(
        actor=actor,
        target_type="song",
        target_id=song,
        choice_set=choice_set,
        slot=slot,
        model_version=version,
        duration_s=SONG_S,
    )
    rows = [EventRow("play_start", server_ts=ts, **common)]
    rows.append(
        EventRow("progress", value=heard, position_s=heard * SONG_S, server_ts=ts + 1, **common)
    )
    if heard >= 1.0:
        rows.append(EventRow("complete", server_ts=ts + 2, **common))
    else:
        rows.append(EventRow("skip", position_s=heard * SONG_S, server_ts=ts + 2, **common))
    return rows


def thumb(actor, song, up=True, choice_set="", ts=10.0, version="v1"):
    return EventRow(
        "thumb_up" if up else "thumb_down",
        actor=actor,
        target_type="song",
        target_id=song,
        value=1.0 if up else -1.0,
        choice_set=choice_set,
        model_version=version,
        duration_s=SONG_S,
        server_ts=ts,
    )


def a_b(actor, request, liked, other, *, liked_heard=1.0, other_heard=1.0, ts=0.0):
    """One listener's A/B of a song request: both heard, a thumb up on `liked`."""
    cs = f"request:{request}"
    return [
        *listened(actor, liked, heard=liked_heard, choice_set=cs, slot=0, ts=ts),
        *listened(actor, other, heard=other_heard, choice_set=cs, slot=1, ts=ts + 3),
        thumb(actor, liked, choice_set=cs, ts=ts + 6),
    ]


def pairs_of(labels):
    return {(p.actor, p.chosen.target_id, p.rejected.target_id, p.signal) for p in labels.pairs}


# -- choice sets ---------------------------------------------------------------------------------


def test_a_thumb_in_an_a_b_makes_one_pair_and_the_labels_say_their_version():
    labels = build_labels(a_b("user:1", 7, "s1", "s2"))
    assert pairs_of(labels) == {("user:1", "s1", "s2", "thumb")}
    assert labels.version == LABELS_VERSION


def test_no_pair_is_ever_made_across_choice_sets():
    # Alice loved s1 (request 1) and hated s4 (request 2): strong signals, but never compared.
    events = [
        *listened("user:1", "s1", choice_set="request:1"),
        *listened("user:1", "s2", choice_set="request:1"),
        *listened("user:1", "s3", choice_set="request:2", ts=20),
        *listened("user:1", "s4", choice_set="request:2", ts=20),
        thumb("user:1", "s1", choice_set="request:1"),
        thumb("user:1", "s4", up=False, choice_set="request:2", ts=30),
        *listened("user:1", "s5", ts=40),  # outside any choice set
        thumb("user:1", "s5", ts=50),
    ]
    labels = build_labels(events)
    assert pairs_of(labels) == {("user:1", "s1", "s2", "thumb"), ("user:1", "s3", "s4", "thumb")}
    sets = {p.choice_set: {p.chosen, p.rejected} for p in labels.pairs}
    assert sets["request:1"] == {Item("song", "s1"), Item("song", "s2")}
    # the thumb outside any choice set is still a label, unpaired
    assert any(u.item.target_id == "s5" and u.desirable for u in labels.unpaired)


def test_pairs_are_per_listener_never_across_listeners():
    # Alice liked s1, Bob liked s2: two opposite pairs, not one mixed one.
    events = a_b("user:1", 1, "s1", "s2") + a_b("user:2", 1, "s2", "s1", ts=100)
    assert pairs_of(build_labels(events)) == {
        ("user:1", "s1", "s2", "thumb"),
        ("user:2", "s2", "s1", "thumb"),
    }


# -- heard past a minimum ------------------------------------------------------------------------


def test_an_item_not_heard_past_the_minimum_makes_no_pair():
    # s2 was skipped after 3 s of 60 (under 5 s and under half): not heard, so no pair,
    # even though the thumb on s1 is explicit.
    labels = build_labels(a_b("user:1", 1, "s1", "s2", other_heard=3 / SONG_S))
    assert labels.pairs == []
    assert labels.counts["pairs_unheard"] == 1


def test_a_thumb_on_an_unheard_item_is_not_an_unpaired_label_either():
    events = [*listened("user:1", "s1", heard=2 / SONG_S), thumb("user:1", "s1")]
    labels = build_labels(events)
    assert labels.unpaired == [] and labels.counts["thumbs_unheard"] == 1


def test_the_minimum_is_seconds_or_a_fraction_so_short_previews_can_be_heard():
    # A 4 s preview heard for 2.5 s: under 5 s, but past half of it.
    common = dict(actor="user:1", target_type="audition", choice_set="round:1", duration_s=4.0)
    events = [
        EventRow("progress", target_id="a1", value=0.625, server_ts=1, **common),
        EventRow("progress", target_id="a2", value=0.625, server_ts=2, **common),
        EventRow("thumb_up", target_id="a2", server_ts=3, **common),
    ]
    assert pairs_of(build_labels(events)) == {("user:1", "a2", "a1", "thumb")}
    strict = LabelRules(min_heard_s=5.0, min_heard_fraction=0.9)
    assert build_labels(events, strict).pairs == []


def test_a_vote_needs_the_voter_to_have_heard_the_candidates():
    candidates = [{"audition": i, "proposal": 10 + i, "steering": {}} for i in (1, 2, 3)]
    vote = EventRow(
        "vote",
        actor="user:1",
        target_type="audition",
        target_id="2",
        value=1.0,
        choice_set="round:9",
        slot=1,
        conditioning={"room": "r", "candidates": candidates},
        server_ts=50,
    )
    heard = [
        EventRow("progress", "user:1", "audition", str(i), value=1.0, duration_s=4.0, server_ts=i)
        for i in (1, 2)  # heard previews 1 and 2, never 3
    ]
    labels = build_labels([vote, *heard])
    assert pairs_of(labels) == {("user:1", "2", "1", "vote")}
    assert labels.counts["pairs_unheard"] == 2  # 2 over 3, 1 against 3: 3 was not heard
    unheard_ok = LabelRules(votes_need_heard=False)
    assert pairs_of(build_labels([vote], unheard_ok)) == {
        ("user:1", "2", "1", "vote"),
        ("user:1", "2", "3", "vote"),
    }


# -- the order of signals ------------------------------------------------------------------------


def test_thumbs_outrank_share_which_outranks_completion_which_outranks_an_early_skip():
    cs = "request:1"

    def pair(extra_a, extra_b, heard_a=1.0, heard_b=1.0):
        events = [
            *listened("user:1", "a", heard=heard_a, choice_set=cs),
            *listened("user:1", "b", heard=heard_b, choice_set=cs, ts=5),
        ]
        for kind, song in [*((k, "a") for k in extra_a), *((k, "b") for k in extra_b)]:
            events.append(EventRow(kind, "user:1", "song", song, duration_s=SONG_S, server_ts=20))
        return pairs_of(build_labels(events))

    # b was shared and finished; a got a thumb up and was left at 40%: the thumb decides
    assert pair(["thumb_up"], ["share"], heard_a=0.4) == {("user:1", "a", "b", "thumb")}
    # no thumbs: b's replay beats a's completion
    assert pair([], ["replay"], heard_b=0.3) == {("user:1", "b", "a", "engaged")}
    # neither: completion decides
    assert pair([], [], heard_a=0.3) == {("user:1", "b", "a", "completion")}
    # a thumb down loses to no thumb at all, even a finished one against an early skip
    assert pair([], ["thumb_down"], heard_a=0.2) == {("user:1", "a", "b", "thumb")}


def test_completion_is_a_quantile_within_its_duration_bucket():
    # Two listeners each compare a 20 s piece and a 10 min piece. Everyone finishes short
    # pieces and nobody finishes long ones: heard fractions alone would prefer the short one,
    # but within their buckets a 60% of a long piece is as good as it gets.
    def play(actor, target, duration, fraction, cs):
        return EventRow(
            "progress", actor, "song", target, value=fraction, choice_set=cs, duration_s=duration
        )

    events = []
    for n in range(20):  # background: short pieces finished, long pieces heard 10-30%
        events.append(play(f"user:{100 + n}", f"short{n}", 20, 1.0, ""))
        events.append(play(f"user:{100 + n}", f"long{n}", 600, 0.1 + 0.01 * n, ""))
    events += [play("user:1", "S", 20, 1.0, "ab:1"), play("user:1", "L", 600, 0.6, "ab:1")]
    labels = build_labels(events)
    by_actor = {x.item.target_id: x for x in labels.listenings if x.actor == "user:1"}
    assert by_actor["L"].completion > 0.9  # the best listening of a long piece
    assert by_actor["S"].completion < 0.6  # as ordinary as finishing a short one
    assert pairs_of(labels) == {("user:1", "L", "S", "completion")}


def test_close_completion_is_a_tie_and_an_early_skip_then_decides():
    cs = "ab:1"
    events = [
        *listened("user:1", "a", heard=0.2, choice_set=cs),  # skipped at 12 s: early
        *listened("user:1", "b", heard=0.3, choice_set=cs),  # skipped at 18 s: not early
    ]
    rules = LabelRules(completion_margin=0.9)
    assert pairs_of(build_labels(events, rules)) == {("user:1", "b", "a", "skip")}


# -- caps and dropped listeners ----------------------------------------------------------------


def test_pairs_are_capped_per_listener_and_the_cap_keeps_a_fixed_subset():
    events = []
    for r in range(30):
        events += a_b("user:1", r, f"x{r}", f"y{r}", ts=10 * r)
    events += a_b("user:2", 99, "p", "q", ts=1000)
    rules = LabelRules(max_pairs_per_actor=5)
    labels = build_labels(events, rules)
    mine = [p for p in labels.pairs if p.actor == "user:1"]
    assert len(mine) == 5 and len([p for p in labels.pairs if p.actor == "user:2"]) == 1
    assert labels.counts["pairs_over_cap"] == 25
    # the same events in another order give the same labels
    shuffled = list(events)
    random.Random(3).shuffle(shuffled)
    assert build_labels(shuffled, rules).pairs == labels.pairs


def test_unpaired_thumbs_are_capped_per_listener():
    events = []
    for n in range(12):
        events += [*listened("user:1", f"s{n}", ts=10 * n), thumb("user:1", f"s{n}", ts=10 * n + 5)]
    labels = build_labels(events, LabelRules(max_unpaired_per_actor=4))
    assert len(labels.unpaired) == 4 and labels.counts["unpaired_over_cap"] == 8


def test_dropped_listeners_leave_no_trace():
    events = a_b("user:1", 1, "s1", "s2") + a_b("user:666", 1, "s2", "s1", ts=50)
    labels = build_labels(events, dropped={"user:666"})
    assert {p.actor for p in labels.pairs} == {"user:1"}
    assert all(x.actor != "user:666" for x in labels.listenings)
    assert labels.counts["events_of_dropped_actors"] > 0


# -- scores and on-policy pairs ------------------------------------------------------------------


def test_item_scores_count_likes_among_those_who_heard_it():
    events = a_b("user:1", 1, "s1", "s2") + a_b("user:2", 1, "s1", "s2", ts=50)
    events += [*listened("user:3", "s1", heard=0.01, ts=99), thumb("user:3", "s1", up=False)]
    scores = {s.item.target_id: s for s in build_labels(events).item_scores()}
    assert (scores["s1"].listeners, scores["s1"].likes, scores["s1"].dislikes) == (2, 2, 0)
    assert scores["s1"].value > scores["s2"].value
    assert -1.0 <= scores["s2"].value <= 1.0


def test_on_policy_pairs_have_both_items_from_the_same_model_version():
    cs = "request:1"
    events = [
        *listened("user:1", "old", choice_set=cs, version="v1"),
        *listened("user:1", "new", choice_set=cs, version="v2"),
        thumb("user:1", "new", choice_set=cs, version="v2"),
        *a_b("user:2", 2, "s1", "s2", ts=50),
    ]
    labels = build_labels(events)
    assert len(labels.pairs) == 2
    assert [p.chosen.target_id for p in labels.on_policy("v1")] == ["s1"]
    assert labels.on_policy("v2") == []
