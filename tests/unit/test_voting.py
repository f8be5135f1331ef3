"""The voting rules: votes become a blend that turns the music without jumps or flicker."""

import pytest

from collab.voting import (
    ANCHOR,
    BlendRules,
    blend_distance,
    capped_shares,
    leader,
    next_blend,
    ramp,
    round_ends_at,
    round_should_close,
    tally,
)

RULES = BlendRules()


def total(blend):
    return sum(blend.values())


def test_a_voter_who_changes_their_mind_is_counted_once():
    ballots = {"alice": "strings", "bob": "drop"}
    ballots["alice"] = "drop"
    assert tally(ballots) == {"drop": 2}


def test_shares_are_proportional_when_no_one_reaches_the_cap():
    assert capped_shares({"a": 2, "b": 1, "c": 1}, 0.7) == pytest.approx(
        {"a": 0.5, "b": 0.25, "c": 0.25}
    )


def test_a_landslide_is_capped_and_the_excess_is_not_handed_to_fringe_ideas():
    shares = capped_shares({"a": 98, "b": 1, "c": 1}, 0.6)
    assert shares == pytest.approx({"a": 0.6, "b": 0.01, "c": 0.01})


def test_a_single_proposal_takes_at_most_the_cap():
    assert capped_shares({"a": 5}, 0.7) == pytest.approx({"a": 0.7})


def test_every_blend_is_normalised():
    blend = {ANCHOR: 1.0}
    for counts in ({"a": 3}, {"a": 1, "b": 4}, {}, {"c": 2, "b": 2}, {}):
        blend = next_blend(counts, blend)
        assert total(blend) == pytest.approx(1.0)
        assert all(w > 0 for w in blend.values())


def test_the_round_result_is_a_blend_not_only_a_winner():
    blend = next_blend({"strings": 6, "slower": 4}, {ANCHOR: 1.0})
    assert blend["strings"] > blend["slower"] > 0
    assert ANCHOR in blend  # the current music is carried, not dropped


def test_a_winning_proposal_takes_over_within_a_few_rounds():
    blend = {ANCHOR: 1.0}
    for _ in range(3):
        blend = next_blend({"drop": 10}, blend)
    assert leader(blend) == "drop"
    assert blend["drop"] > 0.8


def test_a_proposal_nobody_votes_for_again_fades_away():
    blend = next_blend({"strings": 5}, {ANCHOR: 1.0})
    weights = []
    for _ in range(6):
        blend = next_blend({"piano": 5}, blend)
        weights.append(blend.get("strings", 0.0))
    assert weights == sorted(weights, reverse=True)
    assert "strings" not in blend  # dropped once below the exit weight


def test_with_no_votes_the_music_drifts_back_to_the_anchor():
    blend = {"drop": 1.0}
    anchors = []
    for _ in range(5):
        blend = next_blend({}, blend)
        anchors.append(blend[ANCHOR])
    assert anchors == sorted(anchors)
    assert anchors[-1] > 0.7


def test_a_lone_vote_for_a_newcomer_does_not_make_the_blend_flicker():
    # 1 of 30 voters: below the entry weight, so the blend does not take it in...
    rules = BlendRules(enter_weight=0.12, exit_weight=0.06)
    blend = next_blend({"a": 29, "fringe": 1}, {"a": 1.0}, rules)
    assert "fringe" not in blend
    # ...while an established component survives a dip that a newcomer could not enter with.
    established = {"a": 0.8, "b": 0.2}
    after_dip = next_blend({"a": 27, "b": 3}, established, rules)
    assert "b" in after_dip


def test_hysteresis_has_a_gap_between_entering_and_leaving():
    rules = BlendRules(enter_weight=0.2, exit_weight=0.05)
    newcomer = next_blend({"a": 8, "b": 2}, {"a": 1.0}, rules)
    incumbent = next_blend({"a": 8, "b": 2}, {"a": 0.7, "b": 0.3}, rules)
    assert "b" not in newcomer and "b" in incumbent


def test_ramp_moves_smoothly_between_blends():
    start, end = {ANCHOR: 1.0}, {"drop": 1.0}
    assert ramp(start, end, 0.0) == pytest.approx({ANCHOR: 1.0})
    assert ramp(start, end, 1.0) == pytest.approx({"drop": 1.0})
    halves = ramp(start, end, 0.5)
    assert halves == pytest.approx({ANCHOR: 0.5, "drop": 0.5})
    assert blend_distance(start, halves) == pytest.approx(0.5)


def test_round_timing_and_slow_mode():
    assert round_ends_at(opened_at=100.0, length_s=20.0) == 120.0
    assert round_ends_at(opened_at=100.0, length_s=20.0, slow_mode_s=60.0) == 160.0
    assert not round_should_close(ends_at=120.0, now=119.9)
    assert round_should_close(ends_at=120.0, now=120.0)


@pytest.mark.parametrize(
    "bad",
    [
        dict(max_share=0),
        dict(carry=1.0),
        dict(enter_weight=0.05, exit_weight=0.1),
        dict(idle_pull=2),
    ],
)
def test_nonsense_rules_are_refused(bad):
    with pytest.raises(ValueError):
        BlendRules(**bad)
