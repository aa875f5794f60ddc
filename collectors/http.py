"""Fetching one feed over HTTP: conditional GET, bounded in size and time, never raising for network trouble."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx

from collectors import errors
from core.settings import Settings

FetchStatus = Literal["ok", "not_modified", "error"]

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
# Column sizes of Feed.etag / Feed.last_modified: a longer validator is not worth keeping (or sending back).
MAX_ETAG_CHARS = 512
MAX_LAST_MODIFIED_CHARS = 128


@dataclass
class FetchResult:
    """What one GET of a feed gave. `body` is only set when `status == "ok"`."""

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


def make_client(settings: Settings) -> httpx.Client:
    """A client for polling feeds; one may serve all the threads of a run. `fetch_feed` follows redirects
    itself, up to `http_max_redirects` (also set here for any other use of the client).

    No single wait may outlast the whole-response deadline, so each timeout is capped by
    `http_total_timeout`; `fetch_feed` enforces the deadline itself between chunks."""
    total = settings.http_total_timeout
    read = min(settings.http_read_timeout, total)
    timeout = httpx.Timeout(connect=min(settings.http_connect_timeout, total), read=read, write=read, pool=total)
    return httpx.Client(
        headers={"User-Agent": settings.user_agent, "Accept": ACCEPT},
        timeout=timeout,
        follow_redirects=True,
        max_redirects=settings.http_max_redirects,
    )


def _header_value(value: str | None, limit: int) -> str | None:
    """A validator fit to store and send back: printable ASCII within the column size, else None."""
    if not value:
        return None
    value = value.strip()
    if not value or len(value) > limit or not value.isascii() or not value.isprintable():
        return None
    return value


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
    if isinstance(exc, httpx.TooManyRedirects):
        return errors.TOO_MANY_REDIRECTS
    if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
        return errors.INVALID_URL
    if isinstance(exc, httpx.TimeoutException) or any(isinstance(e, TimeoutError) for e in chain):
        return errors.TIMEOUT
    text = " ".join(str(e) for e in chain).lower()
    if any(isinstance(e, socket.gaierror) for e in chain) or any(hint in text for hint in _DNS_HINTS):
        return errors.DNS
    if any(isinstance(e, ssl.SSLError) for e in chain) or "[ssl" in text or "certificate" in text:
        return errors.TLS
    if isinstance(exc, (httpx.ProtocolError, httpx.DecodingError)):
        return errors.PROTOCOL
    if isinstance(exc, (httpx.TransportError, OSError)):
        return errors.CONNECT
    if isinstance(exc, UnicodeError):  # e.g. a host name that cannot be IDNA-encoded
        return errors.INVALID_URL
    return errors.INTERNAL


def _invalid_url(url: str) -> str | None:
    """Why a URL cannot be fetched, or None."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return str(exc)
    if parts.scheme.lower() not in ("http", "https"):
        return f"only http and https URLs are fetched, not {parts.scheme or 'a URL without scheme'!r}"
    if not parts.hostname:
        return "URL without host"
    return None


def fetch_feed(
    client: httpx.Client,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    settings: Settings,
) -> FetchResult:
    """GET a feed, conditionally when validators are known. The body is streamed and cut off past
    `http_max_bytes` (class `too_large`) or past `http_total_timeout` seconds in all (class `timeout`, so that a
    server trickling bytes cannot hold a worker). Returns an error result instead of raising.

    Redirects are followed here, not by httpx: httpx reads the whole body of every redirect response, without
    a size cap or deadline, and would follow one to any scheme."""
    started = time.monotonic()
    deadline = started + settings.http_total_timeout

    def result(status: FetchStatus, **fields: object) -> FetchResult:
        elapsed_ms = int((time.monotonic() - started) * 1000)
        return FetchResult(status=status, url=url, duration_ms=elapsed_ms, **fields)  # type: ignore[arg-type]

    def failure(error_class: str, message: str, **fields: object) -> FetchResult:
        return result("error", error_class=error_class, error_message=message[:2000], **fields)

    reason = _invalid_url(url)
    if reason:
        return failure(errors.INVALID_URL, reason)

    headers: dict[str, str] = {}
    if etag := _header_value(etag, MAX_ETAG_CHARS):
        headers["If-None-Match"] = etag
    if last_modified := _header_value(last_modified, MAX_LAST_MODIFIED_CHARS):
        headers["If-Modified-Since"] = last_modified

    http_status: int | None = None
    final_url: str | None = None
    content_type: str | None = None
    try:
        request = client.build_request("GET", url, headers=headers)
        redirects = 0
        while True:
            response = client.send(request, stream=True, follow_redirects=False)
            try:
                http_status = response.status_code
                final_url = str(response.url)
                content_type = response.headers.get("content-type")
                common = {"http_status": http_status, "final_url": final_url, "content_type": content_type}
                if response.next_request is not None:  # a redirect with a Location
                    redirects += 1
                    target = str(response.next_request.url)
                    if redirects > settings.http_max_redirects:
                        return failure(
                            errors.TOO_MANY_REDIRECTS, f"more than {settings.http_max_redirects} redirects", **common
                        )
                    if reason := _invalid_url(target):
                        return failure(errors.INVALID_URL, f"redirect to {target[:200]}: {reason}", **common)
                    if time.monotonic() > deadline:
                        return failure(errors.TIMEOUT, f"no answer after {settings.http_total_timeout:g} s", **common)
                    request = response.next_request
                    continue
                if http_status == 304:
                    return result(
                        "not_modified",
                        etag=_header_value(response.headers.get("etag"), MAX_ETAG_CHARS) or etag,
                        last_modified=_header_value(response.headers.get("last-modified"), MAX_LAST_MODIFIED_CHARS)
                        or last_modified,
                        **common,
                    )
                status_line = f"HTTP {http_status} {response.reason_phrase}".strip()
                if http_status >= 500:
                    return failure(errors.HTTP_5XX, status_line, **common)
                if http_status >= 400:
                    return failure(errors.HTTP_4XX, status_line, **common)
                if not 200 <= http_status < 300:
                    return failure(errors.HTTP_OTHER, status_line, **common)

                limit = settings.http_max_bytes
                declared = response.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    return failure(errors.TOO_LARGE, f"Content-Length {declared} exceeds {limit} bytes", **common)
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        return failure(errors.TOO_LARGE, f"body exceeds {limit} bytes", **common)
                    if time.monotonic() > deadline:
                        return failure(
                            errors.TIMEOUT,
                            f"body not complete after {settings.http_total_timeout:g} s ({size} bytes)",
                            **common,
                        )
                    chunks.append(chunk)
                return result(
                    "ok",
                    body=b"".join(chunks),
                    etag=_header_value(response.headers.get("etag"), MAX_ETAG_CHARS),
                    last_modified=_header_value(response.headers.get("last-modified"), MAX_LAST_MODIFIED_CHARS),
                    **common,
                )
            finally:
                response.close()
    except Exception as exc:  # noqa: BLE001 - network trouble of any kind becomes a classified result
        error_class = classify_exception(exc)
        message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return failure(error_class, message, http_status=http_status, final_url=final_url, content_type=content_type)
