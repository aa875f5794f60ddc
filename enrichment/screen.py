"""Which articles the transformer reads, and from what text: the model's cost where it pays.

Most articles a feed brings are about something else. `Screen` decides before any transformer runs, by
`embedding_screen`:

- `static` (the default): an article that names any term of a topic (a strong term, a place or a keyword, in
  any language: a *candidate*, `wants_lead`) is embedded by the configured model with its title and lead.
  Every other article is read by the static model distilled from e5 (`enrichment.static`, no transformer:
  some 5,000 texts a second) from the same text; if its static closeness to a topic's seeds (on the shared
  scale, less its language's baseline) reaches `STATIC_CLOSENESS` it goes to the transformer too. An article
  that passes neither test keeps its static vector, recorded under its own model (`STATIC_MODEL`) and scored
  against the topics compiled with the static model: it is found by words search, and by a meaning search
  that embeds its query with the static model too (flankwatch.search); it is never in a story (it is not
  relevant: relevant articles are always read by the transformer).
  With a broad topic configured (its seeds far apart: `TopicProfile.tail` > 0), the screen reads as
  `headline`: a broad topic ranks every article against the others by closeness, also far below relevance,
  and the static model ranks worse than the transformer (UCI categories: relevance macro F1 0.709 against
  0.752). A narrow topic (the configured "baltic-deployments") gives nothing below its floor, so an article
  far from it loses nothing by keeping its static vector.
- `headline`: every article runs through the transformer, a non-candidate with its headline alone; a
  headline that scores `PROMOTE_SHARE` of a topic's threshold is read again with its lead (`promoted`, in
  the stage).
- `full`: every article with its title and lead.

With no topic, or a topic that takes every article (threshold 0), there is nothing to screen: every article
is read in full.

A watch by meaning (alerts.watches) compares the configured model's vectors only: a screened-out article
matches a watch by its words.

Measured (enrichment/README.md): at 10,000 items of bench/pipeline_bench.py the cycle runs at 302 articles/s
with `static` and 210 with `headline`, with the same 890 relevant articles and 62 stories. On the 18,226
items of the replay streams the configured topic has 120 relevant articles (e5, title and lead); 119 name a
term, the last one ("Desperate plea as Putin ally threatens western cities") passes the static screen,
which lets 10 % of the non-candidates through.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.settings import Settings, TopicConfig
from enrichment.embeddings import STATIC_MODEL, Embedder, article_text, get_embedder
from enrichment.relevance import Relevance, TopicProfile, compile_topics

PROMOTE_SHARE = 0.5
# Static closeness (mean cosine to the nearest seeds, on the relevance constants' scale) from which a
# non-candidate goes to the transformer: 0.10 below where semantic evidence starts (0.35). The one relevant
# non-candidate of the replay streams has 0.31; 10 % of the non-candidates reach 0.25.
STATIC_CLOSENESS = 0.25
SCREENS = ("static", "headline", "full")


def wants_lead(title: str, summary: str | None, profiles: Sequence[TopicProfile]) -> bool:
    """Whether an article is a candidate (see the module docstring): its title and lead are embedded. With no
    topic, or a topic that takes every article (threshold 0), there is nothing to screen."""
    if not profiles or any(profile.threshold <= 0 for profile in profiles):
        return True
    text = f"{title or ''}\n{summary or ''}"
    return any(profile.matcher.find(text) for profile in profiles)


def embedded_text(title: str, summary: str | None, lead: bool) -> str:
    """The text embedded for an article: title and lead, or its headline alone."""
    return article_text(title, summary if lead else "")


def promoted(scores: Sequence[Relevance], profiles: Sequence[TopicProfile]) -> bool:
    """Whether a headline-only article's scores call for its lead (see the module docstring)."""
    return any(score.score >= PROMOTE_SHARE * profile.threshold for score, profile in zip(scores, profiles))


@dataclass(frozen=True)
class Embedded:
    """An article's vector, the model that made it, and whether that model read its title and lead
    (`lead`); `source` is `article_text` of the article it was made for (to tell an edited article)."""

    source: str
    vector: np.ndarray
    model: str
    lead: bool


class Screen:
    """The screen of one run (see the module docstring): the configured embedder and topics, and the static
    model with the topics compiled for it when `embedding_screen` is `static`."""

    def __init__(self, settings: Settings, embedder: Embedder, profiles: list[TopicProfile],
                 mode: str | None = None, topics: Sequence[TopicConfig] | None = None) -> None:
        """`topics`: what `profiles` were compiled from, with their thresholds (default: the settings')."""
        self.mode = mode or settings.embedding_screen
        if self.mode not in SCREENS:
            raise ValueError(f"embedding_screen {self.mode!r}: one of {', '.join(SCREENS)}")
        # A broad topic ranks every article against the others (enrichment.relevance: its closeness counts
        # below SEED_FLOOR too), and the static model ranks worse than the transformer: with one configured,
        # every article is read by the transformer, as `headline` does.
        self.broad = [profile.name for profile in profiles if profile.tail > 0]
        if self.mode == "static" and self.broad:
            self.mode = "headline"
        self.embedder, self.profiles = embedder, profiles
        self.static: Embedder | None = None
        self.static_profiles: list[TopicProfile] = []
        if self.mode == "static" and not wants_lead("", "", profiles) and embedder.name != STATIC_MODEL:
            self.static = get_embedder(STATIC_MODEL)
            if topics is None:
                self.static_profiles = compile_topics(settings, self.static)
            else:
                self.static_profiles = [TopicProfile(topic, self.static, profile.threshold)
                                        for topic, profile in zip(topics, profiles)]

    def profiles_for(self, model: str | None) -> list[TopicProfile]:
        """The topics compiled for the model that made a vector."""
        return self.static_profiles if model == STATIC_MODEL and self.static_profiles else self.profiles

    def passes(self, vector: np.ndarray, language: str | None) -> bool:
        """Whether a non-candidate's static vector is close enough to a topic for the transformer."""
        return any(profile.similarities(vector, language)[2] >= STATIC_CLOSENESS for profile in self.static_profiles)

    def embed(self, articles: Sequence[tuple[str, str | None, str | None]], batch_size: int = 32) -> list[Embedded]:
        """Vectors of (title, summary, language) articles, each from the model and text the screen gives it."""
        sources = [article_text(title, summary) for title, summary, _ in articles]
        full = [self.mode == "full" or wants_lead(title, summary, self.profiles) for title, summary, _ in articles]
        static: dict[int, np.ndarray] = {}
        if self.static is not None:
            rest = [i for i, lead in enumerate(full) if not lead]
            for i, vector in zip(rest, self.static.passages([sources[i] for i in rest], batch_size=batch_size)):
                if self.passes(vector, articles[i][2]):
                    full[i] = True
                else:
                    static[i] = vector
        texts = {i: sources[i] if full[i] else embedded_text(articles[i][0], articles[i][1], False)
                 for i in range(len(articles)) if i not in static}
        vectors = dict(zip(texts, self.embedder.passages(list(texts.values()), batch_size=batch_size)))
        out = []
        for i, source in enumerate(sources):
            if i in static:
                out.append(Embedded(source, static[i], STATIC_MODEL, False))
            else:
                out.append(Embedded(source, vectors[i], self.embedder.name, full[i]))
        return out
