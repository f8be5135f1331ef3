"""The checks a song must pass before it is made: prompt, title, style tags and parameters."""

from __future__ import annotations

import math

import pytest

from webapp.errors import ServiceError
from webapp.songs.services import (
    MAX_SEED,
    song_check_parameters,
    song_clean_prompt,
    song_clean_style_tags,
    song_clean_title,
    song_title_from_prompt,
)


def refused_field(check, *args, **kwargs) -> str:
    with pytest.raises(ServiceError) as refused:
        check(*args, **kwargs)
    assert refused.value.message
    return refused.value.field


# --- Prompt ----------------------------------------------------------------------------------


def test_a_prompt_has_its_whitespace_collapsed():
    assert song_clean_prompt("  warm\n\tlo-fi   beat ") == "warm lo-fi beat"


@pytest.mark.parametrize("prompt", ["", "   ", "\n\t"])
def test_a_blank_prompt_is_refused(prompt):
    assert refused_field(song_clean_prompt, prompt) == "prompt"


def test_a_prompt_may_be_1000_characters_but_not_1001():
    assert len(song_clean_prompt("x" * 1000)) == 1000
    assert refused_field(song_clean_prompt, "x" * 1001) == "prompt"


def test_collapsed_whitespace_does_not_count_towards_the_limit():
    prompt = "x" * 500 + " " * 2000 + "y" * 499

    assert len(song_clean_prompt(prompt)) == 1000


# --- Title -----------------------------------------------------------------------------------


def test_a_title_has_its_whitespace_collapsed():
    assert song_clean_title("  Rainy \n day ") == "Rainy day"


def test_a_title_may_be_200_characters_but_not_201():
    assert song_clean_title("t" * 200) == "t" * 200
    assert refused_field(song_clean_title, "t" * 201) == "title"


@pytest.mark.parametrize("title", ["", "  "])
def test_a_blank_title_is_refused(title):
    assert refused_field(song_clean_title, title) == "title"


def test_a_title_from_a_prompt_is_its_first_eight_words():
    assert song_title_from_prompt("one two three four five six seven eight nine") == (
        "one two three four five six seven eight"
    )
    assert song_title_from_prompt("just two") == "just two"


def test_a_title_from_a_prompt_of_long_words_is_cut_with_an_ellipsis():
    title = song_title_from_prompt(" ".join(["w" * 100] * 8))

    assert len(title) == 200
    assert title.endswith("…")


# --- Style tags ------------------------------------------------------------------------------


def test_style_tags_are_normalised_and_deduplicated_in_order():
    tags = ["Lo-Fi", " jazz  fusion ", "lo-fi", "", "  ", "JAZZ FUSION", "ambient"]

    assert song_clean_style_tags(tags) == ["lo-fi", "jazz fusion", "ambient"]


def test_a_style_tag_may_be_32_characters_but_not_33():
    assert song_clean_style_tags(["t" * 32]) == ["t" * 32]
    assert refused_field(song_clean_style_tags, ["t" * 33]) == "style_tags"


def test_ten_distinct_style_tags_are_allowed_but_not_eleven():
    ten = [f"tag {n}" for n in range(10)]

    assert song_clean_style_tags(ten + ["TAG 0", "tag   1"]) == ten  # duplicates do not count
    assert refused_field(song_clean_style_tags, [*ten, "tag 10"]) == "style_tags"


def test_no_style_tags_is_fine():
    assert song_clean_style_tags([]) == []


# --- Parameters ------------------------------------------------------------------------------

ALLOWED = [
    {"duration_s": 10.0},
    {"duration_s": 600.0},
    {"guidance": 0.0},
    {"guidance": 10.0},
    {"seed": 0},
    {"seed": MAX_SEED},
    {"seed": None},
]
REFUSED = [
    ({"duration_s": 9.999}, "duration_s"),
    ({"duration_s": 600.001}, "duration_s"),
    ({"duration_s": math.nan}, "duration_s"),
    ({"duration_s": math.inf}, "duration_s"),
    ({"guidance": -0.001}, "guidance"),
    ({"guidance": 10.001}, "guidance"),
    ({"guidance": math.nan}, "guidance"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**31}, "seed"),
]


def parameters(**change):
    return {"duration_s": 30.0, "guidance": 3.0, "seed": 1, **change}


def test_the_largest_seed_is_the_largest_31_bit_number():
    assert MAX_SEED == 2**31 - 1


@pytest.mark.parametrize("change", ALLOWED, ids=str)
def test_parameters_at_their_limits_are_allowed(change):
    song_check_parameters(**parameters(**change))


@pytest.mark.parametrize(("change", "field"), REFUSED, ids=[str(c) for c, _ in REFUSED])
def test_parameters_past_their_limits_are_refused(change, field):
    assert refused_field(song_check_parameters, **parameters(**change)) == field


def test_a_duration_error_says_the_allowed_range():
    with pytest.raises(ServiceError, match="between 10 s and 600 s"):
        song_check_parameters(**parameters(duration_s=601))
