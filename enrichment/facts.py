"""Facts of an article: the numbers and names it mentions, to tell what it adds to its story.

"4,800" becoming "5,000", a new base, a new place: an article that joins a story is worth an update when it
brings facts the story did not have. This is a cheap, language-agnostic approximation of named-entity
recognition (capitalised words not at a sentence start, in Latin and Cyrillic scripts) plus normalised
numbers. German capitalises every noun, so German text yields more "names" than it should; the facts only
rank and annotate, they never decide alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

from core.text import fold

# --- numbers -----------------------------------------------------------------------------------------
_SEP = r"[,.'\u00a0\u202f\u2009 ]"
_NUMBER = re.compile(
    r"(?<![\w.,])"
    r"(?P<int>\d{1,3}(?:(?P<sep>" + _SEP + r")\d{3})(?:(?P=sep)\d{3})*|\d+)"
    r"(?:(?P<dec>[.,])(?P<frac>\d+))?"
    r"(?!\d)"
    r"(?P<pct>\s?(?:%|percent\b|per\s?cent\b|prozent\b|procent\w*|proc\.|процент\w*|proc\w*))?",
    re.IGNORECASE,
)

# --- names -------------------------------------------------------------------------------------------
# A word: letters (any script), inner apostrophes, hyphens and dots of abbreviations ("U.S.").
_WORD = re.compile(r"(?:[^\W\d_]\.){2,}|[^\W\d_][\w’'\-]*[\w]|[^\W\d_]")
_SENTENCE_END = re.compile(r"[.!?…:;«»\"“”„()\[\]|•–—]+\s*$|\n")
_CONNECTORS = frozenset({"of", "de", "von", "van", "der", "den", "du", "la", "al", "bin", "da"})
_POSSESSIVE = re.compile(r"[’']s?$")

# Capitalised words that are not names: pronouns, days, months, headline filler.
_NOT_NAMES = frozenset(
    fold(word)
    for word in """
    I A An The This That These Those There Here It Its We You He She They Our Their His Her My Your Mr Mrs Ms Dr
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July August
    September October November December Jan Feb Mar Apr Jun Jul Aug Sep Sept Oct Nov Dec
    Der Die Das Ein Eine Und Im Am Auf Mit Nach Wie Was Wer Wo Warum
    Montag Dienstag Mittwoch Donnerstag Freitag Samstag Sonntag Januar Februar März Juni Juli Oktober Dezember
    В Во На По Как Что Это Для Из От И А Но
    Ir Kad Kaip Kur Ar Bet Po Per Iš Į Su Dėl
    W Z Na Po Jak Co
    Breaking Live Update Updated Video Photo Photos Opinion Analysis Exclusive Watch Read
    """.split()
)

# Cyrillic -> Latin, only for comparing facts across scripts ("Писториус" ~ "Pistorius").
_TRANSLIT = str.maketrans(
    {
        "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ж": "zh", "з": "z", "и": "i",
        "й": "i", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r", "с": "s",
        "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh", "щ": "shch", "ъ": "",
        "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya", "і": "i", "ї": "i", "є": "e", "ґ": "g",
        "ў": "u",
    }
)
_STEM = 5  # words compared by their first letters: "Lithuania" ~ "Lithuanian", "Россия" ~ "России", "Польша" ~ "Польше"
# After transliteration, spellings of one name in different alphabets and orthographies are brought to one
# skeleton: "Вильнюс" (vilnyus) ~ "Vilnius", "Юрмала" (yurmala) ~ "Jūrmala", "Шольц" (sholts) ~ "Scholz",
# "Таллин" ~ "Tallinn", "Макрон" ~ "Macron". Longest patterns first; then doubled letters collapse.
_SKELETON = (
    ("shch", "sh"), ("tsch", "ch"), ("sch", "sh"), ("sz", "sh"), ("cz", "ch"), ("kh", "h"), ("ph", "f"),
    ("ck", "k"), ("ts", "c"), ("tz", "c"), ("z", "c"), ("c", "k"), ("q", "k"), ("x", "ks"), ("w", "v"),
    ("y", "i"), ("j", "i"),
)
_SKELETON_MAP = dict(_SKELETON)
_SKELETON_RE = re.compile("|".join(re.escape(pattern) for pattern, _ in _SKELETON))
_DOUBLE = re.compile(r"(.)\1+")


def skeleton(word: str) -> str:
    """A transliterated, folded word reduced to the skeleton its spellings share (see `_SKELETON`)."""
    return _DOUBLE.sub(r"\1", _SKELETON_RE.sub(lambda match: _SKELETON_MAP[match.group()], word))


_SEP_RE = re.compile(_SEP)


def _number(match: re.Match[str]) -> str | None:
    integer, sep, dec, frac, pct = match.group("int", "sep", "dec", "frac", "pct")
    if sep is not None:
        integer = _SEP_RE.sub("", integer)
    if frac is not None and dec == sep:
        return None  # "1,234,5": not a number we understand
    if frac is not None and dec is not None and sep is None and len(frac) == 3:
        # "4,800" / "4.800": one separator followed by three digits groups thousands, not decimals
        integer, frac = integer + frac, None
    value = integer.lstrip("0") or "0"
    if frac is not None and frac.strip("0"):
        value = f"{value}.{frac.rstrip('0')}"
    if pct:
        return value + "%"
    if frac is None and len(value) == 1:
        return None  # single digits ("2 sides", "Leopard 2") are noise, not facts
    return value


def numbers(text: str) -> list[str]:
    """Normalised numbers of `text` in order: "4,800", "4.800", "4 800" -> "4800"; "20 %" -> "20%"."""
    found = []
    for match in _NUMBER.finditer(text):
        value = _number(match)
        if value is not None and value not in found:
            found.append(value)
    return found


def _clean(word: str) -> str:
    return _POSSESSIVE.sub("", word.strip("-’'"))


def _is_capitalised(word: str) -> bool:
    return word[:1].isupper()


def _title_case(words: list[str]) -> bool:
    """A headline in Title Case: capitals there say nothing about names."""
    long_words = [w for w in words if len(w) > 3 and not w.isupper()]
    return len(long_words) >= 4 and sum(map(_is_capitalised, long_words)) >= 0.9 * len(long_words)


# The same words and gaps recur from text to text: what `names` needs of each is computed once (cached).
_WORD_SPLIT = re.compile(f"({_WORD.pattern})")
_BREAK = re.compile(r"[.!?…]\s")
_folded = lru_cache(maxsize=65536)(fold)


@lru_cache(maxsize=4096)
def _breaks(gap: str) -> bool:
    """Whether the text between two words ends a sentence-like segment."""
    return bool(_SENTENCE_END.search(gap) or _BREAK.search(gap))


class _Word(NamedTuple):
    text: str
    clean: str  # `_clean(text)`
    key: str  # fold(clean)
    long_word: bool  # counted by `_title_case`: longer than 3 letters, not all capitals
    capitalised: bool  # `_is_capitalised(text)`
    name_like: bool  # clean is capitalised, longer than one letter, not a known non-name
    acronym: bool  # clean in capitals, at most 6 letters
    possessive: bool  # clean differs from the word stripped: a possessive ends the name
    connector: bool  # key is a connector ("of", "von")


@lru_cache(maxsize=65536)
def _word(text: str) -> _Word:
    clean = _clean(text)
    key = _folded(clean)
    return _Word(
        text,
        clean,
        key,
        len(text) > 3 and not text.isupper(),
        text[:1].isupper(),
        len(clean) > 1 and clean[:1].isupper() and key not in _NOT_NAMES,
        clean.isupper() and len(clean) <= 6,
        clean != text.strip("-’'"),
        key in _CONNECTORS,
    )


def _segments(text: str) -> list[list[tuple[str, bool]]]:
    """Words of each sentence-like segment, each with whether it starts a segment."""
    return [[(word.text, first) for word, first in segment] for segment, _ in _word_segments(text)]


def _word_segments(text: str) -> list[tuple[list[tuple[_Word, bool]], bool]]:
    """`_segments` with each word's `_Word`, and whether each segment is in Title Case."""
    parts = _WORD_SPLIT.split(text)  # gap, word, gap, word, ..., gap
    segments: list[tuple[list[tuple[_Word, bool]], bool]] = []
    current: list[tuple[_Word, bool]] = []
    for i in range(1, len(parts), 2):
        if current and _breaks(parts[i - 1]):
            segments.append((current, _segment_title_case(current)))
            current = []
        current.append((_word(parts[i]), not current))
    if current:
        segments.append((current, _segment_title_case(current)))
    return segments


def _segment_title_case(words: list[tuple[_Word, bool]]) -> bool:
    """`_title_case` of a segment's words."""
    long_words = 0
    capitalised = 0
    for word, _ in words:
        if word.long_word:
            long_words += 1
            capitalised += word.capitalised
    return long_words >= 4 and capitalised >= 0.9 * long_words


def names(text: str) -> list[str]:
    """Name-like capitalised words and sequences of `text` ("Boris Pistorius", "Rūdninkai", "НАТО").

    A capitalised word at the start of a sentence is kept only where it also appears capitalised inside a
    sentence; Title Case headlines contribute only words confirmed that way and acronyms."""
    segments = _word_segments(text)
    mid_sentence: set[str] = set()
    for words, title_case in segments:
        if title_case:
            continue
        for word, first in words:
            if not first and word.capitalised:
                mid_sentence.add(word.key)

    found: list[str] = []
    seen: set[str] = set()

    def accept(run: list[str]) -> None:
        while run and _folded(run[-1]) in _CONNECTORS:
            run.pop()
        if run:
            name = " ".join(run)
            if name not in seen:
                seen.add(name)
                found.append(name)

    for words, title_case in segments:
        run: list[str] = []
        for word, first in words:
            if word.name_like and (not (first or title_case) or word.key in mid_sentence or word.acronym):
                run.append(word.clean)
                if word.possessive:  # "Lithuania's": a possessive ends the name
                    accept(run)
                    run = []
            elif run and word.connector and not first:
                run.append(word.text)
            else:
                if run:
                    accept(run)
                    run = []
        accept(run)
    return found


def ordered_facts(text: str) -> list[str]:
    """`extract_facts` in order of appearance: numbers first, then names."""
    found = numbers(text)
    return found + [name for name in names(text) if name not in found]


def extract_facts(text: str) -> set[str]:
    """Numbers (normalised) and name-like terms of `text`, in Latin and Cyrillic scripts."""
    return set(ordered_facts(text))


@lru_cache(maxsize=65536)
def fact_keys(fact: str) -> frozenset[str]:
    """What a fact is compared by: the number itself, or each word of a name folded, transliterated, reduced
    to its `skeleton` and cut to a stem, so "Pistorius's" ~ "Pistorius" ~ "Писториус" ~ "Pistoriusas",
    "Вильнюс" ~ "Vilnius" and "Lithuanian" ~ "Lithuania"."""
    if fact[:1].isdigit():
        return frozenset({fact})
    keys = set()
    for word in re.findall(r"[^\W\d_]+", fold(fact).translate(_TRANSLIT)):
        if word not in _CONNECTORS:
            keys.add(skeleton(word)[:_STEM])
    return frozenset(keys)


def known_keys_of(known: Iterable[str]) -> set[str]:
    """The fact keys of known facts (see `fact_keys`)."""
    keys: set[str] = set()
    for fact in known:
        keys |= fact_keys(fact)
    return keys


def novel_facts(
    facts: list[str], known: Iterable[str] = (), limit: int = 10, *, known_keys: set[str] | None = None
) -> list[str]:
    """The facts that bring something `known` lacks: a number not known, or a name with a word not known.
    Numbers first (a new figure is the most telling change), then names, each in the given order.
    `known_keys` (`known_keys_of(known)`, when the caller keeps it) saves recomputing the keys."""
    if known_keys is None:
        known_keys = known_keys_of(known)
    novel = []
    for fact in facts:
        keys = fact_keys(fact)
        if keys and not keys <= known_keys and fact not in novel:
            novel.append(fact)
    novel.sort(key=lambda fact: 0 if fact[:1].isdigit() else 1)
    return novel[:limit]
