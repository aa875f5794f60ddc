"""Writing normalised articles: new ones inserted, known ones updated only when their text changed."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from collectors.normalise import NormalisedArticle
from core.models import Article

_CHUNK = 500  # ids per IN (...) query and rows per INSERT


def _insert_statement(session: Session):  # type: ignore[no-untyped-def]
    """INSERT that skips a row another writer stored meanwhile (SQLite and PostgreSQL), plain INSERT else."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return insert(Article)
    return dialect_insert(Article).on_conflict_do_nothing()


def _row(article: NormalisedArticle, now: datetime) -> dict[str, object]:
    return {
        "id": article.id,
        "feed_id": article.feed_id,
        "source": article.source,
        "url": article.url,
        "canonical_url": article.canonical_url,
        "guid": article.guid,
        "title": article.title,
        "summary": article.summary,
        "content": article.content,
        "language": article.language,
        "published_at": article.published_at,
        "fetched_at": article.fetched_at,
        "updated_at": now,
        "content_hash": article.content_hash,
        "relevant": False,
    }


def store_articles(session: Session, articles: Iterable[NormalisedArticle], now: datetime) -> list[str]:
    """Store articles; returns the ids of those that are new, in input order.

    Idempotent: an article already stored (same id, i.e. same canonical URL) is never inserted again; when
    its `content_hash` differs (the outlet edited title or summary) its title, summary, content, hash and
    `updated_at` are updated in place. Within one batch the first occurrence of an id wins (feeds list
    their newest version first)."""
    batch: dict[str, NormalisedArticle] = {}
    for article in articles:
        batch.setdefault(article.id, article)
    if not batch:
        return []
    ids = list(batch)
    known: dict[str, str] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        for stored_id, stored_hash in session.execute(
            select(Article.id, Article.content_hash).where(Article.id.in_(chunk))
        ):
            known[stored_id] = stored_hash

    fresh = [batch[i] for i in ids if i not in known]
    new_ids: list[str] = []
    statement = _insert_statement(session)
    for start in range(0, len(fresh), _CHUNK):
        rows = [_row(article, now) for article in fresh[start : start + _CHUNK]]
        inserted = set(session.scalars(statement.returning(Article.id), rows))
        new_ids.extend(row["id"] for row in rows if row["id"] in inserted)  # type: ignore[misc]

    for article_id, stored_hash in known.items():
        article = batch[article_id]
        if stored_hash != article.content_hash:
            session.execute(
                update(Article)
                .where(Article.id == article_id)
                .values(
                    title=article.title,
                    summary=article.summary,
                    content=article.content,
                    content_hash=article.content_hash,
                    updated_at=now,
                )
            )
    return new_ids
