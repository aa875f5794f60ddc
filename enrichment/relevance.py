"""Topic relevance: is an article about a configured topic, how much, and why.

Two kinds of evidence, combined as independent signals (noisy-OR):

- keywords (any language): a strong term, or a place together with another keyword ("Litauen" +
  "Brigade"), is strong evidence; a place or a keyword alone is weak;
- meaning (English): cosine of the article's embedding to the topic's seeds, minus how much closer it is to
  the topic's negatives. The model is English-only, so for other languages this signal is damped and
  the keywords carry the decision.

The constants below were calibrated on the real streams in shared/data: `python -m enrichment.calibration
relevance` prints how many items of each stream come out relevant, with a sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from core.settings import Settings, TopicConfig
from core.text import fold
from enrichment.language import detect_language
from enrichment.terms import Term, TermMatch, TermMatcher, compile_term

if TYPE_CHECKING:
    from enrichment.embeddings import Embedder

# --- keyword evidence (0..1) ---------------------------------------------------------------------------
STRONG = 0.75  # one strong term
PLACE_AND_KEYWORD = 0.7  # a place and another keyword
PLACE_ONLY = 0.25  # one place, nothing else
KEYWORD_ONLY = 0.15  # one keyword that is not a place
EXTRA_TERM = 0.05  # each further distinct term
MAX_KEYWORD = 0.9

# --- semantic evidence (0..1) --------------------------------------------------------------------------
# all-MiniLM-L6-v2 cosines of a headline to a one-line topic description: unrelated news ~0.0-0.25,
# same subject ~0.45-0.7.
SEED_FLOOR = 0.4  # seed similarity that counts as nothing
SEED_FULL = 0.72  # seed similarity that counts fully
NEGATIVE_MARGIN = 0.0  # closer to a negative than to the best seed by more than this: penalised
NEGATIVE_WEIGHT = 1.5
# How much the model's opinion counts for a language it was not trained on (it still sees names).
FOREIGN_SEMANTIC_WEIGHT = 0.35
# How much it counts for an article that names none of the topic's places: close in meaning but elsewhere
# (Ukraine's front line, Finland's border) is a neighbour of the topic, not the topic.
PLACELESS_SEMANTIC_WEIGHT = 0.8

# In English, keywords in a text that means something else ("Estonian tech veterans ... military" in a
# business story) count less: below GATE_HIGH seed similarity their evidence shrinks, down to GATE_MIN of
# it at GATE_LOW. Strong terms are specific enough to be believed whatever the model thinks.
GATE_LOW = 0.2
GATE_HIGH = 0.45
GATE_MIN = 0.5

SEED_CHARS = 60
MAX_TERMS = 8


@dataclass(frozen=True)
class Relevance:
    topic: str
    score: float  # 0..1
    relevant: bool
    reason: str
    matched_terms: list[str] = field(default_factory=list)
    nearest_seed: str | None = None
    seed_similarity: float = 0.0


def _short(text: str, limit: int = SEED_CHARS) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ,;:") + "..."


def keyword_evidence(matches: Sequence[TermMatch]) -> float:
    """0..1 from the kinds of terms found."""
    if not matches:
        return 0.0
    kinds = {match.term.kind for match in matches}
    if "strong" in kinds:
        base = STRONG
    elif "place" in kinds and "keyword" in kinds:
        base = PLACE_AND_KEYWORD
    elif "place" in kinds:
        base = PLACE_ONLY
    else:
        base = KEYWORD_ONLY
    # distinct words found, not terms: "Estonian" matched by "Estonia*" and "Eston*" is one piece of evidence
    distinct = len({fold(match.surface) for match in matches})
    return min(MAX_KEYWORD, base + EXTRA_TERM * (distinct - 1))


def effective_similarity(seed_similarity: float, negative_similarity: float) -> float:
    """The seed similarity, lowered when a negative is closer than the best seed."""
    excess = max(0.0, negative_similarity - seed_similarity - NEGATIVE_MARGIN)
    return seed_similarity - NEGATIVE_WEIGHT * excess


def semantic_evidence(effective: float) -> float:
    """0..1 from the (effective) closeness to the seeds."""
    return float(np.clip((effective - SEED_FLOOR) / (SEED_FULL - SEED_FLOOR), 0.0, 1.0))


def keyword_gate(effective: float) -> float:
    """GATE_MIN..1: how far an English text's keywords are believed, from its closeness to the seeds."""
    return float(np.clip((effective - GATE_LOW) / (GATE_HIGH - GATE_LOW), GATE_MIN, 1.0))


class TopicProfile:
    """One topic compiled for scoring: its terms indexed and its seeds and negatives embedded once."""

    def __init__(self, topic: TopicConfig, embedder: Embedder, threshold: float) -> None:
        self.name = topic.name
        self.threshold = threshold
        terms = [compile_term(label, "strong") for label in topic.strong_keywords]
        terms += [compile_term(label, "place") for label in topic.places]
        terms += [compile_term(label, "keyword") for label in topic.keywords]
        unique: dict[tuple, Term] = {}
        for term in terms:
            if term is not None:  # "Suwałki" and "Suwalki" are one term; the first kind listed wins
                unique.setdefault((term.tokens, term.prefixes), term)
        self.matcher = TermMatcher(list(unique.values()))
        self.seeds = list(topic.seeds)
        self.negatives = list(topic.negatives)
        self._seed_vectors = embedder.encode(self.seeds) if self.seeds else None
        self._negative_vectors = embedder.encode(self.negatives) if self.negatives else None

    def similarities(self, embedding: np.ndarray | None) -> tuple[float, str | None, float]:
        """(best seed similarity, that seed, best negative similarity)."""
        if embedding is None or self._seed_vectors is None:
            return 0.0, None, 0.0
        vector = np.asarray(embedding, dtype=np.float32).reshape(-1)
        seed_sims = self._seed_vectors @ vector
        best = int(np.argmax(seed_sims))
        negative = float(np.max(self._negative_vectors @ vector)) if self._negative_vectors is not None else 0.0
        return float(seed_sims[best]), self.seeds[best], negative

    def score(
        self,
        title: str,
        summary: str | None,
        embedding: np.ndarray | None,
        language: str | None = None,
    ) -> Relevance:
        """Relevance of an article (title, summary, its embedding of `article_text`) to this topic.
        `language` is the article's (detected when not given); for a language other than English the
        seeds count less and do not discount the keywords."""
        text = f"{title or ''}\n{summary or ''}"
        if language is None:
            language = detect_language(text)
        matches = self.matcher.find(text)
        kinds = {match.term.kind for match in matches}
        keywords = keyword_evidence(matches)
        seed_similarity, seed, negative = self.similarities(embedding)
        effective = effective_similarity(seed_similarity, negative)
        semantic = semantic_evidence(effective)
        english = language in (None, "en") and seed is not None
        if not english:
            semantic *= FOREIGN_SEMANTIC_WEIGHT
        elif "strong" not in kinds:
            keywords *= keyword_gate(effective)
        if "place" not in kinds:
            semantic *= PLACELESS_SEMANTIC_WEIGHT
        score = round(1.0 - (1.0 - keywords) * (1.0 - semantic), 4)

        ordered = sorted(matches, key=lambda m: (m.term.kind != "strong", m.position))
        terms: list[str] = []
        for match in ordered:
            if match.surface.casefold() not in (t.casefold() for t in terms):
                terms.append(match.surface)
        terms = terms[:MAX_TERMS]
        parts = [f"terms: {', '.join(terms)}" if terms else "no terms"]
        if seed is not None:
            parts.append(f'nearest seed: "{_short(seed)}" ({seed_similarity:.2f})')
            if negative > seed_similarity:
                parts.append(f"closer to a negative ({negative:.2f})")
        return Relevance(
            topic=self.name,
            score=score,
            relevant=score >= self.threshold,
            reason="; ".join(parts),
            matched_terms=terms,
            nearest_seed=seed,
            seed_similarity=round(seed_similarity, 4),
        )


def compile_topics(settings: Settings, embedder: Embedder) -> list[TopicProfile]:
    """Every configured topic, compiled (the topic's own threshold, else `relevance_threshold`)."""
    return [
        TopicProfile(
            topic,
            embedder,
            topic.threshold if topic.threshold is not None else settings.relevance_threshold,
        )
        for topic in settings.topics
    ]


def best_relevance(results: Sequence[Relevance]) -> Relevance | None:
    """The topic an article belongs to: the highest score (relevant ones first), None without topics."""
    if not results:
        return None
    return max(results, key=lambda r: (r.relevant, r.score))
