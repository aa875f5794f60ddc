"""Re-embedding after a change of model: every stored vector of another model is replaced, never mixed.

Two models can make vectors of the same size (all-MiniLM-L6-v2 and multilingual-e5-small: 384), so nothing but
`Article.embedding_model` tells their spaces apart. After `embedding_model` changes:

- `flankwatch enrich --reembed` re-embeds every enriched article whose vector another model made (what the
  archive's meaning search needs), in committed batches with progress, and gives each story whose members
  changed a centroid of the new model (`Story.centroid_model`). The articles' `updated_at` moves, so the index
  stage sends them to the archive again with their new vector (and its model).
- the enrichment stage does the same, on its own, for the members of the active stories before it clusters
  (`scope="active"`): the stories new articles may join are compared in one space, whatever was run before.

What an article is embedded from follows `enrichment.screen`: title and lead for an article in a story or a
candidate, else its headline. Relevance and stories are not decided again: they were decided, and alerted,
when the articles came in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import func, or_, select, update

from core.db import session_scope
from core.models import Article, Story
from core.settings import Settings
from core.vectors import from_bytes, normalise, to_bytes
from enrichment.clustering import active_stories
from enrichment.embeddings import STATIC_MODEL, Embedder
from enrichment.relevance import TopicProfile
from enrichment.screen import embedded_text, wants_lead

BATCH_SIZE = 256
Scope = Literal["all", "active"]


@dataclass
class ReembedSummary:
    model: str
    articles: int = 0  # re-embedded
    stories: int = 0  # given a centroid of `model`
    previous: dict[str, int] = field(default_factory=dict)  # the models replaced, by articles

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _stale(model: str) -> Any:
    """Articles whose stored vector another model than `model` made (or an unrecorded one)."""
    return (
        Article.embedding.is_not(None),
        Article.enriched_at.is_not(None),
        or_(Article.embedding_model.is_(None), Article.embedding_model.not_in((model, STATIC_MODEL))),
    )


def _scoped(settings: Settings, model: str, scope: Scope) -> tuple[Any, ...] | None:
    """The filter of the articles to re-embed for `model` in `scope`; None when the scope holds nothing."""
    if scope == "all":
        return _stale(model)
    with session_scope(settings) as session:
        active = active_stories(session, settings)
    if active is None:
        return None
    return (*_stale(model), Article.story_id.in_(select(Story.id).where(*active)))


def _count(settings: Settings, where: tuple[Any, ...] | None) -> int:
    if where is None:
        return 0
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(Article).where(*where)) or 0


def pending_count(settings: Settings, model: str, scope: Scope = "all") -> int:
    """Articles `reembed` would re-embed for `model` (an `Embedder.name`)."""
    return _count(settings, _scoped(settings, model, scope))


def reembed(
    settings: Settings,
    embedder: Embedder,
    profiles: list[TopicProfile],
    *,
    scope: Scope = "all",
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    batch_size: int = BATCH_SIZE,
) -> ReembedSummary:
    """Re-embed the articles of another model's vectors (`scope`: all, or the active stories' members) and
    recompute the centroids of their stories; see the module docstring. Idempotent: a second call finds
    nothing to do. Each batch commits on its own, so an interrupted run goes on where it stopped."""
    now = now or datetime.now(UTC)
    summary = ReembedSummary(model=embedder.name)
    where = _scoped(settings, embedder.name, scope)  # the active window is read once, before any batch
    total = _count(settings, where)
    if progress:
        progress(0, total)
    if where is None or not total:
        return summary
    stories: set[str] = set()
    last = ""
    while True:
        with session_scope(settings) as session:
            query = select(Article).where(*where, Article.id > last)
            batch = list(session.scalars(query.order_by(Article.id).limit(batch_size)))
            if not batch:
                break
            texts = [
                embedded_text(a.title, a.summary, a.story_id is not None or wants_lead(a.title, a.summary, profiles))
                for a in batch
            ]
            vectors = embedder.passages(texts, batch_size=settings.embedding_batch_size)
            for article, vector in zip(batch, vectors):
                previous = article.embedding_model or "unknown"
                summary.previous[previous] = summary.previous.get(previous, 0) + 1
                article.embedding, article.embedding_model = to_bytes(vector), embedder.name
                article.updated_at = now  # the archive takes the new vector
                if article.story_id:
                    stories.add(article.story_id)
            summary.articles += len(batch)
            last = batch[-1].id
        if progress:
            progress(summary.articles, total)
    summary.stories = _recentre(settings, embedder, sorted(stories))
    return summary


def _recentre(settings: Settings, embedder: Embedder, story_ids: list[str]) -> int:
    """Give each story a centroid of the configured model: the unit mean of its members' vectors of it."""
    done = 0
    for start in range(0, len(story_ids), BATCH_SIZE):
        chunk = story_ids[start : start + BATCH_SIZE]
        with session_scope(settings) as session:
            sums: dict[str, np.ndarray] = {}
            rows = session.execute(
                select(Article.story_id, Article.embedding)
                .where(Article.story_id.in_(chunk), Article.embedding_model == embedder.name)
            )
            for story_id, blob in rows:
                vector = from_bytes(blob).astype(np.float64)
                sums[story_id] = sums[story_id] + vector if story_id in sums else vector
            for story_id, total in sums.items():
                session.execute(
                    update(Story).where(Story.id == story_id)
                    .values(centroid=to_bytes(normalise(total).astype(np.float32)), centroid_model=embedder.name)
                )
            done += len(sums)
    return done
