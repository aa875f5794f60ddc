"""Fetching one feed over HTTP (asyncio, `httpx.AsyncClient`): conditional GET, bounded in size, time and
memory, polite (see `collectors.politeness`), guarded against SSRF (see `collectors.safety`), never raising
for network trouble: every failure is a result with an error class."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx

from collectors import errors
from collectors.headers import (
    MAX_ETAG_CHARS,
    MAX_LAST_MODIFIED_CHARS,
    max_age_seconds,
    retry_after_seconds,
    validator,
)
from collectors.politeness import NoLimits
from collectors.safety import AddressPolicy, ForbiddenAddress
from collectors.transport import LeanTransport
from core.settings import Settings

FetchStatus = Literal["ok", "not_modified", "error"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# Only what `_Decoder` can inflate with a bounded output; httpx would otherwise offer br and zstd too.
ACCEPT_ENCODING = "gzip, deflate"


@dataclass
class FetchResult:
    """What one GET of a feed gave. `body` is only set when `status == "ok"`. `max_age` and `retry_after`
    are the server's scheduling hints in seconds, when it gave them."""

    status: FetchStatus
    url: str
    http_status: int | None = None
    body: bytes = b""
    etag: str | None = None
    last_modified: str | None = None
    final_url: str | None = None
    content_type: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    duration_ms: int = 0
    max_age: float | None = None
    retry_after: float | None = None


class SlotLimiter(Protocol):
    def slot(self, url: str | httpx.URL):  # type: ignore[no-untyped-def]  # an async context manager
        ...


class _NoCookies(httpx.Cookies):
    """Cookies that are never stored nor sent."""

    def extract_cookies(self, response: httpx.Response) -> None:
        return None

    def set_cookie_header(self, request: httpx.Request) -> None:
        return None


class FeedClient(httpx.AsyncClient):
    """`httpx.AsyncClient` without cookies: a feed reader sends each poll as the same anonymous GET (nothing
    a site sets follows the reader around), and httpx's cookie handling cost more than the rest of a 304."""

    _no_cookies = _NoCookies()

    @property  # type: ignore[override]
    def cookies(self) -> httpx.Cookies:
        return self._no_cookies

    @cookies.setter
    def cookies(self, value: object) -> None:
        return None


def make_client(settings: Settings, *, trusted_networks: Iterable[str] = ()) -> httpx.AsyncClient:
    """A client for polling feeds, to be used inside one event loop. Redirects are followed by
    `fetch_feed`, never by httpx (a redirect's body would be read without cap or deadline).

    Proxies from the environment are not used: the address guard must see the address really connected to.
    `trusted_networks` are fetched from even when private (beside `allow_private_addresses`)."""
    total = settings.http_total_timeout
    read = min(settings.http_read_timeout, total)
    timeout = httpx.Timeout(connect=min(settings.http_connect_timeout, total), read=read, write=read, pool=total)
    policy = AddressPolicy.build(settings.allow_private_addresses, trusted_networks)
    return FeedClient(
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT, "Accept-Encoding": ACCEPT_ENCODING},
        timeout=timeout,
        follow_redirects=False,
        transport=LeanTransport(policy),
        trust_env=False,
    )


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


_DNS_HINTS = (
    "name or service not known",
    "nodename nor servname",
    "temporary failure in name resolution",
    "no address associated with hostname",
    "name resolution",
    "getaddrinfo failed",
)


def classify_exception(exc: BaseException) -> str:
    """The error class of an exception raised while fetching."""
    chain = _causes(exc)
    if any(isinstance(e, ForbiddenAddress) for e in chain):
        return errors.FORBIDDEN_ADDRESS
    if isinstance(exc, httpx.TooManyRedirects):
        return errors.TOO_MANY_REDIRECTS
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return errors.INVALID_URL
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)) or any(isinstance(e, TimeoutError) for e in chain):
        return errors.TIMEOUT
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, socket.gaierror) for e in chain) or any(hint in text for hint in _DNS_HINTS):
        return errors.DNS
    if any(isinstance(e, ssl.SSLError) for e in chain) or "[ssl" in text or "certificate" in text:
        return errors.TLS
    if isinstance(exc, (httpx.ProtocolError, httpx.DecodingError, zlib.error)):
        return errors.PROTOCOL
    if isinstance(exc, (httpx.TransportError, OSError)):
        return errors.CONNECT
    if isinstance(exc, UnicodeError):  # e.g. a host name that cannot be IDNA-encoded
        return errors.INVALID_URL
    return errors.INTERNAL


def _invalid_url(url: httpx.URL) -> str | None:
    """Why a (parsed) URL cannot be fetched, or None."""
    if url.scheme not in ("http", "https"):
        return f"only http and https URLs are fetched, not {url.scheme or 'a URL without scheme'!r}"
    if not url.host:
        return "URL without host"
    return None


class _TooLarge(Exception):
    pass


class _Decoder:
    """Content-Encoding undone with a bounded output: zlib is asked for at most what still fits under the
    size cap, so a decompression bomb (a few kB that inflate to gigabytes) costs at most the cap in memory.
    httpx's own decoders inflate a whole network chunk at once (a 64 kB chunk can become 64 MB)."""

    def __init__(self, content_encoding: str | None) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        self._raw_deflate_tried = False
        self._started = False
        if encoding in ("", "identity"):
            self._zlib = None
        elif encoding in ("gzip", "x-gzip"):
            self._zlib = zlib.decompressobj(wbits=zlib.MAX_WBITS | 16)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        else:
            raise httpx.DecodingError(f"unsupported Content-Encoding {encoding[:40]!r}")
        self.encoding = encoding

    def decode(self, data: bytes, room: int) -> bytes:
        """Up to `room` bytes of output for `data`; more output than that means the body is too large."""
        if self._zlib is None:
            if len(data) > room:
                raise _TooLarge
            return data
        try:
            out = self._zlib.decompress(data, room + 1)
        except zlib.error:
            # "deflate" is often sent raw, without the zlib wrapper the RFC asks for: retry once at the start
            if self.encoding != "deflate" or self._started or self._raw_deflate_tried:
                raise
            self._raw_deflate_tried = True
            self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
            out = self._zlib.decompress(data, room + 1)
        self._started = True
        if len(out) > room or self._zlib.unconsumed_tail:
            raise _TooLarge
        return out


async def _read_body(response: httpx.Response, limit: int) -> bytes:
    decoder = _Decoder(response.headers.get("content-encoding"))
    chunks: list[bytes] = []
    size = 0
    async for raw in response.aiter_raw():
        piece = decoder.decode(raw, limit - size)
        size += len(piece)
        chunks.append(piece)
    return b"".join(chunks)


async def fetch_feed(
    client: httpx.AsyncClient,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    settings: Settings,
    limiter: SlotLimiter | None = None,
) -> FetchResult:
    """GET a feed, conditionally when validators are known. Returns an error result instead of raising.

    Bounds: connect and read timeouts per wait (httpx), `http_total_timeout` for all hops and the whole body
    (class `timeout`: a server trickling bytes is cut off), `http_max_bytes` of decoded body (class
    `too_large`, also for a decompression bomb), `http_max_redirects` hops and no URL twice (class
    `too_many_redirects`). Each hop waits for a slot of its host in `limiter` (see `collectors.politeness`);
    the deadline starts with the first hop, not while waiting in the queue."""
    limiter = limiter or NoLimits()
    started = time.monotonic()

    def result(status: FetchStatus, **fields: object) -> FetchResult:
        elapsed_ms = int((time.monotonic() - started) * 1000)
        return FetchResult(status=status, url=url, duration_ms=elapsed_ms, **fields)  # type: ignore[arg-type]

    def failure(error_class: str, message: str, **fields: object) -> FetchResult:
        return result("error", error_class=error_class, error_message=message[:2000], **fields)

    headers: dict[str, str] = {}
    if etag := validator(etag, MAX_ETAG_CHARS):
        headers["If-None-Match"] = etag
    if last_modified := validator(last_modified, MAX_LAST_MODIFIED_CHARS):
        headers["If-Modified-Since"] = last_modified

    total = settings.http_total_timeout
    http_status: int | None = None
    final_url: str | None = None
    content_type: str | None = None
    deadline: float | None = None
    visited = {url}
    try:
        try:
            request = client.build_request("GET", url, headers=headers)
        except (httpx.InvalidURL, ValueError) as exc:  # UnicodeError (a host IDNA cannot encode) is a ValueError
            return failure(errors.INVALID_URL, f"{type(exc).__name__}: {exc}")
        if reason := _invalid_url(request.url):
            return failure(errors.INVALID_URL, reason)
        redirects = 0
        while True:
            async with limiter.slot(request.url):
                loop = asyncio.get_running_loop()
                if deadline is None:
                    started = time.monotonic()
                    deadline = loop.time() + total
                response: httpx.Response | None = None
                try:
                    async with asyncio.timeout_at(deadline):
                        response = await client.send(request, stream=True, follow_redirects=False)
                        http_status = response.status_code
                        final_url = str(response.url)
                        content_type = response.headers.get("content-type")
                        common = {"http_status": http_status, "final_url": final_url, "content_type": content_type}
                        if response.next_request is not None:  # a redirect with a Location
                            redirects += 1
                            target_url = response.next_request.url
                            target = str(target_url)
                            if redirects > settings.http_max_redirects:
                                return failure(
                                    errors.TOO_MANY_REDIRECTS,
                                    f"more than {settings.http_max_redirects} redirects",
                                    **common,
                                )
                            if reason := _invalid_url(target_url):
                                return failure(errors.INVALID_URL, f"redirect to {target[:200]}: {reason}", **common)
                            if target in visited:
                                return failure(errors.TOO_MANY_REDIRECTS, f"redirect loop at {target[:200]}", **common)
                            visited.add(target)
                            request = response.next_request
                            continue
                        hints = {
                            "max_age": max_age_seconds(response.headers.get("cache-control"), response.headers.get("age")),
                        }
                        if http_status == 304:
                            return result(
                                "not_modified",
                                etag=validator(response.headers.get("etag"), MAX_ETAG_CHARS) or etag,
                                last_modified=validator(response.headers.get("last-modified"), MAX_LAST_MODIFIED_CHARS)
                                or last_modified,
                                **common,
                                **hints,
                            )
                        status_line = f"HTTP {http_status} {response.reason_phrase}".strip()
                        if http_status in (429, 503):
                            hints["retry_after"] = retry_after_seconds(
                                response.headers.get("retry-after"), response.headers.get("date")
                            )
                        if http_status == 429:
                            return failure(errors.RATE_LIMITED, status_line, **common, **hints)
                        if http_status >= 500:
                            return failure(errors.HTTP_5XX, status_line, **common, **hints)
                        if http_status >= 400:
                            return failure(errors.HTTP_4XX, status_line, **common, **hints)
                        if not 200 <= http_status < 300:
                            return failure(errors.HTTP_OTHER, status_line, **common, **hints)

                        limit = settings.http_max_bytes
                        declared = response.headers.get("content-length", "")
                        encoded = response.headers.get("content-encoding", "identity").strip().lower()
                        if declared.isdigit() and int(declared) > limit and encoded in ("", "identity"):
                            return failure(errors.TOO_LARGE, f"Content-Length {declared} exceeds {limit} bytes", **common)
                        try:
                            body = await _read_body(response, limit)
                        except _TooLarge:
                            return failure(errors.TOO_LARGE, f"body exceeds {limit} bytes (decoded)", **common)
                        return result(
                            "ok",
                            body=body,
                            etag=validator(response.headers.get("etag"), MAX_ETAG_CHARS),
                            last_modified=validator(response.headers.get("last-modified"), MAX_LAST_MODIFIED_CHARS),
                            **common,
                            **hints,
                        )
                finally:
                    if response is not None:
                        await response.aclose()
    except TimeoutError:
        return failure(
            errors.TIMEOUT,
            f"no complete answer after {total:g} s",
            http_status=http_status,
            final_url=final_url,
            content_type=content_type,
        )
    except Exception as exc:  # noqa: BLE001 - network trouble of any kind becomes a classified result
        error_class = classify_exception(exc)
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return failure(error_class, message, http_status=http_status, final_url=final_url, content_type=content_type)
