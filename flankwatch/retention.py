"""Retention: articles older than `retention_article_days` leave the state DB and the archive; stories left
without articles, and alerts, leave once older than `retention_story_days`. Both unset: nothing is deleted.

Run daily by the DAG `flankwatch_maintenance` and by `flankwatch maintenance`. It lives in the application
shell because it deletes from the state DB and the archive together:

- Articles: published and fetched before the cutoff (an entry a feed still lists is fetched again: its new
  `fetched_at` keeps it). Per batch, the archive deletes them first (`delete_articles`, idempotent), then the
  state DB deletes them in one transaction, with what references them: index failures, `story_events.
  article_id` and `articles.syndicated_from` (set NULL). The archive delete is repeated after the commit, in
  case a concurrent index run sent one back in between. An unreachable archive ends the stage before the state
  is touched: the next run tries again, nothing is left dangling on either side.
- Stories that lost members are recounted (articles, sources, copies, languages, representative) and marked
  pending, so the next index run sends their new document to the archive.
- Stories without members whose last article is older than the story cutoff go (first from the archive), with
  the stories merged into them, their events and every alert of their threads. Other alerts (spikes,
  coverage, saved searches, digests) go at that age once their whole thread is sent, failed or digested, and
  no remaining alert names them (parent, digest). Spike episodes and fetch records of that age go too.

Safe to re-run after a crash at any point: each step finds what is left of its work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.orm import Session

from core.db import session_scope
from core.models import Alert, Article, FetchRecord, IndexFailure, PipelineRun, SpikeEpisode, Story, StoryEvent
from core.settings import Settings
from enrichment.clustering import independent_sources

BATCH = 500  # articles deleted per transaction (and per archive call)
FINAL = ("sent", "failed", "digested")  # alert statuses nothing will change any more
UNKNOWN_LANGUAGE = "und"  # as enrichment.clustering counts an article without a language


@dataclass
class RetentionSummary:
    enabled: bool = False
    article_cutoff: str | None = None
    story_cutoff: str | None = None
    articles_deleted: int = 0
    archive_articles_deleted: int = 0
    stories_recounted: int = 0
    stories_deleted: int = 0
    archive_stories_deleted: int = 0
    alerts_deleted: int = 0
    fetches_deleted: int = 0
    runs_deleted: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _cutoff(now: datetime, days: float | None) -> datetime | None:
    return None if days is None or days <= 0 else now - timedelta(days=days)


def apply_retention(settings: Settings, *, now: datetime | None = None, batch: int = BATCH) -> RetentionSummary:
    """Delete what the retention settings let go (see the module doc); the counts."""
    from archive.backends import open_archive

    now = now or datetime.now(timezone.utc)
    article_cutoff = _cutoff(now, settings.retention_article_days)
    story_cutoff = _cutoff(now, settings.retention_story_days)
    summary = RetentionSummary(enabled=bool(article_cutoff or story_cutoff),
                               article_cutoff=article_cutoff.isoformat() if article_cutoff else None,
                               story_cutoff=story_cutoff.isoformat() if story_cutoff else None)
    if not summary.enabled:
        return summary
    with open_archive(settings) as archive:
        if article_cutoff is not None:
            while True:
                with session_scope(settings) as session:
                    ids = list(session.scalars(
                        select(Article.id).where(Article.published_at < article_cutoff,
                                                 Article.fetched_at < article_cutoff)
                        .order_by(Article.published_at, Article.id).limit(batch)))
                if not ids:
                    break
                summary.archive_articles_deleted += archive.delete_articles(ids)
                with session_scope(settings) as session:
                    deleted, recounted = _delete_articles(session, ids, now)
                summary.articles_deleted += deleted
                summary.stories_recounted += recounted
                archive.delete_articles(ids)  # anything a concurrent index run sent back meanwhile
            with session_scope(settings) as session:
                summary.fetches_deleted = session.execute(
                    delete(FetchRecord).where(FetchRecord.started_at < article_cutoff)).rowcount or 0
                summary.runs_deleted = session.execute(
                    delete(PipelineRun).where(PipelineRun.started_at < article_cutoff,
                                              PipelineRun.status != "running")).rowcount or 0
        if story_cutoff is not None:
            with session_scope(settings) as session:
                story_ids = _expired_stories(session, story_cutoff)
            if story_ids:
                summary.archive_stories_deleted = archive.delete_stories(story_ids)
                with session_scope(settings) as session:
                    summary.stories_deleted, summary.alerts_deleted = _delete_stories(session, story_ids)
            with session_scope(settings) as session:
                summary.alerts_deleted += _delete_alerts(session, _expired_alerts(session, story_cutoff))
                session.execute(delete(SpikeEpisode).where(SpikeEpisode.last_hour < story_cutoff))
    return summary


def _chunks(ids: Sequence[str], size: int = BATCH) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def _delete_articles(session: Session, ids: Sequence[str], now: datetime) -> tuple[int, int]:
    """Delete the articles and every reference to them; recount the stories they left. (deleted, recounted)"""
    story_ids = sorted(set(session.scalars(
        select(Article.story_id).where(Article.id.in_(ids), Article.story_id.is_not(None))).all()))
    session.execute(update(StoryEvent).where(StoryEvent.article_id.in_(ids)).values(article_id=None))
    session.execute(update(Article).where(Article.syndicated_from.in_(ids)).values(syndicated_from=None))
    session.execute(delete(IndexFailure).where(IndexFailure.kind == "article", IndexFailure.doc_id.in_(ids)))
    deleted = session.execute(delete(Article).where(Article.id.in_(ids))).rowcount or 0
    for chunk in _chunks(story_ids):
        for story in session.scalars(select(Story).where(Story.id.in_(chunk))):
            recount(session, story, now)
    return deleted, len(story_ids)


def recount(session: Session, story: Story, now: datetime) -> None:
    """A story's counts from the members it has now (as enrichment keeps them), and pending in the archive."""
    members = session.execute(
        select(Article.id, Article.source, Article.language, Article.syndicated_from)
        .where(Article.story_id == story.id).order_by(Article.published_at, Article.id)).all()
    sources: dict[str, int] = {}
    copies: dict[str, int] = {}
    languages: dict[str, int] = {}
    for _, source, language, copy_of in members:
        sources[source] = sources.get(source, 0) + 1
        if copy_of is not None:
            copies[source] = copies.get(source, 0) + 1
        key = language or UNKNOWN_LANGUAGE
        languages[key] = languages.get(key, 0) + 1
    story.article_count = len(members)
    story.sources, story.copy_sources, story.language_counts = sources, copies, languages
    story.source_count = independent_sources(sources, copies)
    story.syndicated_outlets = len(copies)
    if story.representative_article_id not in {member[0] for member in members}:
        independent = [member[0] for member in members if member[3] is None]
        story.representative_article_id = (independent or [m[0] for m in members] or [None])[0]
    story.updated_at = max(now, datetime.now(timezone.utc))  # pending: the archive gets the new document


def _expired_stories(session: Session, cutoff: datetime) -> list[str]:
    """Stories without members last seen before the cutoff, and the member-less stories merged into them."""
    no_members = ~exists().where(Article.story_id == Story.id)
    found = set(session.scalars(select(Story.id).where(Story.last_seen < cutoff, no_members)))
    frontier = set(found)
    while frontier:
        absorbed = set(session.scalars(select(Story.id).where(Story.merged_into.in_(sorted(frontier)), no_members)))
        frontier = absorbed - found
        found |= frontier
    return sorted(found)


def _delete_stories(session: Session, story_ids: Sequence[str]) -> tuple[int, int]:
    """Delete the stories with their events and every alert of their threads. (stories, alerts)"""
    alert_ids: set[str] = set()
    for chunk in _chunks(story_ids):
        alert_ids |= set(session.scalars(select(Alert.id).where(
            (Alert.story_id.in_(chunk)) | (Alert.thread_key.in_(chunk)))))
    alerts = _delete_alerts(session, _closed_over_replies(session, alert_ids))
    stories = 0
    for chunk in _chunks(story_ids):
        session.execute(delete(StoryEvent).where(StoryEvent.story_id.in_(chunk)))
        session.execute(delete(IndexFailure).where(IndexFailure.kind == "story", IndexFailure.doc_id.in_(chunk)))
        stories += session.execute(delete(Story).where(Story.id.in_(chunk))).rowcount or 0
    return stories, alerts


def _closed_over_replies(session: Session, alert_ids: set[str]) -> set[str]:
    """The alerts and, transitively, those that reply to them or were carried by them (a digest)."""
    found, frontier = set(alert_ids), set(alert_ids)
    while frontier:
        more: set[str] = set()
        for chunk in _chunks(sorted(frontier)):
            more |= set(session.scalars(select(Alert.id).where(
                (Alert.parent_id.in_(chunk)) | (Alert.digest_id.in_(chunk)))))
        frontier = more - found
        found |= frontier
    return found


def _expired_alerts(session: Session, cutoff: datetime) -> set[str]:
    """Alerts of no story created before the cutoff whose whole thread is final and older than the cutoff,
    and that no remaining alert names as its parent or its digest."""
    rows = session.execute(select(Alert.id, Alert.thread_key, Alert.channel, Alert.status, Alert.created_at,
                                  Alert.parent_id, Alert.digest_id, Alert.story_id)).all()
    threads: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        if row.thread_key is not None:
            threads.setdefault((row.thread_key, row.channel), []).append(row)

    def expired(row: Any) -> bool:
        return row.story_id is None and row.status in FINAL and row.created_at < cutoff

    candidates = {row.id for row in rows if expired(row)
                  and (row.thread_key is None or all(expired(r) for r in threads[(row.thread_key, row.channel)]))}
    while True:  # keep what a remaining alert still names
        named = {name for row in rows if row.id not in candidates for name in (row.parent_id, row.digest_id) if name}
        kept = candidates & named
        if not kept:
            return candidates
        candidates -= kept


def _delete_alerts(session: Session, alert_ids: set[str]) -> int:
    deleted = 0
    ids = sorted(alert_ids)
    for chunk in _chunks(ids):
        session.execute(update(SpikeEpisode).where(SpikeEpisode.alert_id.in_(chunk)).values(alert_id=None))
        deleted += session.execute(delete(Alert).where(Alert.id.in_(chunk))).rowcount or 0
    return deleted


def counts(settings: Settings) -> dict[str, int]:
    """Rows per table of what retention deletes (for tests and the CLI)."""
    with session_scope(settings) as session:
        return {model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
                for model in (Article, Story, StoryEvent, Alert, FetchRecord)}


def maintenance_stage(settings: Settings, *, now: datetime | None = None) -> dict[str, Any]:
    """The daily maintenance (DAG `flankwatch_maintenance`, `flankwatch maintenance`): retention."""
    from flankwatch.pipeline import ensure_schema

    ensure_schema(settings)
    return apply_retention(settings, now=now).to_dict()
