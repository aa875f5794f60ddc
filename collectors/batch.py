"""Writing the outcomes of many polls in one transaction: their new articles, their FetchRecords and their
feeds' new state and schedule, as bulk statements (executemany) instead of one ORM transaction per feed.

What one transaction holds is what keeps a crash safe: a feed's articles, its FetchRecord, its new ETag and
its next fetch time are committed together, so a crash never leaves a feed marked polled (or an ETag stored)
without its articles, and a feed whose outcome was not committed is simply still due on the next run.
Articles are idempotent by id, so a re-run stores nothing twice.

When a batch fails (a row the database refuses), its feeds are written again one transaction each, so that one
feed's trouble is recorded as that feed's `internal` error and does not cost the others their poll."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from collectors import errors, schedule
from collectors.normalise import NormalisedArticle
from collectors.outcome import FeedOutcome
from collectors.store import store_articles_report
from core.db import session_scope
from core.models import Feed, FetchRecord
from core.settings import Settings

log = logging.getLogger(__name__)

_CHUNK = 500  # ids per IN (...) query

_STATE = (Feed.id, Feed.url, Feed.interval_seconds, Feed.consecutive_failures, Feed.items_total, Feed.health,
          Feed.last_new_item_at, Feed.items_per_day)


def _chunks(items: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


@dataclass
class Written:
    """What writing a batch stored: new article ids per feed id (every feed of the batch has a list), and the
    ids of stored articles that an edited entry updated."""

    new: dict[int, list[str]] = field(default_factory=dict)
    updated_ids: list[str] = field(default_factory=list)

    def add(self, other: Written) -> None:
        self.new.update(other.new)
        self.updated_ids.extend(other.updated_ids)


def _store(session: Session, outcomes: Sequence[FeedOutcome], now: datetime) -> Written:
    """Store the articles of every successful outcome in one go. An article listed by two feeds of the batch
    belongs to the first (as if the feeds had been stored one after the other)."""
    articles: list[NormalisedArticle] = []
    owner: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status == "ok":
            for article in outcome.articles:
                owner.setdefault(article.id, outcome.feed_id)
                articles.append(article)
    written = Written(new={outcome.feed_id: [] for outcome in outcomes})
    if articles:
        report = store_articles_report(session, articles, now)
        for article_id in report.new_ids:
            written.new[owner[article_id]].append(article_id)
        written.updated_ids = report.updated_ids
    return written


def feed_values(state: Any, outcome: FeedOutcome, new_count: int, now: datetime, settings: Settings
                ) -> dict[str, Any]:
    """The feed's columns after this poll (`state`: its row of `_STATE`), see `collectors.schedule`."""
    values: dict[str, Any] = {"id": state.id, "last_fetch_at": now, "last_status": outcome.status}
    if outcome.error_class:
        failures = (state.consecutive_failures or 0) + 1
        planned = schedule.after_failure(state.interval_seconds, failures, now, outcome.hints(), settings)
        if planned.health == schedule.UNHEALTHY and state.health != schedule.UNHEALTHY:
            log.warning("%s is unhealthy after %d failures in a row (%s); retried every %g h", state.url,
                        failures, outcome.error_class, settings.unhealthy_retry_hours)
        values.update(last_error_class=outcome.error_class, last_error=outcome.error_message,
                      consecutive_failures=failures)
    else:
        fetch = outcome.fetch
        planned = schedule.after_success(state.interval_seconds, new_count, now, outcome.hints(), settings)
        values.update(
            last_success_at=now, last_error_class=None, last_error=None, consecutive_failures=0,
            etag=fetch.etag, last_modified=fetch.last_modified, items_total=(state.items_total or 0) + new_count,
            last_new_item_at=now if new_count else state.last_new_item_at,
            items_per_day=outcome.items_per_day if outcome.items_per_day is not None else state.items_per_day,
        )
    values.update(next_fetch_at=planned.next_fetch_at, interval_seconds=planned.interval_seconds,
                  schedule_reason=planned.reason, health=planned.health)
    return values


def _record_values(outcome: FeedOutcome, now: datetime, new_count: int) -> dict[str, Any]:
    fetch = outcome.fetch
    return {
        "started_at": now,
        "duration_ms": fetch.duration_ms,
        "status": outcome.status,
        "http_status": fetch.http_status,
        "error_class": outcome.error_class,
        "error_message": outcome.error_message,
        "items_seen": outcome.items_seen,
        "items_new": new_count,
    }


def write(session: Session, run_id: str, outcomes: Sequence[FeedOutcome], now: datetime, settings: Settings
          ) -> Written:
    """Write the outcomes in `session` (the caller commits): new and updated articles, the run's FetchRecord
    of each feed (updated on a re-run of the same run_id) and each feed's state and next poll. Feeds deleted
    while they were polled are skipped."""
    written = _store(session, outcomes, now)
    new = written.new
    ids = [outcome.feed_id for outcome in outcomes]
    states = {row.id: row for chunk in _chunks(ids) for row in session.execute(select(*_STATE).where(Feed.id.in_(chunk)))}
    existing: dict[int, int] = {}
    for chunk in _chunks(ids):
        query = select(FetchRecord.feed_id, FetchRecord.id).where(FetchRecord.run_id == run_id,
                                                                  FetchRecord.feed_id.in_(chunk))
        existing.update({feed_id: record_id for feed_id, record_id in session.execute(query)})

    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    feeds_ok: list[dict[str, Any]] = []
    feeds_failed: list[dict[str, Any]] = []
    for outcome in outcomes:
        state = states.get(outcome.feed_id)
        if state is None:  # deleted while we polled
            continue
        count = len(new[outcome.feed_id])
        values = _record_values(outcome, now, count)
        if outcome.feed_id in existing:
            updates.append({"id": existing[outcome.feed_id], **values})
        else:
            inserts.append({"run_id": run_id, "feed_id": outcome.feed_id, **values})
        (feeds_failed if outcome.error_class else feeds_ok).append(feed_values(state, outcome, count, now, settings))
    if inserts:
        session.execute(insert(FetchRecord.__table__), inserts)
    for model, rows in ((FetchRecord, updates), (Feed, feeds_ok), (Feed, feeds_failed)):
        if rows:
            _update_by_id(session, model, rows)
    return written


def _update_by_id(session: Session, model: type[Feed] | type[FetchRecord], rows: list[dict[str, Any]]) -> None:
    """One Core executemany UPDATE ... WHERE id = ? for rows that all have the same keys (the ORM's bulk
    UPDATE does the same with a per-row bookkeeping that cost a quarter of a 304 poll's writes)."""
    table = model.__table__
    statement = update(table).where(table.c.id == bindparam("row_id"))
    session.execute(statement, [{"row_id": row["id"], **{k: v for k, v in row.items() if k != "id"}} for row in rows])


def write_outcomes(settings: Settings, run_id: str, outcomes: Sequence[FeedOutcome], now: datetime) -> Written:
    """Commit a batch of outcomes in one transaction; if that fails, one transaction per feed, where a feed
    that still fails is recorded as class `internal` without its articles."""
    if not outcomes:
        return Written()
    try:
        with session_scope(settings) as session:
            return write(session, run_id, outcomes, now, settings)
    except Exception as exc:
        if len(outcomes) == 1:
            log.exception("internal error while storing feed %s", outcomes[0].feed_id)
            return _internal(settings, run_id, outcomes[0], now, exc)
        log.exception("writing a batch of %d feeds failed; writing them one by one", len(outcomes))
    written = Written()
    for outcome in outcomes:
        written.add(write_outcomes(settings, run_id, [outcome], now))
    return written


def _internal(settings: Settings, run_id: str, outcome: FeedOutcome, now: datetime, exc: Exception) -> Written:
    """Record the feed's poll as class `internal`, without its articles (its schedule backs off)."""
    outcome.articles = []
    outcome.error_class = errors.INTERNAL
    outcome.error_message = f"{type(exc).__name__}: {exc}"[:2000]
    with session_scope(settings) as session:
        return write(session, run_id, [outcome], now, settings)
