"""One prompt filter for every piece of free text people ask us to generate from or show.

Song prompts, titles and style tags, room titles and anchor prompts, and room proposals all go
through :func:`prompt_check`, which returns a :class:`Verdict`: allowed, or refused with a reason
code and a sentence to show the user. Three rules, in order:

1. **Slurs** are never allowed (data/slurs.txt).
2. **Real artists and public figures** are not imitated (data/artists.txt, a few hundred of the
   most imitated names): "in the style of Taylor Swift", "sounds like Drake", "a Beatles song".
   Names that are also ordinary words, genres or places (data/ambiguous.txt) are refused only in
   an artist context ("like Queen", "Drake-style"), or never ("Chicago house"). Phrases that
   contain such a name but mean something else (data/allowed_phrases.txt: "dancing queen",
   "Detroit techno") and public-domain composers (data/public_domain.txt: Bach, Mozart) are set
   aside first, so they always pass.
3. **Excessive profanity**: at most :data:`MAX_SWEARS` swear words (data/profanity.txt) a text.

Matching is on normalised words, never on substrings, so "Scunthorpe" and "bass" are safe:
NFKC, case folded, accents stripped, look-alike Cyrillic and Greek letters mapped to Latin,
invisible characters dropped, possessive "'s" dropped. A name also matches with its words run
together ("taylorswift"), split by punctuation ("taylor-swift"), spelled out ("t a y l o r"), or
in leetspeak ("T4ylor Sw1ft"). Swear words and slurs also match masked ("f*ck", "n*****r":
the first letter shown) and stretched ("fuuuck").

Pure Python over the data files: no Django, no database. The data is read once per process.
docs/safety.md explains the data and how to extend it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA_DIR = Path(__file__).with_name("data")

MAX_SWEARS = 1  # one swear word is fine ("a damn fine groove"); two or more is excessive

# Reason codes of a refusal (stable: clients and logs may count them).
SLUR = "slur"
ARTIST = "artist_name"
PROFANITY = "profanity"

# An artist context: the words right before or right after a name that say a person is meant.
CONTEXT_BEFORE = frozenset(
    [
        "like",
        "by",
        "feat",
        "featuring",
        "ft",
        "as",
        "imitating",
        "impersonating",
        "channeling",
        "channelling",
        "covering",
        "vs",
        "versus",
    ]
)
CONTEXT_BEFORE_PAIRS = frozenset(
    {
        ("style", "of"),
        ("voice", "of"),
        ("manner", "of"),
        ("spirit", "of"),
        ("vein", "of"),
        ("cover", "of"),
        ("similar", "to"),
        ("tribute", "to"),
        ("homage", "to"),
    }
)
CONTEXT_AFTER = frozenset(
    [
        "style",
        "styled",
        "inspired",
        "esque",
        "ish",
        "type",
        "cover",
        "covers",
        "song",
        "songs",
        "track",
        "tracks",
        "album",
        "vocals",
        "voice",
        "impression",
        "impersonation",
        "tribute",
        "remix",
        "flow",
        "lyrics",
        "soundalike",
    ]
)
# The same words glued onto a name: "drakeesque", "queenstyle".
CONTEXT_SUFFIXES = ("esque", "style", "inspired", "type")

# Characters people use for letters (applied only inside a word that also has letters, so
# "4/4", "808" and "120 bpm" stay numbers). "1" is tried as both "i" and "l".
_LEET = str.maketrans(
    {
        "0": "o",
        "1": "i",
        "2": "z",
        "3": "e",
        "4": "a",
        "5": "s",
        "6": "g",
        "7": "t",
        "8": "b",
        "9": "g",
        "@": "a",
        "$": "s",
        "!": "i",
        "|": "l",
        "+": "t",
        "€": "e",
    }
)
_LEET_SYMBOLS = frozenset("@$!|+€")
_MASKS = frozenset("*#%_")  # characters that hide a letter: "f*ck", "sh#t"
# Letters from other scripts that look like Latin ones (after case folding), and Latin letters
# that NFKD does not split into a base letter and an accent.
_LOOKALIKES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j",
        "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "α": "a", "β": "b", "ε": "e", "ι": "i",
        "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ø": "o",
        "ł": "l", "đ": "d", "ð": "d", "þ": "th", "æ": "ae", "œ": "oe", "ı": "i",
    }
)  # fmt: skip
_POSSESSIVE = re.compile(r"['’`´]s\b")
MAX_NAME_CHARS = 48  # the longest run of words joined together that can be a name


@dataclass(frozen=True)
class Verdict:
    """The filter's answer about one text: allowed, or refused with a reason and a message."""

    allowed: bool
    reason: str | None = None  # SLUR, ARTIST or PROFANITY when refused
    matched: str | None = None  # what was found, as the user may be shown it (never a slur)
    message: str = ""  # the sentence the user sees


ALLOWED = Verdict(allowed=True)


# --- Normalising text into words ---------------------------------------------------------------


def fold(text: str) -> str:
    """Text as the filter compares it: NFKC, case folded, accents and invisible characters
    removed, look-alike letters mapped to Latin, possessive "'s" dropped."""
    text = unicodedata.normalize("NFKC", str(text)).casefold()
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")  # zero-width, bidi
    text = text.translate(_LOOKALIKES)
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _POSSESSIVE.sub("", text)


def raw_words(text: str) -> list[str]:
    """The words of a folded text, keeping leetspeak and mask characters inside them
    ("sw1ft", "f*ck", "a$$"); every other character separates words."""
    words: list[str] = []
    for match in re.finditer(r"\S+", text):
        chunk = match.group()
        # Inside a chunk, letters, digits, leet symbols and masks stay together; punctuation
        # such as "-" "." "," "'" "/" splits it ("taylor-swift", "t.a.y.l.o.r").
        words.extend(part for part in _split_keep(chunk) if part)
    return words


def _split_keep(chunk: str) -> Iterator[str]:
    part = []
    for ch in chunk:
        if ch.isalnum() or ch in _LEET_SYMBOLS or ch in _MASKS:
            part.append(ch)
        else:
            yield "".join(part)
            part = []
    yield "".join(part)


def _plain(word: str) -> str:
    """Letters and digits only: "sw1ft!" -> "sw1ft", "f*ck" -> "fck"."""
    return "".join(ch for ch in word if ch.isalnum())


_LEET_L = {**_LEET, ord("1"): "l"}
_EDGE_SYMBOLS = "".join(sorted(_LEET_SYMBOLS | _MASKS))


def _deleet(word: str, *, one: str = "i", edges: bool = False) -> str:
    """A word with leetspeak read as letters ("t4yl0r" -> "taylor"), if it has letters at all.
    Symbols at the edges are punctuation ("swift!") unless `edges` ("$hit", "a$$")."""
    if word.isalpha() or not any(ch.isalpha() for ch in word):
        return _plain(word)
    if not edges:
        word = word.strip(_EDGE_SYMBOLS)
    return _plain(word.translate(_LEET_L if one == "l" else _LEET))


def word_views(text: str) -> list[list[str]]:
    """The words of a text read several ways (plain, and leetspeak read as letters with "1" as
    i or l, symbols at the edges as punctuation or as letters): a name or a swear word found in
    any view counts. Each view has one entry per raw word, so positions line up."""
    words = raw_words(fold(text))
    views = [
        [_plain(w) for w in words],
        [_deleet(w) for w in words],
        [_deleet(w, one="l") for w in words],
        [_deleet(w, edges=True) for w in words],
    ]
    # Most texts have no leetspeak: their views are all the same, and one is enough.
    return [view for i, view in enumerate(views) if view not in views[:i]]


# --- The data ---------------------------------------------------------------------------------


def compact(name: str) -> str:
    """A name as one run of letters and digits, the key names are looked up by."""
    return "".join(_plain(w) for w in raw_words(fold(name)))


@dataclass(frozen=True)
class Name:
    display: str  # as the data file spells it (shown in the refusal)
    kind: str  # "anywhere", "context" or "never"
    words: int  # how many words the name has ("taylor swift": 2)


def read_names(path: Path) -> Iterator[tuple[str, str, list[str]]]:
    """(section, display name, aliases) for each line of a names file. Sections are "[name]"
    lines (none: ""); "#" starts a comment; aliases follow the name after " | "."""
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        names = [part.strip() for part in line.split("|") if part.strip()]
        yield section, names[0], names[1:]


def read_words(path: Path) -> list[str]:
    """The entries of a word list (slurs, swear words), one a line, "#" comments."""
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            entries.append(line.casefold())
    return entries


@dataclass(frozen=True)
class WordList:
    """Slurs or swear words: whole words, and stems that match any ending ("fuck*")."""

    words: frozenset[str]
    stems: tuple[str, ...]

    @classmethod
    def read(cls, path: Path) -> WordList:
        entries = read_words(path)
        return cls(
            words=frozenset(compact(e) for e in entries if not e.endswith("*")),
            stems=tuple(compact(e[:-1]) for e in entries if e.endswith("*")),
        )

    def has(self, word: str) -> bool:
        return bool(word) and (word in self.words or word.startswith(self.stems))

    def has_stretched(self, word: str) -> bool:
        """ "fuuuck", "shiiit": a word with a letter repeated three times or more, compared with
        every run squeezed to one letter (on both sides, so "ass" is not "as")."""
        if not _STRETCHED.search(word):
            return False
        squeezed = _squeeze(word)
        return any(_squeeze(w) == squeezed for w in self.words) or any(
            squeezed.startswith(_squeeze(s)) for s in self.stems
        )

    def has_masked(self, raw: str) -> bool:
        """ "f*ck", "sh#t", "f**king": some letters hidden by mask characters. The first
        character must be a shown letter, and every shown letter must be in its place."""
        word = raw.strip("".join(_LEET_SYMBOLS - {"@", "$"})).translate(_LEET)
        if not (word and word[0].isalpha() and any(ch in _MASKS for ch in word)):
            return False
        if not all(ch.isalnum() or ch in _MASKS for ch in word):
            return False

        def fits(pattern: str, candidate: str) -> bool:
            return all(p in _MASKS or p == c for p, c in zip(pattern, candidate, strict=True))

        if any(len(w) == len(word) and fits(word, w) for w in self.words):
            return True
        return any(len(word) >= len(s) and fits(word[: len(s)], s) for s in self.stems)


_STRETCHED = re.compile(r"([a-z])\1\1")


def _squeeze(word: str) -> str:
    return re.sub(r"([a-z])\1+", r"\1", word)


@dataclass(frozen=True)
class Lexicon:
    names: dict[str, Name]  # compact name -> the name
    set_aside: frozenset[str]  # compact allowed phrases and public-domain composers
    slurs: WordList
    swears: WordList


def load_lexicon(data_dir: Path = DATA_DIR) -> Lexicon:
    """Read the data files into lookup tables."""
    names: dict[str, Name] = {}

    def put(key: str, entry: Name) -> None:
        # The first file to name a spelling keeps it; spellings of one name keep the most
        # words any of them has ("NSYNC" and "N Sync": "n sync" may be two words).
        known = names.get(key)
        if known is None or (known.display == entry.display and entry.words > known.words):
            names[key] = entry

    def add(display: str, aliases: list[str], kind: str) -> None:
        for spelling in (display, *aliases):
            key = compact(spelling)
            if not key:
                continue
            entry = Name(display=display, kind=kind, words=len(raw_words(fold(spelling))))
            put(key, entry)
            if kind == "anywhere" and not key.startswith("the"):
                put("the" + key, entry)  # "thebeatles"
            if kind == "anywhere" and key.startswith("the") and entry.words > 1:
                put(key[3:], Name(display, kind, entry.words - 1))  # "weeknd"
            # A name spelled with digits is also found in the views that read digits as
            # letters ("d34dmau5" -> "deadmaus").
            put(_deleet(key), entry)

    for _, display, aliases in read_names(data_dir / "artists.txt"):
        add(display, aliases, "anywhere")
    for section, display, aliases in read_names(data_dir / "ambiguous.txt"):
        add(display, aliases, section)
    set_aside = {compact(p) for p in read_words(data_dir / "allowed_phrases.txt")}
    for _, display, aliases in read_names(data_dir / "public_domain.txt"):
        set_aside.update(compact(s) for s in (display, *aliases))
    return Lexicon(
        names=names,
        set_aside=frozenset(set_aside),
        slurs=WordList.read(data_dir / "slurs.txt"),
        swears=WordList.read(data_dir / "profanity.txt"),
    )


@lru_cache(maxsize=1)
def lexicon() -> Lexicon:
    return load_lexicon()


# --- Finding things in the words --------------------------------------------------------------


def _spans(words: list[str | None], *, longest: int) -> Iterator[tuple[int, int, str]]:
    """(start, end, joined) for every run of consecutive words up to `longest` characters
    joined. `None` is a barrier (a set-aside phrase); empty words are passed over."""
    for start, first in enumerate(words):
        if not first:
            continue
        joined = ""
        for end in range(start, len(words)):
            word = words[end]
            if word is None:
                break
            joined += word
            if len(joined) > longest:
                break
            if word:
                yield start, end + 1, joined


def _set_aside(words: list[str], phrases: frozenset[str]) -> list[str | None]:
    """The words with every allowed phrase replaced by barriers (longest phrases first)."""
    out: list[str | None] = list(words)
    found = [span for span in _spans(words, longest=MAX_NAME_CHARS) if span[2] in phrases]
    for start, end, _ in sorted(found, key=lambda span: span[0] - span[1]):
        if all(w is not None for w in out[start:end]):
            out[start:end] = [None] * (end - start)
    return out


def _nearest(words: list[str | None], index: int, step: int, count: int) -> list[str]:
    """Up to `count` non-empty words from `index` on in direction `step`, nearest first;
    a barrier (a set-aside phrase) or the end of the text stops the walk."""
    found: list[str] = []
    while 0 <= index < len(words) and len(found) < count:
        word = words[index]
        if word is None:
            break
        if word:
            found.append(word)
        index += step
    return found


def _in_artist_context(words: list[str | None], start: int, end: int) -> bool:
    """Whether the words around a name say a person is meant: "like X", "style of X",
    "X-inspired", "X type beat"."""
    before = _nearest(words, start - 1, -1, 2)
    after = _nearest(words, end, 1, 1)
    return bool(
        (before and before[0] in CONTEXT_BEFORE)
        or (len(before) == 2 and (before[1], before[0]) in CONTEXT_BEFORE_PAIRS)
        or (after and after[0] in CONTEXT_AFTER)
    )


def _names_in(words: list[str | None], lex: Lexicon) -> Iterator[Name]:
    """Names refused in these words: anywhere-names wherever they are, context-names only in an
    artist context. A one-word name is not assembled from several words unless they are single
    letters ("t a y l o r"), so "sad electronic" never spells a name across its words."""
    for start, end, joined in _spans(words, longest=MAX_NAME_CHARS):
        name = lex.names.get(joined)
        glued_context = False
        if name is None and end - start == 1:
            for suffix in CONTEXT_SUFFIXES:  # "drakeesque", "queenstyle"
                if joined.endswith(suffix) and joined[: -len(suffix)] in lex.names:
                    name, glued_context = lex.names[joined[: -len(suffix)]], True
                    break
        if name is None or name.kind == "never":
            continue
        pieces = [w for w in words[start:end] if w]
        if len(pieces) > 1 and name.words < 2 and not all(len(w) == 1 for w in pieces):
            continue
        if name.kind == "context" and not (glued_context or _in_artist_context(words, start, end)):
            continue
        yield name


def _bad_words(raw: list[str], views: list[list[str]], words: WordList) -> Iterator[int]:
    """Positions of words in the list: in any view, stretched, masked, or spelled out in
    single letters ("f u c k")."""
    found: set[int] = set()
    for i, original in enumerate(raw):
        if any(words.has(view[i]) or words.has_stretched(view[i]) for view in views) or (
            words.has_masked(original)
        ):
            found.add(i)
    for view in views:
        for start, end in _letter_runs(view):
            letters = view[start:end]
            for i, j, joined in _spans(letters, longest=24):
                if j - i > 1 and words.has(joined):
                    found.add(start + i)
    return iter(sorted(found))


def _letter_runs(words: list[str]) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of two or more single letters ("f u c k")."""
    start = None
    for i, word in enumerate([*words, "end"]):
        if len(word) <= 1 and word:
            start = i if start is None else start
            continue
        if start is not None and i - start > 1:
            yield start, i
        start = None


# --- The verdict ------------------------------------------------------------------------------


def prompt_check(text: str, *, lex: Lexicon | None = None) -> Verdict:
    """Whether `text` may be used as a prompt, title, tag or proposal, and if not, why."""
    lex = lex or lexicon()
    raw = raw_words(fold(text))
    if not raw:
        return ALLOWED
    views = word_views(text)

    if next(_bad_words(raw, views, lex.slurs), None) is not None:
        return Verdict(
            allowed=False,
            reason=SLUR,
            message="That text contains a slur, which we never show or generate from. "
            "Please rephrase it.",
        )

    for view in views:
        found = next(_names_in(_set_aside(view, lex.set_aside), lex), None)
        if found is not None:
            return Verdict(
                allowed=False,
                reason=ARTIST,
                matched=found.display,
                message=f"We don't imitate real artists (matched: {found.display}). "
                "Describe the sound instead: tempo, instruments, mood.",
            )

    swears = len(list(_bad_words(raw, views, lex.swears)))
    if swears > MAX_SWEARS:
        return Verdict(
            allowed=False,
            reason=PROFANITY,
            message=f"Too much swearing ({swears} swear words; at most {MAX_SWEARS}). "
            "Please tone it down.",
        )
    return ALLOWED


def prompt_check_all(texts: Iterable[str]) -> Verdict:
    """The first refusal among several texts (style tags), or ALLOWED. The texts are also
    checked joined, so a name split across two tags ("taylor", "swift") is found."""
    texts = [t for t in texts if t]
    for text in [*texts, ", ".join(texts)]:
        verdict = prompt_check(text)
        if not verdict.allowed:
            return verdict
    return ALLOWED
