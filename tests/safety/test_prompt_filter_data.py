"""The filter's data files: they parse, each name lives in one place, and no allowed phrase
or public-domain composer can hide a listed artist (which would be a way around the filter)."""

from __future__ import annotations

import pytest

from webapp.safety.prompt_filter import (
    DATA_DIR,
    compact,
    fold,
    load_lexicon,
    prompt_check,
    raw_words,
    read_names,
    read_words,
)


def spellings(filename: str) -> dict[str, str]:
    """compact spelling -> display name, for every name and alias of a names file."""
    found = {}
    for _, display, aliases in read_names(DATA_DIR / filename):
        for spelling in (display, *aliases):
            found[compact(spelling)] = display
    return found


ARTISTS = spellings("artists.txt")
AMBIGUOUS = spellings("ambiguous.txt")
PUBLIC_DOMAIN = spellings("public_domain.txt")
ALLOWED_PHRASES = {compact(p) for p in read_words(DATA_DIR / "allowed_phrases.txt")}


def test_the_artist_list_holds_a_few_hundred_names():
    names = {display for _, display, _ in read_names(DATA_DIR / "artists.txt")}
    assert len(names) >= 300


def test_ambiguous_names_are_either_context_or_never():
    sections = {section for section, _, _ in read_names(DATA_DIR / "ambiguous.txt")}
    assert sections == {"context", "never"}


@pytest.mark.parametrize(
    ("one", "other"),
    [("artists", "ambiguous"), ("artists", "public_domain"), ("ambiguous", "public_domain")],
)
def test_a_name_is_in_one_file_only(one, other):
    files = {"artists": ARTISTS, "ambiguous": AMBIGUOUS, "public_domain": PUBLIC_DOMAIN}
    assert set(files[one]) & set(files[other]) == set()


def test_no_allowed_phrase_or_composer_covers_part_of_a_listed_name():
    """Set-aside phrases are removed before names are looked for: one that matched a run of
    words inside a name ("joplin" in "Janis Joplin") would let that name through."""
    covers = ALLOWED_PHRASES | set(PUBLIC_DOMAIN)
    for filename in ("artists.txt", "ambiguous.txt"):
        for _, display, aliases in read_names(DATA_DIR / filename):
            for spelling in (display, *aliases):
                words = [compact(w) for w in raw_words(fold(spelling))]
                runs = {
                    "".join(words[i:j])
                    for i in range(len(words))
                    for j in range(i + 1, len(words) + 1)
                }
                assert not runs & covers, spelling


def test_every_listed_artist_is_refused_when_named_as_an_artist():
    """Each name and alias in artists.txt, and each [context] name in ambiguous.txt, is refused
    in "in the style of <name>": no entry is dead data."""
    lexicon = load_lexicon()
    for _, display, aliases in read_names(DATA_DIR / "artists.txt"):
        for spelling in (display, *aliases):
            verdict = prompt_check(f"in the style of {spelling}", lex=lexicon)
            assert not verdict.allowed, spelling
    for section, display, aliases in read_names(DATA_DIR / "ambiguous.txt"):
        for spelling in (display, *aliases):
            verdict = prompt_check(f"in the style of {spelling}", lex=lexicon)
            assert verdict.allowed == (section == "never"), spelling


def test_public_domain_composers_pass_in_every_artist_context():
    for _, display, aliases in read_names(DATA_DIR / "public_domain.txt"):
        for spelling in (display, *aliases):
            for text in (f"in the style of {spelling}", f"like {spelling}", f"{spelling}-esque"):
                assert prompt_check(text).allowed, text
