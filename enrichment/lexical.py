"""Lexical evidence for clustering: TF-IDF vectors of an article's title and lead, with online IDF.

Sentence embeddings know that "troops" and "soldiers" are alike, but they also find two different
earthquakes alike; shared rare words ("Chiquita", "Fyffes", "Rukla") tell stories apart. Terms are folded
(case, diacritics) and cut to a prefix stem, which merges most inflections in the languages Flankwatch reads
("Litauen"/"Litauens", "brigade"/"brigades", "Литва"/"Литве" stay apart only past the stem). Document
frequencies are counted online over the articles the clusterer has seen, so a word that suddenly appears
everywhere (a burst) weighs less as it spreads: no corpus is fitted in advance.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache

from core.text import fold

STEM = 7  # letters kept of a word: "deployment(s)" -> "deploym", "Lithuania(n)" -> "lithuan"
LEAD_CHARS = 300  # of the summary/body after the title: the lead says what the story is; the rest wanders
MIN_WORD = 2

# Function words of the languages Flankwatch reads (en, de, ru, lt, pl): they say nothing about a story.
STOP_WORDS = frozenset(
    fold(word)
    for word in """
    a an the of to in on for and or but with at by from as is are was were be been being it its this that these
    those he she they we you i his her their our your not no will would can could should has have had do does did
    after before over under into out up down about than then so if what who whom how why when where which while
    new more most says said say s t vs via just get gets got one two all also may might us than there here
    very now off still amid against between during per its it's
    der die das den dem des ein eine einen einem einer eines und oder aber mit von vom zu zum zur im in am an auf
    aus bei nach für fur über uber unter vor ist sind war waren wird werden hat haben nicht kein keine auch als
    wie sich es er sie wir ihr sein seine ihre dass noch nur schon mehr bis um
    и в во на по с со к о об от до из за для не что это как а но же бы ли то так все его ее их они он она мы
    вы был была были будет есть при над под после перед между уже еще более
    ir ar bet kad kaip kur po per iš is į su dėl del nuo apie prie tai jis ji jie yra buvo bus be
    i w z na do od za po przez dla nie to jest są sa jak co się sie oraz ale
    """.split()
)

_WORD = re.compile(r"[^\W_]+")


@lru_cache(maxsize=65536)
def _term(word: str) -> str:
    """The term of a folded word ("" for a stop word or a word too short): words recur, so this is cached."""
    if len(word) < MIN_WORD or word in STOP_WORDS:
        return ""
    return word if word.isdigit() else word[:STEM]


def tokens(text: str) -> list[str]:
    """Folded, stemmed content words of `text` in order ("Germany's 45th brigade" -> germany, 45th, brigade).
    Numbers stay whole: "4800" and "5000" are different facts."""
    return [term for term in map(_term, _WORD.findall(fold(text or ""))) if term]


def lead_text(title: str, body: str | None, lead_chars: int = LEAD_CHARS) -> str:
    """The title and the first `lead_chars` of the summary or body, cut at a word."""
    body = (body or "").strip()
    if len(body) > lead_chars:
        cut = body.rfind(" ", 0, lead_chars)
        body = body[: cut if cut > lead_chars // 2 else lead_chars]
    return f"{title or ''}\n{body}".strip()


class DocumentFrequencies:
    """Online document frequencies: `observe` each document once, then weigh its terms by IDF."""

    def __init__(self) -> None:
        self.documents = 0
        self.counts: Counter[str] = Counter()

    def observe(self, terms: Iterable[str]) -> None:
        self.documents += 1
        self.counts.update(set(terms))

    def idf(self, term: str) -> float:
        # Smoothed so that a term seen in every document still weighs a little (and a first document works).
        return math.log((self.documents + 1) / (self.counts.get(term, 0) + 0.5))

    def observe_vector(self, terms: Iterable[str]) -> tuple[dict[str, float], int]:
        """`observe` then `vector` of one document, counting its terms once; also its number of distinct terms."""
        counted = Counter(terms)
        self.documents += 1
        self.counts.update(counted.keys())
        return self._vector(counted), len(counted)

    def vector(self, terms: Iterable[str]) -> dict[str, float]:
        """Unit-length TF-IDF vector (sublinear tf) of a document's terms, heaviest (rarest) term first, ties
        by term, so that a reader can take its most telling terms from the front."""
        return self._vector(Counter(terms))

    def _vector(self, counted: Counter[str]) -> dict[str, float]:
        # `idf` inlined (the same arithmetic, in the same order: the same floats)
        documents = self.documents + 1
        get = self.counts.get
        log = math.log
        weights = {term: (1.0 + log(count)) * log(documents / (get(term, 0) + 0.5)) for term, count in counted.items()}
        norm = math.sqrt(sum([w * w for w in weights.values()]))
        if norm <= 0.0:
            return {}
        ranked = sorted(weights.items(), key=lambda item: (-item[1], item[0]))
        return {term: w / norm for term, w in ranked if w > 0.0}


def dot(small: dict[str, float], large: dict[str, float]) -> float:
    """Sparse dot product; pass the shorter vector first."""
    if len(small) > len(large):
        small, large = large, small
    get = large.get
    return sum([weight * get(term, 0.0) for term, weight in small.items()])
