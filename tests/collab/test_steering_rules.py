"""From a blend to the Steering the engine plays: pure rules, no database."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from collab.steering_rules import (
    Idea,
    NudgeError,
    apply_nudge,
    blend_to_steering,
    clean_nudge,
    describe_nudge,
)
from collab.voting import ANCHOR
from generation.steering import Controls, Steering

LOFI = Idea("prompt", "warm lo-fi beat")
JAZZ = Idea("prompt", "late-night jazz trio")


def nudge(**control) -> Idea:
    return Idea("control", control=control)


def test_prompts_are_weighted_by_their_share_of_the_blend():
    steering = blend_to_steering(
        {"1": 0.6, "2": 0.2, ANCHOR: 0.2}, {"1": LOFI, "2": JAZZ}, anchor="ambient pads"
    )

    assert steering.prompts == (
        ("warm lo-fi beat", 0.6),
        ("late-night jazz trio", 0.2),
        ("ambient pads", 0.2),
    )


def test_control_nudges_do_not_dilute_the_prompts():
    steering = blend_to_steering(
        {"1": 0.3, "9": 0.5, ANCHOR: 0.2}, {"1": LOFI, "9": nudge(bpm=8)}, anchor="ambient pads"
    )

    assert dict(steering.prompts) == pytest.approx({"warm lo-fi beat": 0.6, "ambient pads": 0.4})


def test_the_same_prompt_from_two_proposals_adds_up():
    twin = Idea("prompt", "warm lo-fi beat")

    steering = blend_to_steering(
        {"1": 0.25, "2": 0.25, "3": 0.5}, {"1": LOFI, "2": twin, "3": JAZZ}
    )

    assert dict(steering.prompts) == pytest.approx(
        {"warm lo-fi beat": 0.5, "late-night jazz trio": 0.5}
    )


def test_with_no_prompt_in_the_blend_the_anchor_plays_alone():
    steering = blend_to_steering({"9": 1.0}, {"9": nudge(section="drop")}, anchor="ambient pads")

    assert steering.prompts == (("ambient pads", 1.0),)
    assert steering.controls.section == "drop"


def test_keys_the_caller_did_not_pass_are_ignored():
    # A nudge from an earlier round is already part of the base controls: not applied twice.
    steering = blend_to_steering({"1": 0.5, "7": 0.5}, {"1": LOFI}, Controls(bpm=128))

    assert steering == Steering((("warm lo-fi beat", 1.0),), Controls(bpm=128))


def test_a_relative_tempo_nudge_moves_the_current_tempo():
    steering = blend_to_steering({"9": 1.0}, {"9": nudge(bpm=8)}, Controls(bpm=120))

    assert steering.controls.bpm == 128


@pytest.mark.parametrize(
    ("start", "change", "expected"), [(216, "+8", 220), (44, "-8", 40), (None, "+8", 128)]
)
def test_relative_tempo_clamps_to_the_playable_range_and_starts_from_120(start, change, expected):
    controls = apply_nudge(Controls(bpm=start), {"bpm": change})

    assert controls.bpm == expected


def test_an_absolute_tempo_sets_it():
    assert apply_nudge(Controls(bpm=90), {"bpm": 128}).bpm == 128


def test_energy_and_brightness_step_and_clamp():
    controls = apply_nudge(Controls(energy=0.95), {"energy": "+", "brightness": "-"})

    assert controls.energy == 1.0
    assert controls.brightness == pytest.approx(0.35)


def test_a_drop_sets_the_section_and_a_key_change_keeps_other_controls():
    controls = apply_nudge(Controls(bpm=100, key="C", mode="major"), {"section": "drop"})
    controls = apply_nudge(controls, {"key": "f#", "mode": "Minor"})

    assert controls == Controls(bpm=100, key="F#", mode="minor", section="drop")


def test_instruments_in_and_out_are_merged_into_the_current_lists():
    start = Controls(instruments_in=("piano",), instruments_out=("strings", "drums"))

    controls = apply_nudge(start, {"instruments_in": ["Strings"], "instruments_out": ["piano"]})

    assert controls.instruments_in == ("strings",)
    assert controls.instruments_out == ("drums", "piano")


def test_where_two_nudges_disagree_the_heavier_has_the_last_word_and_changes_add_up():
    proposals = {
        "1": nudge(key="D", bpm="+8"),
        "2": nudge(key="A", bpm="+4"),
    }

    steering = blend_to_steering({"1": 0.4, "2": 0.6}, proposals, Controls(bpm=100))

    assert steering.controls.key == "A"
    assert steering.controls.bpm == 112


def test_on_equal_weight_the_nudge_earlier_in_the_blend_wins_as_leader_does():
    proposals = {"1": nudge(section="drop"), "2": nudge(section="breakdown")}

    steering = blend_to_steering({"1": 0.5, "2": 0.5}, proposals)

    assert steering.controls.section == "drop"


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ({"bpm": 8}, {"bpm": "+8"}),
        ({"bpm": -8}, {"bpm": "-8"}),
        ({"bpm": "+8"}, {"bpm": "+8"}),
        ({"bpm": "128 bpm"}, {"bpm": 128.0}),
        ({"bpm": 128}, {"bpm": 128.0}),
        ({"energy": "+"}, {"energy": "+"}),
        ({"mode": "minor", "key": "Db"}, {"key": "C#", "mode": "minor"}),
        ({"instruments_in": "strings"}, {"instruments_in": ["strings"]}),
    ],
)
def test_nudges_have_one_canonical_form(raw, canonical):
    assert clean_nudge(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "at least one control"),
        ({"tempo": 120}, "Unknown control 'tempo'"),
        ({"bpm": "+50"}, "between 1 and 30 BPM"),
        ({"bpm": 300}, "between 40 and 220 BPM"),
        ({"bpm": True}, "Tempo must be a number"),
        ({"bpm": "nan"}, "Tempo must be a number"),
        ({"energy": 2}, '"+", "-" or a number from 0 to 1'),
        ({"key": "H"}, "Unknown key 'H'"),
        ({"mode": "dorian"}, "Mode is major or minor"),
        ({"section": "chorus"}, "Section is one of"),
        ({"instruments_in": ["x" * 40]}, "at most 32 characters"),
        ({"instruments_in": ["a", "b", "c", "d", "e", "f", "g", "h", "i"]}, "At most 8"),
        ({"instruments_in": ["drums"], "instruments_out": ["drums"]}, "in and go out at once"),
    ],
)
def test_a_nudge_that_makes_no_sense_is_refused_with_a_reason(raw, message):
    with pytest.raises(NudgeError, match=re.escape(message)):
        clean_nudge(raw)


def test_nudges_describe_themselves_for_the_ballot():
    assert describe_nudge({"bpm": 8}) == "+8 BPM"
    assert describe_nudge({"bpm": 128}) == "128 BPM"
    assert describe_nudge({"energy": "+", "section": "drop"}) == "more energy, drop"
    assert describe_nudge({"key": "F#", "mode": "minor"}) == "key F# minor"
    assert describe_nudge({"mode": "minor"}) == "minor"
    assert describe_nudge({"instruments_in": ["strings"], "instruments_out": ["drums"]}) == (
        "add strings, remove drums"
    )


def test_the_rules_are_plain_python_without_django_or_torch():
    code = (
        "import sys, collab.steering_rules, collab.voting, collab.clock; "
        "print(sorted(m for m in ('django', 'torch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )

    assert out.stdout.strip() == "[]"
