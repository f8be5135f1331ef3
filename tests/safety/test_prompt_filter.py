"""The prompt filter, table-driven: what it must refuse and what it must let through.

Pure: no database, no Django. Each row is a text a person could type; the allowed rows are as
important as the refused ones (genres, cities, ordinary words, public-domain composers), since a
filter that refuses "Detroit techno" is one people learn to hate.
"""

from __future__ import annotations

import pytest

from webapp.safety.prompt_filter import (
    ARTIST,
    MAX_SWEARS,
    PROFANITY,
    SLUR,
    fold,
    prompt_check,
    prompt_check_all,
    raw_words,
)

# (text, the name the refusal names)
REFUSED_ARTISTS = [
    ("in the style of Taylor Swift", "Taylor Swift"),
    ("sounds like Drake", "Drake"),
    ("a Beatles song", "Beatles"),
    ("The Beatles", "Beatles"),
    ("thebeatles medley", "Beatles"),
    ("T4ylor Sw1ft ballad", "Taylor Swift"),
    ("taylorswift vibes", "Taylor Swift"),
    ("taylor-swift pop", "Taylor Swift"),
    ("taylor_swift pop", "Taylor Swift"),
    ("t a y l o r  s w i f t", "Taylor Swift"),
    ("t.a.y.l.o.r s.w.i.f.t", "Taylor Swift"),
    ("TAYLOR SWIFT", "Taylor Swift"),
    ("Ｔａｙｌｏｒ Ｓｗｉｆｔ", "Taylor Swift"),  # fullwidth letters (NFKC)
    ("Тaylor Swift", "Taylor Swift"),  # a Cyrillic Т
    ("Tay\u200blor Swift", "Taylor Swift"),  # a zero-width space inside the name
    ("Beyoncé anthem", "Beyoncé"),
    ("beyonce anthem", "Beyoncé"),
    ("Björk-ish glitch", "Björk"),
    ("bjork", "Björk"),
    ("Mötley Crüe riffs", "Mötley Crüe"),
    ("Kanye-inspired soul chops", "Kanye West"),
    ("Drake type beat", "Drake"),
    ("drakeesque flow", "Drake"),
    ("Drake's flow", "Drake"),
    ("feat. Drake", "Drake"),
    ("ft Queen", "Queen"),
    ("like Queen", "Queen"),
    ("a Queen-style stadium anthem", "Queen"),
    ("by Prince", "Prince"),
    ("in the style of Madonna", "Madonna"),
    ("voice of Cher", "Cher"),
    ("like Nirvana", "Nirvana"),
    ("Nirvana-esque grunge", "Nirvana"),
    ("sounds like the Police", "The Police"),
    ("Jay-Z flow over jazz samples", "Jay-Z"),
    ("jayz", "Jay-Z"),
    ("50 Cent", "50 Cent"),
    ("Deadmau5 progressive house", "Deadmau5"),
    ("d34dmau5", "Deadmau5"),
    ("U2 guitar delay", "U2"),
    ("blink-182 pop punk", "Blink-182"),
    ("AC/DC riffs", "AC/DC"),
    ("Guns N' Roses", "Guns N' Roses"),
    ("guns and roses ballad", "Guns N' Roses"),
    ("Hans Zimmer braams", "Hans Zimmer"),
    ("Zimmer-style braams", "Zimmer"),
    ("epic like Zimmer", "Zimmer"),
    ("Stravinsky rhythms", "Igor Stravinsky"),
    ("Ennio Morricone western whistle", "Ennio Morricone"),
    ("Morgan Freeman narrating", "Morgan Freeman"),
    ("Donald Trump rapping", "Donald Trump"),
    ("Daft Punk filter house", "Daft Punk"),
    ("taylor, swift", "Taylor Swift"),  # tags joined by commas
]

ALLOWED = [
    # genres, scenes and cities
    "Chicago house groove",
    "sounds like Chicago house",
    "Detroit techno at 130 bpm",
    "like detroit techno",
    "Jersey club kicks",
    "Baltimore club",
    "Miami bass",
    "Memphis rap cowbells",
    "Berlin techno",
    "the Bristol sound",
    "gypsy jazz guitar",
    "future bass supersaws",
    "uk garage shuffle",
    # ordinary words that are also names
    "Nirvana-like bliss",
    "reach nirvana",
    "dancing queen disco",
    "drama queen",
    "queen of the night aria",
    "Prince charming waltz",
    "Madonna and child hymn",
    "a drake quacking by the pond",
    "a duck and a drake",
    "seal barking on the beach",
    "seal the deal",
    "Cher ami",
    "a sting of brass",
    "sounds like the future",
    "a journey through sound",
    "a journey-like build",
    "sugar rush synth",
    "pink noise wash",
    "like pink noise",
    "ghost notes on the snare",
    "my muse",
    "a desert oasis",
    "a blur of synths",
    "like a queen",
    "like a prince",
    "dragon slayer battle theme",
    "Moby Dick sea shanty",
    "play only the black keys",
    "a swift tempo",
    "the doors open slowly",
    "logic gates bleeping",
    "heart beat kick",
    # public-domain composers
    "in the style of Bach",
    "like Bach",
    "a Mozart sonata",
    "Beethoven's fifth",
    "Chopin nocturne",
    "Debussy-esque impressionism",
    "Scott Joplin ragtime",
    "Tchaikovsky ballet strings",
    "Vivaldi seasons",
    # plain prompts that contain names' letters but not names
    "warm lo-fi beat with soft piano",
    "sad electronic",
    "class bass with hats",
    "Scunthorpe United anthem",
    "bass in F# minor, C#m7 pads, Bb",
    "4 on the floor, 808s, 120 bpm, 4/4",
    "80s synthwave at 3am",
    "lo-fi hip hop",
    "a damn fine groove",
    "fucking loud drums",  # one swear: allowed
    "",
]

REFUSED_SLURS = [
    "n1gger",
    "N I G G E R",
    "f*ggot",
    "faggots",
    "you f@g",
    "retard",
    "tr4nny",
    "k-i-k-e",
]

REFUSED_PROFANITY = [
    "fucking loud fucking drums",
    "f*ck this sh*t",
    "f**k this shit",
    "fuuuuck fuuuck",
    "sh!t beat, b1tch",
    "motherfucker bullshit",
    "wtf stfu",
]


@pytest.mark.parametrize(("text", "name"), REFUSED_ARTISTS, ids=[r[0] for r in REFUSED_ARTISTS])
def test_real_artists_are_refused_and_named(text, name):
    verdict = prompt_check(text)

    assert not verdict.allowed
    assert verdict.reason == ARTIST
    assert verdict.matched == name
    assert verdict.message == (
        f"We don't imitate real artists (matched: {name}). "
        "Describe the sound instead: tempo, instruments, mood."
    )


@pytest.mark.parametrize("text", ALLOWED)
def test_genres_places_ordinary_words_and_public_domain_composers_pass(text):
    verdict = prompt_check(text)

    assert verdict.allowed, verdict


@pytest.mark.parametrize("text", REFUSED_SLURS)
def test_slurs_are_refused_and_never_repeated_back(text):
    verdict = prompt_check(text)

    assert (verdict.allowed, verdict.reason, verdict.matched) == (False, SLUR, None)
    assert "slur" in verdict.message
    assert fold(text).replace(" ", "") not in fold(verdict.message).replace(" ", "")


def test_a_slur_is_refused_even_alone_and_inside_an_otherwise_fine_prompt():
    assert not prompt_check("warm lo-fi beat, faggot").allowed


@pytest.mark.parametrize("text", REFUSED_PROFANITY)
def test_more_than_the_allowed_swearing_is_refused(text):
    verdict = prompt_check(text)

    assert (verdict.allowed, verdict.reason) == (False, PROFANITY)
    assert f"at most {MAX_SWEARS}" in verdict.message


@pytest.mark.parametrize("text", ["fucking loud drums", "f*ck yeah", "sh1t hot bass", "fuuuck"])
def test_one_swear_word_is_allowed(text):
    assert prompt_check(text).allowed


def test_a_name_split_across_style_tags_is_found_in_the_tags_together():
    assert prompt_check("taylor").allowed and prompt_check("swift pop").allowed

    verdict = prompt_check_all(["taylor", "swift"])

    assert (verdict.allowed, verdict.matched) == (False, "Taylor Swift")
    assert prompt_check_all(["lo-fi", "swift tempo", "piano"]).allowed


def test_slurs_come_before_names_and_names_before_swearing():
    assert prompt_check("like Drake, faggot").reason == SLUR
    assert prompt_check("fucking Drake type beat, shit").reason == ARTIST


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Beyoncé's  Flow!", ["beyonce", "flow!"]),
        ("taylor-swift", ["taylor", "swift"]),
        ("f*ck", ["f*ck"]),
        ("ＡＢＣ", ["abc"]),
    ],
)
def test_words_are_folded_and_split_on_punctuation_but_keep_leet_and_masks(text, words):
    assert raw_words(fold(text)) == words
