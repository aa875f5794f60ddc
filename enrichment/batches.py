"""Embedding ahead, in batches that several workers compute at once (Airflow mapped tasks), before the one
ordered enrichment run that assigns stories (`enrichment.enrich`).

A worker claims a batch of pending articles that have no vector yet (`core.claims`: on PostgreSQL
`FOR UPDATE SKIP LOCKED`, on SQLite the single-writer rule, with a lease), embeds them exactly as
enrichment would (`enrichment.screen.Screen.embed`: the model and text the screen gives each article) and
stores each vector on its article:

- a vector of the configured model from title and lead is final: `embedding_model` is the model's name, and
  enrichment takes it as stored (`_stored_vector`);
- any other (the headline alone, the static screen's) is kept as computed ahead: `embedding_model` is
  `"<model>#headline"` (or `#lead`), which no reader takes for a final vector of the model; enrichment reads
  it back (`stored_ahead`) as it would its own `_embed_ahead`, and may still promote the article.

A vector is written only if its article is unchanged since it was read (`updated_at`), still pending and
still claimed by this worker; an article the collector edits meanwhile has its `embedding_model` cleared and
is embedded again. Enrichment computes itself whatever no batch stored (a failed task costs time, no result).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TypeVar

from sqlalchemy import bindparam, func, or_, select, update

from core.claims import claim, lease, release
from core.db import get_engine, session_scope
from core.models import Article
from core.settings import Settings
from core.vectors import from_bytes, to_bytes
from enrichment.embeddings import STATIC_MODEL, Embedder, article_text, get_embedder
from enrichment.relevance import compile_topics
from enrichment.screen import Embedded, Screen

T = TypeVar("T")

KINDS = {"lead": True, "headline": False}
MAX_BATCHES = 256  # mapped tasks of one run at most (Airflow's max_map_length is 1024): batches grow beyond


@dataclass(frozen=True)
class Batch:
    """Batch `batch` of a run's plan, of up to `size` articles (what a mapped task gets: `to_dict`)."""

    batch: int = 0
    size: int = 1024

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class EmbedSummary:
    claimed: int = 0
    embedded: int = 0  # vectors stored (the others' articles changed meanwhile)
    final: int = 0  # of them, final vectors of the configured model (title and lead)
    article_ids: list[str] = field(default_factory=list)  # the articles this worker embedded

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ahead_model(model: str, lead: bool) -> str:
    """`embedding_model` of a vector computed ahead that is not final (see the module docstring)."""
    return f"{model}#{'lead' if lead else 'headline'}"


def stored_ahead(title: str, summary: str | None, blob: bytes | None, model: str | None,
                 models: Collection[str]) -> Embedded | None:
    """A pending article's vector computed ahead (`ahead_model`) by one of `models` (the run's embedders: a
    vector another configuration made is not taken), as `Screen.embed` gave it; None if none."""
    if not blob or not model:
        return None
    name, _, kind = model.rpartition("#")
    if name not in models or kind not in KINDS:
        return None
    return Embedded(article_text(title, summary), from_bytes(blob), name, KINDS[kind])


def _ready(model: str) -> list[str]:
    """`embedding_model` values of pending articles that need no batch: final for `model`, or computed ahead
    by it or the static screen."""
    return [model, *(ahead_model(model, lead) for lead in KINDS.values()), ahead_model(STATIC_MODEL, False)]


def _unembedded(model: str) -> list:
    """Pending articles without a vector of this run: neither final for `model` nor computed ahead."""
    return [Article.enriched_at.is_(None),
            or_(Article.embedding_model.is_(None), Article.embedding_model.not_in(_ready(model)))]


def plan_batches(settings: Settings, *, size: int | None = None) -> list[Batch]:
    """The batches of the pending articles that have no vector yet (the configured model's name: the
    planner loads no model), at most `MAX_BATCHES`."""
    size = max(1, size or settings.embed_batch_articles)
    with session_scope(settings) as session:
        count = session.scalar(select(func.count()).select_from(Article).where(*_unembedded(settings.embedding_model)))
    batches = math.ceil((count or 0) / size)
    if batches > MAX_BATCHES:
        size, batches = math.ceil(count / MAX_BATCHES), MAX_BATCHES
    return [Batch(index, size) for index in range(batches)]


def pending_only(rows: Iterable[T]) -> list[T]:
    """The rows (articles, or rows with `enriched_at`) not enriched yet. The queries read a batch's articles
    by id alone and leave this test to Python: with `enriched_at IS NULL` in the WHERE, SQLite, which keeps
    no statistics, read the pending articles through ix_articles_pending_enrich and tested each against the
    batch's ids: every pending article once per batch (0.6 s a read with 970,000 pending, the most
    of the enrichment stage's time outside the model)."""
    return [row for row in rows if row.enriched_at is None]


_SCREENS: dict[str, Screen] = {}


def _screen(settings: Settings, embedder: Embedder) -> Screen:
    """The screen of this configuration, its topics compiled once per process (seconds: a worker that embeds
    batch after batch pays it once)."""
    key = json.dumps([embedder.name, settings.embedding_screen,
                      [topic.model_dump(mode="json") for topic in settings.topics]], sort_keys=True)
    if key not in _SCREENS:
        _SCREENS.clear()
        _SCREENS[key] = Screen(settings, embedder, compile_topics(settings, embedder))
    return _SCREENS[key]


def embed_batch(settings: Settings, *, owner: str, size: int | None = None, at: datetime | None = None) -> EmbedSummary:
    """Claim up to `size` pending articles without a vector (oldest first), embed them, store the vectors,
    release the claim. `at`: the wall clock of the claim (tests)."""
    summary = EmbedSummary()
    embedder = get_embedder(settings.embedding_model)
    ids = claim(settings, Article, _unembedded(embedder.name), owner=owner, lease=lease(settings),
                limit=max(1, size or settings.embed_batch_articles),
                order_by=(Article.published_at, Article.id), at=at)
    summary.claimed = len(ids)
    if not ids:
        return summary
    try:
        with session_scope(settings) as session:
            rows = session.execute(
                select(Article.id, Article.title, Article.summary, Article.language, Article.updated_at,
                       Article.enriched_at, Article.claimed_by)
                .where(Article.id.in_(ids))  # by id alone (see `pending_only`)
                .order_by(Article.published_at, Article.id)
            ).all()
        rows = [row for row in pending_only(rows) if row.claimed_by == owner]
        if not rows:
            return summary
        screen = _screen(settings, embedder)
        embedded = screen.embed([(row.title, row.summary, row.language) for row in rows], settings.embedding_batch_size)
        values = []
        for row, item in zip(rows, embedded):
            final = item.model == embedder.name and item.lead
            summary.final += final
            values.append({"b_id": row.id, "b_updated": row.updated_at, "b_blob": to_bytes(item.vector),
                           "b_model": item.model if final else ahead_model(item.model, item.lead)})
        table = Article.__table__
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.updated_at == bindparam("b_updated"),
                   table.c.enriched_at.is_(None), table.c.claimed_by == owner)
            .values(embedding=bindparam("b_blob"), embedding_model=bindparam("b_model"),
                    claimed_by=None, claimed_until=None)
        )
        with get_engine(settings).begin() as connection:
            for value in values:  # one by one: an executemany's rowcount is not reliable on every driver
                if connection.execute(statement, value).rowcount:
                    summary.embedded += 1
                    summary.article_ids.append(value["b_id"])
        return summary
    finally:
        release(settings, Article, owner=owner)

