"""The `index` stage: copy enriched articles and changed stories from the state DB into the archive.

Pending means never indexed, or changed since (`indexed_at IS NULL OR indexed_at <> updated_at`: `indexed_at`
holds the `updated_at` of the version in the archive, so a stage on a simulated clock, whose `updated_at` may
lie before the real time of the last indexing, is still re-indexed); articles also have to be enriched first. Only what the backend reports as indexed is marked, so a failure stays
pending and is retried on the next run. Each batch commits on its own, so a crash loses at most a batch.

The pending queue is thus the state DB itself; `index_failures` (core.models.IndexFailure) adds why a document
failed last and how often, for `flankwatch archive status`, and is cleared when the document goes through.
An unreachable backend raises `ArchiveUnavailable` at once (no per-document bookkeeping: nothing was tried),
which ends the stage; the pipeline records it and goes on to the alerts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from archive.backends import open_archive
from archive.base import ArchiveBackend, IndexReport
from archive.documents import ARTICLE_DOC_COLUMNS, article_doc, story_doc
from core.db import session_scope
from core.models import Article, IndexFailure, Story
from core.settings import Settings

BATCH_SIZE = 500
TOP_LINKS = 5  # most recent articles a story document links to

Progress = Callable[[int, int], None]


@dataclass
class IndexSummary:
    articles_indexed: int = 0
    stories_indexed: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # "article:<id>" / "story:<id>" -> reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "articles_indexed": self.articles_indexed,
            "stories_indexed": self.stories_indexed,
            "failed": dict(self.failed),
        }


def index(
    settings: Settings, *, progress: Progress | None = None, archive: ArchiveBackend | None = None
) -> IndexSummary:
    """Index what is pending (see the module doc). Safe to re-run; a run with nothing new indexes 0.
    `archive`: an open backend to use (left open); default: the one the settings name, opened and closed."""
    if archive is None:
        with open_archive(settings) as opened:
            return index(settings, progress=progress, archive=opened)
    summary = IndexSummary()
    with session_scope(settings) as session:
        article_ids = _pending(session, Article, Article.enriched_at.is_not(None))
        story_ids = _pending(session, Story)
    total, done = len(article_ids) + len(story_ids), 0
    if progress and total:
        progress(0, total)
    for batch in _batches(article_ids):
        summary.articles_indexed += _index_articles(settings, archive, batch, summary.failed)
        done += len(batch)
        if progress:
            progress(done, total)
    for batch in _batches(story_ids):
        summary.stories_indexed += _index_stories(settings, archive, batch, summary.failed)
        done += len(batch)
        if progress:
            progress(done, total)
    return summary


def _stale(model: type[Article] | type[Story]) -> ColumnElement[bool]:
    """Not in the archive, or changed since (the module doc's definition of pending)."""
    return or_(model.indexed_at.is_(None), model.indexed_at != model.updated_at)


def _pending(session: Session, model: type[Article] | type[Story], *where: ColumnElement[bool]) -> list[str]:
    return list(session.scalars(select(model.id).where(_stale(model), *where).order_by(model.id)))


def _batches(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), BATCH_SIZE):
        yield ids[start : start + BATCH_SIZE]


def _index_articles(
    settings: Settings, archive: ArchiveBackend, ids: Sequence[str], failed: dict[str, str]
) -> int:
    with session_scope(settings) as session:
        articles = session.execute(
            select(*ARTICLE_DOC_COLUMNS, Article.updated_at).where(Article.id.in_(ids))).all()
        return len(_send(session, Article, "article", articles, article_doc, archive.index_articles, failed))


def _index_stories(
    settings: Settings, archive: ArchiveBackend, ids: Sequence[str], failed: dict[str, str]
) -> int:
    with session_scope(settings) as session:
        stories = session.scalars(select(Story).where(Story.id.in_(ids))).all()
        merged = [story for story in stories if story.merged_into is not None]
        if merged:  # absorbed by another story: it leaves the archive, its articles point at the survivor
            archive.delete_stories(story.id for story in merged)
            _mark(session, Story, [story.id for story in merged], {s.id: s.updated_at for s in merged})
            _note_failures(session, "story", [story.id for story in merged], {})
            stories = [story for story in stories if story.merged_into is None]
        links = _recent_articles(session, ids)
        indexed = _send(session, Story, "story", stories, lambda story: story_doc(story, links.get(story.id, [])),
                        archive.index_stories, failed)
        return len(indexed)


def _send(
    session: Session,
    model: type[Article] | type[Story],
    kind: str,
    rows: Sequence[Any],
    to_doc: Callable[[Any], Any],
    index_docs: Callable[[list[Any]], IndexReport],
    failed: dict[str, str],
) -> list[str]:
    """Turn rows into documents, index them, mark what went through and note what did not (a row that
    cannot become a document, e.g. a corrupt embedding blob, fails like one the backend refused); the ids
    indexed. `failed` gathers the run's failures as "<kind>:<id>" -> reason."""
    docs, failures = [], {}
    for row in rows:
        try:
            docs.append(to_doc(row))
        except (ValueError, TypeError) as exc:
            failures[row.id] = f"{type(exc).__name__}: {exc}"
    report = index_docs(docs)
    failures.update(report.failed)
    failed.update({f"{kind}:{doc_id}": reason for doc_id, reason in failures.items()})
    _mark(session, model, report.indexed, {row.id: row.updated_at for row in rows})
    _note_failures(session, kind, report.indexed, failures)
    return report.indexed


def _recent_articles(session: Session, story_ids: Sequence[str]) -> dict[str, list[Article]]:
    """The `TOP_LINKS` most recent articles of each story, newest first (one query for the batch)."""
    rank = (
        func.row_number()
        .over(partition_by=Article.story_id, order_by=(Article.published_at.desc(), Article.id))
        .label("rank")
    )
    ranked = select(Article, rank).where(Article.story_id.in_(story_ids)).subquery()
    recent = aliased(Article, ranked)
    rows = session.scalars(
        select(recent).where(ranked.c.rank <= TOP_LINKS).order_by(ranked.c.story_id, ranked.c.rank)
    )
    out: dict[str, list[Article]] = {}
    for article in rows:
        out.setdefault(article.story_id or "", []).append(article)
    return out


def _mark(
    session: Session,
    model: type[Article] | type[Story],
    ids: Sequence[str],
    seen: dict[str, datetime],
) -> None:
    """Set `indexed_at` to the `updated_at` indexed on the rows indexed, unless they changed since they were
    read (then they stay pending): whatever clock wrote `updated_at`, the next change makes them differ."""
    if not ids:
        return
    now = datetime.now(timezone.utc)
    table = model.__table__
    statement = (
        update(table)
        .where(table.c.id == bindparam("b_id"), table.c.updated_at == bindparam("b_seen"))
        .values(indexed_at=bindparam("b_at"))
    )
    session.execute(
        statement,
        [{"b_id": i, "b_seen": seen[i], "b_at": seen[i] or now} for i in ids if i in seen],
    )


def _note_failures(session: Session, kind: str, indexed: Sequence[str], failures: dict[str, str]) -> None:
    """Clear the failure rows of what went through; add or bump those of what failed."""
    if indexed:
        session.execute(delete(IndexFailure).where(IndexFailure.kind == kind, IndexFailure.doc_id.in_(indexed)))
    if not failures:
        return
    now = datetime.now(timezone.utc)
    known = {
        row.doc_id: row
        for row in session.scalars(
            select(IndexFailure).where(IndexFailure.kind == kind, IndexFailure.doc_id.in_(list(failures)))
        )
    }
    for doc_id, reason in failures.items():
        row = known.get(doc_id)
        if row is None:
            session.add(IndexFailure(kind=kind, doc_id=doc_id, error=reason[:2000], attempts=1,
                                     first_failed_at=now, last_failed_at=now))
        else:
            row.error, row.attempts, row.last_failed_at = reason[:2000], row.attempts + 1, now


@dataclass
class ArchiveStatus:
    """What `flankwatch archive status` shows: the pending queue in the state DB and the failures in it."""

    pending_articles: int
    pending_stories: int
    awaiting_enrichment: int  # articles not enriched yet: not pending for the archive
    failures: list[dict[str, Any]]  # the most recent failures: kind, doc_id, error, attempts, last_failed_at
    failure_count: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "pending_articles": self.pending_articles,
            "pending_stories": self.pending_stories,
            "awaiting_enrichment": self.awaiting_enrichment,
            "failure_count": self.failure_count,
            "failures": self.failures,
        }


def status(settings: Settings, *, limit: int = 10) -> ArchiveStatus:
    """The archive's pending queue, read from the state DB only (works while the backend is down)."""
    with session_scope(settings) as session:
        def pending(model: type[Article] | type[Story], *where: ColumnElement[bool]) -> int:
            return session.scalar(select(func.count()).select_from(model).where(_stale(model), *where)) or 0

        rows = session.scalars(
            select(IndexFailure).order_by(IndexFailure.last_failed_at.desc(), IndexFailure.doc_id).limit(limit)
        ).all()
        return ArchiveStatus(
            pending_articles=pending(Article, Article.enriched_at.is_not(None)),
            pending_stories=pending(Story),
            awaiting_enrichment=session.scalar(
                select(func.count()).select_from(Article).where(Article.enriched_at.is_(None))
            ) or 0,
            failures=[
                {"kind": r.kind, "doc_id": r.doc_id, "error": r.error, "attempts": r.attempts,
                 "last_failed_at": r.last_failed_at.isoformat()}
                for r in rows
            ],
            failure_count=session.scalar(select(func.count()).select_from(IndexFailure)) or 0,
        )


def reindex(settings: Settings, *, progress: Progress | None = None) -> IndexSummary:
    """Rebuild the archive from the state DB: every article and story is indexed anew into a fresh
    generation (`begin_rebuild`), which replaces the old one only once all went through (`finish_rebuild`).
    If anything fails, the old archive stays what searches see; the failed documents stay pending, and the
    command can be run again."""
    with open_archive(settings) as archive:
        archive.begin_rebuild()
        with session_scope(settings) as session:
            for model in (Article, Story):
                session.execute(update(model.__table__).values(indexed_at=None))
        summary = index(settings, progress=progress, archive=archive)
        if not summary.failed:
            archive.finish_rebuild()
    return summary
