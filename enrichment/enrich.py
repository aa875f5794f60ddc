"""The enrichment stage: language, embedding, topic relevance and story of every new article.

Pending articles (`enriched_at IS NULL`) are processed in publication order, in batches that each commit
on their own: a crash loses at most the unfinished batch, which the next run redoes from scratch (its
story updates were rolled back with it, so no article is ever counted twice in a story).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import select

from core.db import session_scope
from core.models import Article
from core.settings import Settings
from core.vectors import from_bytes, to_bytes
from enrichment.clustering import StoryClusterer
from enrichment.embeddings import article_text, get_embedder
from enrichment.language import detect_language
from enrichment.relevance import TopicProfile, best_relevance, compile_topics

log = logging.getLogger(__name__)

BATCH_SIZE = 64
LANGUAGE_TEXT_CHARS = 600  # of title + summary: enough for py3langid, cheap


@dataclass
class EnrichSummary:
    enriched: int = 0
    relevant: int = 0
    stories_created: int = 0
    stories_updated: int = 0  # existing stories that took new articles in this run
    story_ids: list[str] = field(default_factory=list)  # stories created or updated, in order

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _BatchResult:
    enriched: int = 0
    relevant: int = 0
    created: list[str] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)


def _embeddings(articles: list[Article], settings: Settings) -> list[np.ndarray]:
    """Each article's embedding: the stored one when it was made by the configured model, else computed
    (all missing ones of the batch in one call)."""
    embedder = get_embedder(settings.embedding_model)
    vectors: list[np.ndarray | None] = []
    missing: list[int] = []
    for index, article in enumerate(articles):
        if article.embedding and article.embedding_model == embedder.name:
            vector = from_bytes(article.embedding)
            if vector.shape == (embedder.dim,):
                vectors.append(vector)
                continue
        vectors.append(None)
        missing.append(index)
    if missing:
        texts = [article_text(articles[i].title, articles[i].summary) for i in missing]
        computed = embedder.encode(texts, batch_size=settings.embedding_batch_size)
        for index, vector in zip(missing, computed):
            articles[index].embedding = to_bytes(vector)
            articles[index].embedding_model = embedder.name
            vectors[index] = vector
    return [vector for vector in vectors if vector is not None]


def _enrich_batch(
    settings: Settings, ids: list[str], profiles: list[TopicProfile], clusterer: StoryClusterer, now: datetime
) -> _BatchResult:
    result = _BatchResult()
    with session_scope(settings) as session:
        articles = list(
            session.scalars(
                select(Article)
                .where(Article.id.in_(ids), Article.enriched_at.is_(None))
                .order_by(Article.published_at, Article.id)
            )
        )
        if not articles:
            return result
        for article in articles:
            text = f"{article.title or ''} {article.summary or ''}"[:LANGUAGE_TEXT_CHARS]
            article.language = detect_language(text, hint=article.language)
        vectors = _embeddings(articles, settings)
        for article, vector in zip(articles, vectors):
            scores = [
                profile.score(article.title, article.summary, vector, article.language) for profile in profiles
            ]
            best = best_relevance(scores)
            if best is None:
                article.topic, article.relevance, article.relevant = None, None, False
                article.relevance_reason = "no topics configured"
            else:
                article.topic, article.relevance = best.topic, best.score
                article.relevance_reason, article.relevant = best.reason, best.relevant
            if article.relevant:
                result.relevant += 1
                assignment = clusterer.assign(session, article, vector, now)
                (result.created if assignment.created else result.joined).append(assignment.story_id)
            article.enriched_at = now
            article.updated_at = now
            result.enriched += 1
        clusterer.persist(session)
    return result


def enrich(
    settings: Settings,
    *,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> EnrichSummary:
    """Enrich every pending article; see the module docstring. Safe to re-run: a second run finds
    nothing pending and changes nothing."""
    now = now or datetime.now(timezone.utc)
    with session_scope(settings) as session:
        pending = list(
            session.scalars(
                select(Article.id).where(Article.enriched_at.is_(None)).order_by(Article.published_at, Article.id)
            )
        )
    summary = EnrichSummary()
    total = len(pending)
    if progress:
        progress(0, total)
    if not pending:
        return summary

    embedder = get_embedder(settings.embedding_model)
    profiles = compile_topics(settings, embedder)
    with session_scope(settings) as session:
        clusterer = StoryClusterer.load(session, settings, embedder.dim)
    created: set[str] = set()
    updated: set[str] = set()
    done = 0
    for start in range(0, total, batch_size):
        batch = pending[start : start + batch_size]
        result = _enrich_batch(settings, batch, profiles, clusterer, now)  # committed when it returns
        summary.enriched += result.enriched
        summary.relevant += result.relevant
        for story_id in result.created:
            created.add(story_id)
            summary.story_ids.append(story_id)
        for story_id in result.joined:
            if story_id not in created and story_id not in updated:
                updated.add(story_id)
                summary.story_ids.append(story_id)
        done += len(batch)
        if progress:
            progress(done, total)
        log.info("enriched %d/%d articles (%d relevant so far)", done, total, summary.relevant)
    summary.stories_created = len(created)
    summary.stories_updated = len(updated)
    return summary
