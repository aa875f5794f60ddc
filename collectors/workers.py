"""Parsing and normalising fetched feed bodies, in worker processes when a run has many of them.

feedparser and lxml are CPU-bound Python that holds the GIL: in a thread of the collecting process they take
turns with the event loop and the database writes on one core, however many cores the machine has. A
`ProcessPoolExecutor` (one worker per core) gives them the other cores. A job sends the body and the few
feed fields normalising needs (`FeedFields`) and gets back a `Reading` of plain dataclasses; nothing of the
database or the event loop crosses the process boundary.

The pool starts only when a run has enough bodies to parse (`POOL_AFTER_BODIES`): starting workers costs
about a second of CPU, more than a few feeds take to parse (a 33 kB outlet feed takes ~45 ms through
`parse_feed` and `normalise_entry`). It starts in a thread (each start waits for the forkserver's answer),
and bodies wait for it rather than compete with its start for the CPU. Workers are started with
`forkserver` (never `fork`: the collecting process may have threads, an Airflow task runner does) and import
the parsing modules once. When a pool cannot start or breaks (a worker killed), the run goes on parsing
in-process, in a thread, exactly as without a pool.

`Readers.ticket` bounds the bodies fetched and not yet written (see `collectors.politeness.Ticket`): on a
fast network, fetching outruns parsing many times over."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import datetime

from collectors import schedule
from collectors.errors import FeedError
from collectors.normalise import (
    NormalisedArticle,
    SkippedEntry,
    entry_datetime,
    normalise_entry,
)
from collectors.parse import parse_feed
from collectors.politeness import Ticket
from core.models import Feed

log = logging.getLogger(__name__)

POOL_AFTER_BODIES = 24  # a run starts its pool when this many bodies have come to be parsed
_PRELOAD = ["collectors.workers"]


@dataclass(frozen=True)
class FeedFields:
    """What normalising an entry needs to know of its feed (a picklable stand-in for the ORM row)."""

    id: int
    url: str
    name: str
    language: str | None = None
    country: str | None = None
    fulltext: bool = False

    def as_feed(self) -> Feed:
        """A transient `Feed` (never added to a session) for `normalise_entry`."""
        return Feed(id=self.id, url=self.url, name=self.name, language=self.language, country=self.country,
                    fulltext=self.fulltext)


@dataclass
class Reading:
    """What one body gave: its articles and the feed-level facts the schedule needs, or a `FeedError`'s
    class and message."""

    articles: list[NormalisedArticle] = field(default_factory=list)
    items_seen: int = 0
    skipped: int = 0
    error_class: str | None = None
    error_message: str | None = None
    ttl_minutes: int | None = None
    items_per_day: float | None = None


def read_body(fields: FeedFields, body: bytes, base: str, content_type: str | None, max_items: int,
              now: datetime) -> Reading:
    """Parse a fetched body and normalise its entries (CPU only, no I/O). A `FeedError` becomes the reading's
    error; any other exception propagates (the caller records it as class `internal`)."""
    reading = Reading()
    try:
        parsed = parse_feed(body, url=base, content_type=content_type)
    except FeedError as exc:
        reading.error_class, reading.error_message = exc.error_class, exc.message[:2000]
        return reading
    reading.ttl_minutes = parsed.ttl_minutes
    dated = [entry_datetime(entry, now) for entry in parsed.entries]
    reading.items_per_day = schedule.rhythm(moment for moment in dated if moment is not now)
    entries = parsed.entries[: max(max_items, 0)]
    reading.items_seen = len(entries)
    feed = fields.as_feed()
    for entry in entries:
        try:
            reading.articles.append(
                normalise_entry(entry, feed=feed, feed_language=parsed.language, fetched_at=now, feed_url=base)
            )
        except SkippedEntry:
            reading.skipped += 1
    if reading.skipped:
        log.info("%s: %d of %d entries skipped (no link or no text)", fields.url, reading.skipped, len(entries))
    return reading


def _warm() -> int:
    """Run in each new worker: the imports are done by then (module import); answers the worker's pid."""
    return os.getpid()


def worker_count() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


class Readers:
    """Where a run's bodies are parsed: in a thread of this process for the first `POOL_AFTER_BODIES`
    bodies, then in a process pool (when the machine has more than one core and a pool can start), back in
    a thread if the pool breaks. One per run; `close()` it at the end (`async with`)."""

    def __init__(self, *, pool_after: int | None = None, workers: int | None = None, room: int = 64) -> None:
        self.room = asyncio.Semaphore(max(1, room))  # see `ticket`
        self.pool_after = POOL_AFTER_BODIES if pool_after is None else pool_after
        self.workers = workers or worker_count()
        self.bodies = 0
        self.pool: ProcessPoolExecutor | None = None
        self.pool_failed = self.workers < 2 and pool_after is None  # one core: a pool only adds copying
        self.pids: list[int] = []
        self._starting: asyncio.Task[None] | None = None

    def ticket(self) -> Ticket:
        """Room for one more body among those fetched and not yet written (see `collectors.politeness`)."""
        return Ticket(self.room)

    async def read(self, fields: FeedFields, body: bytes, base: str, content_type: str | None, max_items: int,
                   now: datetime) -> Reading:
        self.bodies += 1
        if self.pool is None and not self.pool_failed and self.bodies > self.pool_after and self._starting is None:
            # starting workers blocks (the forkserver answers each start): not on the loop's thread
            self._starting = asyncio.create_task(asyncio.to_thread(self._start))
        if self.pool is None and self._starting is not None and not self._starting.done():
            # bodies wait for the workers (a second or two) rather than compete with their start for the CPU
            await asyncio.shield(self._starting)
        if self.pool is not None:
            loop = asyncio.get_running_loop()
            try:
                return await loop.run_in_executor(self.pool, read_body, fields, body, base, content_type, max_items,
                                                  now)
            except BrokenProcessPool:
                self._broken("a worker died")
        return await asyncio.to_thread(read_body, fields, body, base, content_type, max_items, now)

    def _start(self) -> None:
        """Start the pool and its workers (in a thread); reads go to it once it is up."""
        try:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
            warm = [pool.submit(_warm) for _ in range(self.workers)]
            self.pids = sorted({future.result() for future in warm})
        except Exception as exc:
            self._broken(f"{type(exc).__name__}: {exc}")
            return
        if self.pool_failed:  # closed meanwhile
            pool.shutdown(wait=False, cancel_futures=True)
        else:
            self.pool = pool

    def _broken(self, why: str) -> None:
        if not self.pool_failed:
            log.warning("parse pool unavailable (%s): parsing in-process", why)
        self.pool_failed = True
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        self.pool_failed = True  # a pool still starting is shut down as soon as it is up
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    async def __aenter__(self) -> Readers:
        return self

    async def __aexit__(self, *exc: object) -> None:
        # shutdown joins the workers: off the loop, so that cancelled polls can still finish their cleanup
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        await asyncio.to_thread(self.close)
