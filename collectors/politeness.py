"""How many requests a run has open at once: in all (`fetch_concurrency`) and per host (`fetch_per_host`, with
at least `fetch_host_delay_seconds` between two request starts to the same host).

A host is the URL's host name, lower-case, without scheme or port: politeness is owed to a server (and the
organisation that runs it), and `http://x`, `https://x` and `https://x:8443` are the same server. Two names
on one CDN address count as two hosts: we cannot know what is behind an address, and outlets on shared
hosting would otherwise slow each other down.

The host slot is taken before the global slot, so that feeds queued for a busy host do not hold global
slots that feeds of other hosts could use: a run takes about as long as its slowest host.

`Ticket`/`Ticketed` bound the bodies (and then articles) a run holds in memory before they are written:
fetching from a fast network outruns feedparser by far, and 10,000 fetched bodies waiting for a parser
are ~330 MB."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx

BeforeStart = Callable[[], Awaitable[None]]


def host_key(url: str | httpx.URL) -> str:
    """The politeness key of a URL: its host name, lower-case ("" for a URL without host). An `httpx.URL`
    (a request's, already parsed) is not parsed again: parsing was a tenth of a 304 poll's time."""
    try:
        parsed = url if isinstance(url, httpx.URL) else httpx.URL(url)
        return parsed.host.lower().rstrip(".")
    except (httpx.InvalidURL, ValueError):
        return ""


class _Host:
    def __init__(self, per_host: int) -> None:
        self.slots = asyncio.Semaphore(per_host)
        self.next_start = 0.0  # loop time before which no new request to this host may start
        self.lock = asyncio.Lock()


class Limiter:
    """Global and per-host limits of one run. Create it inside the event loop that uses it."""

    def __init__(self, *, concurrency: int, per_host: int, host_delay: float) -> None:
        self.per_host = max(1, per_host)
        self.host_delay = max(0.0, host_delay)
        self._global = asyncio.Semaphore(max(1, concurrency))
        self._hosts: dict[str, _Host] = {}

    @asynccontextmanager
    async def slot(self, url: str | httpx.URL, before_start: BeforeStart | None = None) -> AsyncIterator[None]:
        """Hold a slot of the URL's host and a global slot for one request (one redirect hop).

        The host's next start is counted from when the request really starts (the global slot taken), so
        two requests to one host are `host_delay` apart even when the first one waited for a global slot.
        `before_start` is awaited after the host's delay and before the global slot (the collect stage
        waits there for room among the bodies not yet written: that wait must not hold a global slot, and it
        must come after the delay, so that a task waiting for its host holds no room)."""
        key = host_key(url)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(self.per_host)
        async with host.slots:
            if self.host_delay:
                async with host.lock:  # starts are spaced one by one, in the order the slots were taken
                    loop = asyncio.get_running_loop()
                    wait = host.next_start - loop.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    if before_start is not None:
                        await before_start()
                    await self._global.acquire()
                    host.next_start = loop.time() + self.host_delay
            else:
                if before_start is not None:
                    await before_start()
                await self._global.acquire()
            try:
                yield
            finally:
                self._global.release()


class NoLimits:
    """A limiter that never waits (a single fetch outside of a run)."""

    @asynccontextmanager
    async def slot(self, url: str | httpx.URL, before_start: BeforeStart | None = None) -> AsyncIterator[None]:
        if before_start is not None:
            await before_start()
        yield


class Ticket:
    """Room for one feed's body (then its articles) among those a run holds in memory (`room`: a semaphore
    shared by the run). Taken at most once however many redirect hops the fetch makes; given back when the
    fetch ends without a body (304, error), else when the feed's outcome is written."""

    def __init__(self, room: asyncio.Semaphore) -> None:
        self._room = room
        self._held = False

    async def take(self) -> None:
        if not self._held:
            await self._room.acquire()
            self._held = True

    def give_back(self) -> None:
        if self._held:
            self._held = False
            self._room.release()


class Ticketed:
    """A limiter whose every slot first takes the feed's `Ticket` (see `Limiter.slot`'s `before_start`)."""

    def __init__(self, limiter: Limiter | NoLimits, ticket: Ticket) -> None:
        self.limiter = limiter
        self.ticket = ticket

    def slot(self, url: str | httpx.URL):  # type: ignore[no-untyped-def]  # an async context manager
        return self.limiter.slot(url, before_start=self.ticket.take)
