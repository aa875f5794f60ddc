"""The collect stage: poll every enabled feed that is due, store what is new, schedule the next poll.

Fetching runs on an asyncio event loop (`httpx.AsyncClient`) within the limits of `collectors.politeness`:
`fetch_concurrency` requests in all, `fetch_per_host` per host with `fetch_host_delay_seconds` between two
starts, so a run takes about as long as its slowest host.

Parsing and normalising (feedparser and lxml: CPU-bound Python that holds the GIL) run in worker processes
once a run has more than a few bodies to read (`collectors.workers`), so that they use the other cores while
this process fetches and writes; a run with a handful of bodies reads them in a thread.

Outcomes are written in batches (`collectors.batch`): every `BATCH_FEEDS` outcomes or `BATCH_SECONDS` after
the oldest unwritten one, one transaction, off the loop's thread, one batch at a time. A feed's articles,
its FetchRecord, its new ETag and its next fetch time are always in the same transaction: a crash never
loses articles behind an ETag that would hide them on the next poll, and a re-run polls exactly the feeds
whose outcomes were not committed (they are still due). Measured with the bench (`bench/collect_bench.py`):
one ORM transaction per feed cost ~7 ms a feed, a 304 included; in batches a 304 costs ~0.2 ms of CPU, and
a new feed's cost is that of `collectors.store.store_articles` for its articles."""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable, Collection, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeVar

import httpx
from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from collectors import errors
from collectors.batch import Written, write_outcomes
from collectors.feeds_config import load_feeds_file, sync_feeds
from collectors.fulltext import articles_to_fetch, fetch_fulltexts
from collectors.http import FetchResult, SlotLimiter, fetch_feed, make_client
from collectors.outcome import DueFeed, FeedOutcome
from collectors.politeness import Limiter, NoLimits, Ticketed
from collectors.workers import Readers, read_body, worker_count
from core.db import session_scope
from core.models import Feed
from core.settings import Settings

__all__ = ["CollectSummary", "DueFeed", "FeedOutcome", "collect", "due_feeds", "poll_feed", "run_coroutine"]

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
T = TypeVar("T")

BATCH_FEEDS = 200  # outcomes that make a batch worth writing at once
BATCH_SECONDS = 0.5  # the longest an outcome waits for its batch
BATCH_MAX = 1000  # the most outcomes in one transaction
FULLTEXT_PAGES_PER_POLL = 20  # article pages one poll of a `fulltext: true` feed fetches at most


@dataclass
class CollectSummary:
    """Counts of one run. `feeds` counts the feeds polled (the due ones), not every enabled feed."""

    run_id: str
    feeds: int = 0
    ok: int = 0
    not_modified: int = 0
    errors: int = 0
    items_seen: int = 0
    new_articles: int = 0
    updated_articles: int = 0  # stored articles whose entry came back edited (re-enriched, re-indexed)
    article_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


async def poll_feed(client: httpx.AsyncClient, feed: DueFeed, settings: Settings, now: datetime,
                    limiter: SlotLimiter | None = None, readers: Readers | None = None) -> FeedOutcome:
    """Fetch, parse and normalise one feed. Never raises: every failure is an outcome with an error class.
    `readers` parses the body (in a worker process when the run has a pool; without it, a thread does) and
    bounds what a run holds in memory: with a `Limiter`, a request starts only when there is room for its
    body (a `Ticket`), given back at once when there is no body (304, error), else once the outcome's
    articles are committed (the outcome keeps it)."""
    fetch = FetchResult(status="error", url=feed.url)
    ticket = readers.ticket() if readers is not None and isinstance(limiter, (Limiter, NoLimits)) else None
    try:
        fetch = await fetch_feed(client, feed.url, etag=feed.etag, last_modified=feed.last_modified,
                                 settings=settings, limiter=Ticketed(limiter, ticket) if ticket else limiter)
        outcome = FeedOutcome(feed_id=feed.id, fetch=fetch)
        if fetch.status == "error":
            outcome.error_class, outcome.error_message = fetch.error_class, fetch.error_message
            return outcome
        if fetch.status == "not_modified":
            return outcome
        body, fetch.body = fetch.body, b""  # the outcome outlives the poll: do not keep megabytes in it
        job = (feed, body, fetch.final_url or feed.url, fetch.content_type, settings.max_items_per_feed, now)
        outcome.take(await (readers.read(*job) if readers is not None else asyncio.to_thread(read_body, *job)))
        if feed.fulltext and outcome.articles and not outcome.error_class:
            await _add_fulltext(client, outcome, settings, limiter)
        outcome.ticket, ticket = ticket, None  # its articles take the room until they are written
        return outcome
    except Exception as exc:  # noqa: BLE001 - one feed's bug must not stop the run
        log.exception("internal error while polling %s", feed.url)
        message = f"{type(exc).__name__}: {exc}"[:2000]
        return FeedOutcome(feed_id=feed.id, fetch=fetch, error_class=errors.INTERNAL, error_message=message)
    finally:
        if ticket is not None:
            ticket.give_back()


async def _add_fulltext(client: httpx.AsyncClient, outcome: FeedOutcome, settings: Settings,
                        limiter: SlotLimiter | None) -> None:
    """Fetch and extract the pages of a `fulltext: true` feed's new or edited articles (at most
    `FULLTEXT_PAGES_PER_POLL`, newest first: a feed's first poll must not take its host's delay times 200),
    through the same safe client and host limits as the feeds. A failure here never fails the feed: the
    articles keep their feed text, and each records why (`fulltext_error`)."""
    try:
        todo = await asyncio.to_thread(articles_to_fetch, settings, outcome.articles)
        todo = sorted(todo, key=lambda article: article.published_at, reverse=True)[:FULLTEXT_PAGES_PER_POLL]
        if todo:
            await fetch_fulltexts(client, todo, settings=settings, limiter=limiter)
    except Exception:  # noqa: BLE001 - full text is an extra; the feed's own articles still count
        log.exception("full text skipped for feed %s", outcome.feed_id)


def sync_config(settings: Settings, origin: str | None = None) -> None:
    """Sync the feeds file into the state DB, unless another origin than "config" is polled (once per run:
    `collect`, or the planner of the shards)."""
    if origin in (None, "config") and settings.feeds_file.exists():
        with session_scope(settings) as session:
            sync_feeds(session, load_feeds_file(settings.feeds_file), origin="config")


def due(now: datetime) -> list[ColumnElement[bool]]:
    """A feed is due: enabled, and never polled or its `next_fetch_at` reached."""
    return [Feed.enabled, or_(Feed.next_fetch_at.is_(None), Feed.next_fetch_at <= now)]


def due_feeds(session: Session, now: datetime, origin: str | None = None) -> list[DueFeed]:
    """Enabled feeds whose next poll is due (`due`), oldest due first.
    Plain rows, not ORM objects: a run of 10,000 feeds does not need 10,000 tracked instances."""
    query = select(Feed.id, Feed.url, Feed.name, Feed.language, Feed.country, Feed.fulltext, Feed.etag,
                   Feed.last_modified).where(*due(now))
    if origin is not None:
        query = query.where(Feed.origin == origin)
    query = query.order_by(Feed.next_fetch_at.is_not(None), Feed.next_fetch_at, Feed.id)
    return [DueFeed(id=row.id, url=row.url, name=row.name, language=row.language, country=row.country,
                    fulltext=bool(row.fulltext), etag=row.etag, last_modified=row.last_modified)
            for row in session.execute(query)]


class _Writer:
    """Collects the outcomes of a run and writes them in batches, one batch at a time, in a thread (the loop
    goes on fetching meanwhile). Counts into the summary and reports progress once a batch is committed."""

    def __init__(self, settings: Settings, run_id: str, now: datetime, summary: CollectSummary,
                 progress: Progress | None, total: int, urls: dict[int, str]) -> None:
        self.settings, self.run_id, self.now = settings, run_id, now
        self.summary, self.progress, self.total, self.urls = summary, progress, total, urls
        self.pending: list[FeedOutcome] = []
        self.oldest: float | None = None  # loop time the oldest pending outcome arrived
        self.closed = False
        self.done = 0
        self.wake = asyncio.Event()

    def put(self, outcome: FeedOutcome) -> None:
        if not self.pending:
            self.oldest = asyncio.get_running_loop().time()
        self.pending.append(outcome)
        if len(self.pending) >= BATCH_FEEDS:
            self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()

    async def run(self) -> None:
        while await self._batch_ready():
            batch, self.pending = self.pending[:BATCH_MAX], self.pending[BATCH_MAX:]
            self.oldest = asyncio.get_running_loop().time() if self.pending else None
            written = await asyncio.to_thread(write_outcomes, self.settings, self.run_id, batch, self.now)
            self._count(batch, written)

    async def _batch_ready(self) -> bool:
        """Wait until a batch is due; False once closed with nothing left."""
        loop = asyncio.get_running_loop()
        while True:
            if self.closed or len(self.pending) >= BATCH_FEEDS:
                return bool(self.pending)
            timeout = None
            if self.oldest is not None:
                timeout = self.oldest + BATCH_SECONDS - loop.time()
                if timeout <= 0:
                    return True
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except TimeoutError:
                pass

    def _count(self, batch: list[FeedOutcome], written: Written) -> None:
        summary = self.summary
        new = written.new
        summary.updated_articles += len(written.updated_ids)
        for outcome in batch:
            new_ids = new.get(outcome.feed_id, [])
            status = outcome.status
            if status == "ok":
                summary.ok += 1
            elif status == "not_modified":
                summary.not_modified += 1
            else:
                summary.errors += 1
                log.warning("%s: %s: %s", self.urls[outcome.feed_id], outcome.error_class, outcome.error_message)
            summary.items_seen += outcome.items_seen
            summary.new_articles += len(new_ids)
            summary.article_ids.extend(new_ids)
            if outcome.ticket is not None:
                outcome.ticket.give_back()
            self.done += 1
            if self.progress:
                self.progress(self.done, self.total)


async def _poll_all(settings: Settings, feeds: list[DueFeed], run_id: str, now: datetime, progress: Progress | None,
                    summary: CollectSummary) -> None:
    limiter = Limiter(concurrency=settings.fetch_concurrency, per_host=settings.fetch_per_host,
                      host_delay=settings.fetch_host_delay_seconds)
    writer = _Writer(settings, run_id, now, summary, progress, len(feeds), {feed.id: feed.url for feed in feeds})
    # bodies (then their articles) fetched and not yet written: enough to keep every worker busy, every fetch
    # slot in use and a batch filling while the one before is written (~40 MB of outlet feeds)
    room = 2 * BATCH_FEEDS + 2 * max(1, settings.fetch_concurrency) + 4 * worker_count()

    async def poll_into_writer(feed: DueFeed) -> None:
        # The outcome goes to the writer from the task itself, which returns nothing: a finished task kept
        # its outcome (the feed's parsed articles) for as long as `tasks` lives, the whole run: at 1,000,000
        # articles the collect stage peaked at 2.8 GiB of RSS with them, 1.1 GiB without.
        writer.put(await poll_feed(client, feed, settings, now, limiter, readers))  # poll_feed never raises

    async with make_client(settings) as client, Readers(room=room) as readers:
        tasks = [asyncio.create_task(poll_into_writer(feed)) for feed in feeds]
        writing = asyncio.create_task(writer.run())
        try:
            for finished in asyncio.as_completed(tasks):
                await finished
                if writing.done():  # the writer failed: stop polling what could not be stored
                    break
            writer.close()
            await writing
        finally:
            for task in (*tasks, writing):
                task.cancel()
            await asyncio.gather(*tasks, writing, return_exceptions=True)


def run_coroutine(coroutine: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, also from a thread whose event loop is already running (then on a thread of its own)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = asyncio.run(coroutine)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller below
            box["error"] = exc

    thread = threading.Thread(target=target, name="collect-loop")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def collect(
    settings: Settings,
    *,
    run_id: str,
    now: datetime | None = None,
    progress: Progress | None = None,
    origin: str | None = None,
    feed_ids: Collection[int] | None = None,
) -> CollectSummary:
    """Poll every enabled feed that is due (see the module docstring and `collectors.schedule`). Safe to
    re-run with the same `run_id`: a feed keeps one FetchRecord per run (the latest attempt), no article is
    stored twice, and the feeds committed before a crash are not due again.

    `origin` polls only the feeds of that origin (the demo polls its own feeds, `origin="demo"`); the feeds
    file is synced unless another origin than "config" is asked for.

    `feed_ids` polls only those of the due feeds (a claimed shard, `collectors.shards`), without the sync:
    the shard's planner synced the feeds file once for all shards.

    A broken feed never stops the run; a broken feeds file does (`FeedsFileError`, before any fetch): it is
    our own configuration, and a loud failure is better than polling a list nobody meant."""
    now = now or datetime.now(timezone.utc)
    summary = CollectSummary(run_id=run_id)
    if feed_ids is None:
        sync_config(settings, origin)
    with session_scope(settings) as session:
        feeds = due_feeds(session, now, origin)
    if feed_ids is not None:
        chosen = set(feed_ids)
        feeds = [feed for feed in feeds if feed.id in chosen]
    summary.feeds = len(feeds)
    if progress:
        progress(0, len(feeds))
    if feeds:
        # What lives before the run (modules, caches, the caller's data) outlives it: frozen, the garbage
        # collector's full passes skip it. They ran every few thousand requests over the whole heap, and in a
        # process holding much (a long-lived worker, the benchmark) cost a tenth of a 304 poll.
        gc.freeze()
        try:
            run_coroutine(_poll_all(settings, feeds, run_id, now, progress, summary))
        finally:
            gc.unfreeze()
    return summary
