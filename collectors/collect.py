"""The collect stage: poll every enabled feed once and store what is new.

Network and parsing run in a thread pool (`fetch_workers`); every database write happens on the calling
thread, one transaction per feed, so that a feed's articles, its FetchRecord and its new ETag are committed
together: a crash never loses articles behind an ETag that would hide them on the next poll."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from collectors import errors
from collectors.errors import FeedError
from collectors.feeds_config import load_feeds_file, sync_feeds
from collectors.http import FetchResult, fetch_feed, make_client
from collectors.normalise import NormalisedArticle, SkippedEntry, normalise_entry
from collectors.parse import parse_feed
from collectors.store import store_articles
from core.db import session_scope
from core.models import Feed, FetchRecord
from core.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


@dataclass
class CollectSummary:
    run_id: str
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    errors: int = 0
    items_seen: int = 0
    new_articles: int = 0
    article_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class FeedOutcome:
    """What polling one feed gave, computed off the database (in a worker thread)."""

    feed_id: int
    fetch: FetchResult
    articles: list[NormalisedArticle] = field(default_factory=list)
    items_seen: int = 0
    skipped: int = 0
    error_class: str | None = None
    error_message: str | None = None

    @property
    def status(self) -> str:
        return "error" if self.error_class else self.fetch.status


def _feed_snapshot(feed: Feed) -> Feed:
    """A transient copy of the fields a worker needs: ORM rows stay on the calling thread."""
    return Feed(
        id=feed.id,
        url=feed.url,
        name=feed.name,
        language=feed.language,
        country=feed.country,
        fulltext=feed.fulltext,
        etag=feed.etag,
        last_modified=feed.last_modified,
    )


def poll_feed(client: httpx.Client, feed: Feed, settings: Settings, now: datetime) -> FeedOutcome:
    """Fetch, parse and normalise one feed. Never raises: every failure is an outcome with an error class."""
    fetch = FetchResult(status="error", url=feed.url)
    try:
        fetch = fetch_feed(client, feed.url, etag=feed.etag, last_modified=feed.last_modified, settings=settings)
        outcome = FeedOutcome(feed_id=feed.id, fetch=fetch)
        if fetch.status == "error":
            outcome.error_class, outcome.error_message = fetch.error_class, fetch.error_message
            return outcome
        if fetch.status == "not_modified":
            return outcome
        base = fetch.final_url or feed.url
        body, fetch.body = fetch.body, b""  # the outcome outlives the poll: do not keep megabytes in it
        try:
            parsed = parse_feed(body, url=base, content_type=fetch.content_type)
        except FeedError as exc:
            outcome.error_class, outcome.error_message = exc.error_class, exc.message[:2000]
            return outcome
        entries = parsed.entries[: max(settings.max_items_per_feed, 0)]
        outcome.items_seen = len(entries)
        for entry in entries:
            try:
                outcome.articles.append(
                    normalise_entry(entry, feed=feed, feed_language=parsed.language, fetched_at=now, feed_url=base)
                )
            except SkippedEntry:
                outcome.skipped += 1
        if outcome.skipped:
            log.info("%s: %d of %d entries skipped (no link or no text)", feed.url, outcome.skipped, len(entries))
        return outcome
    except Exception as exc:  # noqa: BLE001 - one feed's bug must not stop the run
        log.exception("internal error while polling %s", feed.url)
        message = f"{type(exc).__name__}: {exc}"[:2000]
        return FeedOutcome(feed_id=feed.id, fetch=fetch, error_class=errors.INTERNAL, error_message=message)


def _record(session: Session, run_id: str, outcome: FeedOutcome, now: datetime, new_ids: list[str]) -> None:
    """The run's FetchRecord of the feed (updated on a re-run of the same run_id) and the feed's state."""
    fetch = outcome.fetch
    values = {
        "started_at": now,
        "duration_ms": fetch.duration_ms,
        "status": outcome.status,
        "http_status": fetch.http_status,
        "error_class": outcome.error_class,
        "error_message": outcome.error_message,
        "items_seen": outcome.items_seen,
        "items_new": len(new_ids),
    }
    record = session.scalars(
        select(FetchRecord).where(FetchRecord.run_id == run_id, FetchRecord.feed_id == outcome.feed_id)
    ).one_or_none()
    if record is None:
        session.add(FetchRecord(run_id=run_id, feed_id=outcome.feed_id, **values))
    else:
        for key, value in values.items():
            setattr(record, key, value)

    feed = session.get(Feed, outcome.feed_id)
    if feed is None:  # deleted while we polled
        return
    feed.last_fetch_at = now
    feed.last_status = outcome.status
    if outcome.error_class:
        feed.last_error_class = outcome.error_class
        feed.last_error = outcome.error_message
        feed.consecutive_failures = (feed.consecutive_failures or 0) + 1
        return
    feed.last_success_at = now
    feed.last_error_class = None
    feed.last_error = None
    feed.consecutive_failures = 0
    feed.etag = fetch.etag
    feed.last_modified = fetch.last_modified
    feed.items_total = (feed.items_total or 0) + len(new_ids)


def _save(settings: Settings, run_id: str, outcome: FeedOutcome, now: datetime) -> list[str]:
    """Commit one feed's outcome; an unexpected failure is recorded as class `internal` instead."""
    try:
        with session_scope(settings) as session:
            new_ids = store_articles(session, outcome.articles, now) if outcome.status == "ok" else []
            _record(session, run_id, outcome, now, new_ids)
        return new_ids
    except Exception as exc:  # noqa: BLE001
        log.exception("internal error while storing feed %s", outcome.feed_id)
        outcome.articles = []
        outcome.error_class = errors.INTERNAL
        outcome.error_message = f"{type(exc).__name__}: {exc}"[:2000]
        with session_scope(settings) as session:
            _record(session, run_id, outcome, now, [])
        return []


def collect(
    settings: Settings,
    *,
    run_id: str,
    now: datetime | None = None,
    progress: Progress | None = None,
    origin: str | None = None,
) -> CollectSummary:
    """Poll every enabled feed once (see the module docstring). Safe to re-run with the same `run_id`: each
    feed keeps one FetchRecord per run (the latest attempt) and no article is stored twice.

    `origin` polls only the feeds of that origin (the demo polls its own feeds, `origin="demo"`); the feeds
    file is synced unless another origin than "config" is asked for.

    A broken feed never stops the run; a broken feeds file does (`FeedsFileError`, before any fetch): it is
    our own configuration, and a loud failure is better than polling a list nobody meant."""
    now = now or datetime.now(timezone.utc)
    summary = CollectSummary(run_id=run_id)
    with session_scope(settings) as session:
        if origin in (None, "config") and settings.feeds_file.exists():
            sync_feeds(session, load_feeds_file(settings.feeds_file), origin="config")
        query = select(Feed).where(Feed.enabled).order_by(Feed.id)
        if origin is not None:
            query = query.where(Feed.origin == origin)
        feeds = [_feed_snapshot(feed) for feed in session.scalars(query)]
    summary.feeds = len(feeds)
    if progress:
        progress(0, len(feeds))
    if not feeds:
        return summary

    with make_client(settings) as client, ThreadPoolExecutor(
        max_workers=max(1, settings.fetch_workers), thread_name_prefix="collect"
    ) as pool:
        futures: dict[Future[FeedOutcome], Feed] = {
            pool.submit(poll_feed, client, feed, settings, now): feed for feed in feeds
        }
        for done, future in enumerate(as_completed(futures), start=1):
            outcome = future.result()  # poll_feed never raises
            new_ids = _save(settings, run_id, outcome, now)
            status = outcome.status
            if status == "ok":
                summary.ok += 1
            elif status == "not_modified":
                summary.not_modified += 1
            else:
                summary.errors += 1
                log.warning("%s: %s: %s", futures[future].url, outcome.error_class, outcome.error_message)
            summary.items_seen += outcome.items_seen
            summary.new_articles += len(new_ids)
            summary.article_ids.extend(new_ids)
            if progress:
                progress(done, len(feeds))
    return summary
