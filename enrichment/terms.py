"""Keyword matching for topic profiles: case- and diacritics-insensitive, `*` for any ending, multiword.

"Litauen*" matches "Litauens", "Rūdnink*" matches "Rudninkų", "brigade in Lithuania" matches
"Brigade in Lithuania" and "brigade, in Lithuania", "восточн* фланг*" matches "восточном фланге". Words are
matched whole ("Riga" is not "Rigaer" unless the term is "Riga*"); hyphens separate words, so
"Bundeswehr-Brigade" matches "Brigade*".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.text import fold

_TOKEN = re.compile(r"\w+")


@dataclass(frozen=True)
class Term:
    label: str  # as configured
    kind: str  # strong | place | keyword
    tokens: tuple[str, ...]  # folded words
    prefixes: tuple[bool, ...]  # per word: any ending allowed ("восточн* фланг*")


@dataclass(frozen=True)
class TermMatch:
    term: Term
    surface: str  # as written in the text ("Litauen", "Rūdninkų")
    position: int  # word index of the first occurrence


def compile_term(label: str, kind: str) -> Term | None:
    """A configured term ready to match; None for a term without letters or digits."""
    raw = label.strip()
    tokens: list[str] = []
    prefixes: list[bool] = []
    for part in raw.split():
        words = _TOKEN.findall(fold(part))
        tokens += words
        prefixes += [False] * (len(words) - 1) + [part.endswith("*")] if words else []
    if not tokens:
        return None
    return Term(label=raw, kind=kind, tokens=tuple(tokens), prefixes=tuple(prefixes))


class TermMatcher:
    """Finds configured terms in texts. Terms are indexed by their first word (exact) or its first
    letters (prefix terms), so a text costs one dictionary look-up per word, not one scan per term."""

    def __init__(self, terms: list[Term]) -> None:
        self.terms = terms
        self._exact: dict[str, list[Term]] = {}
        self._prefix: dict[str, list[Term]] = {}
        self._prefix_lengths: set[int] = set()
        for term in terms:
            first = term.tokens[0]
            if term.prefixes[0]:
                self._prefix.setdefault(first, []).append(term)
                self._prefix_lengths.add(len(first))
            else:
                self._exact.setdefault(first, []).append(term)

    def _follows(self, term: Term, words: list[str], start: int) -> bool:
        tokens = term.tokens
        if start + len(tokens) > len(words):
            return False
        for offset, token in enumerate(tokens):
            word = words[start + offset]
            if word != token and not (term.prefixes[offset] and word.startswith(token)):
                return False
        return True

    def find(self, text: str) -> list[TermMatch]:
        """Every configured term that occurs in `text`, once each (its first occurrence), in order."""
        spans = [(m.start(), m.end()) for m in _TOKEN.finditer(text)]
        words = [fold(text[a:b]) for a, b in spans]
        seen: set[str] = set()
        found: list[TermMatch] = []
        for index, word in enumerate(words):
            candidates = list(self._exact.get(word, ()))
            for length in self._prefix_lengths:
                if len(word) >= length:
                    candidates.extend(self._prefix.get(word[:length], ()))
            for term in candidates:
                if term.label in seen or not self._follows(term, words, index):
                    continue
                seen.add(term.label)
                end = spans[index + len(term.tokens) - 1][1]
                found.append(TermMatch(term=term, surface=text[spans[index][0] : end], position=index))
        # a term inside a longer one found at the same place is the same evidence ("Lithuania" in
        # "brigade in Lithuania"): keep the longer one only
        spans = [(m.position, m.position + len(m.term.tokens)) for m in found]
        kept = [
            match
            for match, (start, end) in zip(found, spans)
            if not any(s <= start and end <= e and e - s > end - start for s, e in spans)
        ]
        kept.sort(key=lambda match: match.position)
        return kept
