"""fetch_feed against a real local HTTP server: conditional GET, server hints, the SSRF guard and every way a
fetch can fail."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from collectors import errors
from collectors.http import FetchResult, fetch_feed, make_client
from core.settings import Settings
from feedserver import FeedServer, closed_port_url, gzip_bomb

FEED = b"<rss version='2.0'><channel><title>x</title></channel></rss>"


@pytest.fixture
def http_settings(tmp_path: Path) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        http_connect_timeout=1.0,
        http_read_timeout=0.5,
        http_total_timeout=1.0,
        http_max_bytes=1_000_000,
        http_max_redirects=3,
        user_agent="FlankwatchTest/1.0",
        allow_private_addresses=True,  # the feed server is on 127.0.0.1
    )


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def fetch_once(settings: Settings, url: str, *, trusted: tuple[str, ...] = (), **validators: str | None) -> FetchResult:
    """One fetch on a fresh event loop and client, as a run would do it."""

    async def go() -> FetchResult:
        async with make_client(settings, trusted_networks=trusted) as client:
            return await fetch_feed(client, url, settings=settings, **validators)

    return asyncio.run(go())


@dataclass
class Env:
    server: FeedServer
    settings: Settings

    def fetch(self, url: str, **validators: str | None) -> FetchResult:
        return fetch_once(self.settings, url, **validators)


@pytest.fixture
def env(server: FeedServer, http_settings: Settings) -> Env:
    return Env(server, http_settings)


def test_ok_then_not_modified(env: Env, shared_data: Path) -> None:
    server = env.server
    file = shared_data / "feeds" / "outlets" / "de" / "tagesschau.xml"
    url = server.serve_file("/tagesschau.xml", file)
    first = env.fetch(url)
    assert first.status == "ok" and first.http_status == 200
    assert first.body == file.read_bytes()
    assert first.etag and first.last_modified and first.content_type.startswith("application/rss+xml")
    assert first.final_url == url and first.error_class is None
    assert server.requests_to("/tagesschau.xml")[0].headers["user-agent"] == "FlankwatchTest/1.0"

    second = env.fetch(url, etag=first.etag, last_modified=first.last_modified)
    assert second.status == "not_modified" and second.http_status == 304 and second.body == b""
    assert second.etag == first.etag
    sent = server.requests_to("/tagesschau.xml")[1].headers
    assert sent["if-none-match"] == first.etag and sent["if-modified-since"] == first.last_modified

    by_date = env.fetch(url, last_modified=first.last_modified)
    assert by_date.status == "not_modified"


def test_redirect_is_followed(env: Env) -> None:
    target = env.server.serve_bytes("/new.xml", b"<rss version='2.0'><channel><title>x</title></channel></rss>")
    result = env.fetch(env.server.redirect("/old.xml", "/new.xml", status=301))
    assert result.status == "ok" and result.final_url == target


def test_redirect_body_is_not_read(env: Env) -> None:
    target = env.server.serve_bytes("/target.xml", b"<rss version='2.0'><channel><title>x</title></channel></rss>")
    started = time.monotonic()
    result = env.fetch(env.server.redirect("/endless-redirect", "/target.xml", endless_body=True))
    assert result.status == "ok" and result.final_url == target
    assert time.monotonic() - started < 1


@pytest.mark.parametrize(
    ("make_url", "error_class", "http_status"),
    [
        (lambda s: s.error("/500", 500), errors.HTTP_5XX, 500),
        (lambda s: s.error("/503", 503), errors.HTTP_5XX, 503),
        (lambda s: s.url("/missing.xml"), errors.HTTP_4XX, 404),
        (lambda s: s.error("/410", 410), errors.HTTP_4XX, 410),
        (lambda s: closed_port_url(), errors.CONNECT, None),
        (lambda s: "http://flankwatch-test.invalid/feed.xml", errors.DNS, None),
        (lambda s: s.serve_bytes("/tls.xml", b"<rss/>").replace("http:", "https:"), errors.TLS, None),
        (lambda s: s.redirect_loop("/loop"), errors.TOO_MANY_REDIRECTS, 302),
        (lambda s: s.redirect("/to-file", "file:///etc/passwd"), errors.INVALID_URL, 302),
        (lambda s: "file:///etc/passwd", errors.INVALID_URL, None),
        (lambda s: "ftp://example.org/feed", errors.INVALID_URL, None),
        (lambda s: "not a url", errors.INVALID_URL, None),
        (lambda s: "http:///no-host", errors.INVALID_URL, None),
    ],
)
def test_failures_are_classified(env: Env, make_url, error_class: str, http_status: int | None) -> None:  # type: ignore
    result = env.fetch(make_url(env.server))
    assert (result.status, result.error_class, result.http_status) == ("error", error_class, http_status)
    assert result.error_message and result.body == b""


def test_size_cap(env: Env) -> None:
    started = time.monotonic()
    endless = env.fetch(env.server.endless("/endless"))
    assert endless.error_class == errors.TOO_LARGE and endless.body == b""
    declared = env.fetch(env.server.serve_bytes("/big.xml", b"x" * 1_000_001))
    assert declared.error_class == errors.TOO_LARGE and "Content-Length" in (declared.error_message or "")
    assert time.monotonic() - started < 3


def test_trickle_is_cut_off_at_the_total_deadline(env: Env) -> None:
    started = time.monotonic()
    result = env.fetch(env.server.trickle("/trickle", interval=0.05))
    elapsed = time.monotonic() - started
    assert result.error_class == errors.TIMEOUT and result.http_status == 200
    assert 0.9 < elapsed < 2.5, elapsed


def test_stalled_body_times_out(env: Env) -> None:
    started = time.monotonic()
    result = env.fetch(env.server.trickle("/stall", interval=5.0))
    assert result.error_class == errors.TIMEOUT
    assert time.monotonic() - started < 2.5


def test_stale_validators_are_not_sent(env: Env) -> None:
    url = env.server.serve_bytes("/v.xml", b"<rss version='2.0'><channel/></rss>")
    result = env.fetch(url, etag='"ünïcode"', last_modified="x" * 500)
    assert result.status == "ok"
    headers = env.server.requests_to("/v.xml")[0].headers
    assert "if-none-match" not in headers and "if-modified-since" not in headers


def test_gzip_bomb_is_cut_at_the_cap_with_bounded_memory(env: Env) -> None:
    """256 MB of zeros in about 250 kB of gzip: inflated only up to the 1 MB cap."""
    url = env.server.gzip_bomb("/bomb.xml", gzip_bomb(256 * 1024 * 1024))
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = env.fetch(url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.error_class == errors.TOO_LARGE and "decoded" in (result.error_message or "")
    assert time.monotonic() - started < 3
    assert peak < 12 * 1024 * 1024, peak  # a few copies of the 1 MB cap, not 256 MB


def test_gzip_and_raw_deflate_bodies_are_decoded(env: Env) -> None:
    import zlib

    gz = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    raw = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    gzip_url = env.server.serve_bytes("/gz.xml", gz.compress(FEED) + gz.flush(), headers={"Content-Encoding": "gzip"})
    raw_url = env.server.serve_bytes("/raw.xml", raw.compress(FEED) + raw.flush(), headers={"Content-Encoding": "deflate"})
    assert env.fetch(gzip_url).body == FEED
    assert env.fetch(raw_url).body == FEED
    assert env.server.requests_to("/gz.xml")[0].headers["accept-encoding"] == "gzip, deflate"
    broken = env.fetch(env.server.serve_bytes("/broken.xml", b"not gzip at all", headers={"Content-Encoding": "gzip"}))
    assert broken.error_class == errors.PROTOCOL
    odd = env.fetch(env.server.serve_bytes("/br.xml", b"xx", headers={"Content-Encoding": "br"}))
    assert odd.error_class == errors.PROTOCOL and "br" in (odd.error_message or "")


def test_server_hints_are_read(env: Env) -> None:
    cached = env.fetch(env.server.serve_bytes("/cached.xml", FEED, headers={"Cache-Control": "public, max-age=3600", "Age": "600"}))
    assert cached.status == "ok" and cached.max_age == 3000
    limited = env.fetch(env.server.error("/429", 429, headers={"Retry-After": "120"}))
    assert (limited.error_class, limited.http_status, limited.retry_after) == (errors.RATE_LIMITED, 429, 120)
    # an HTTP date is taken relative to the response's own Date header (the test server sends the real time)
    soon = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=120), usegmt=True)
    dated = env.fetch(env.server.error("/503", 503, headers={"Retry-After": soon}))
    assert dated.error_class == errors.HTTP_5XX and 115 <= (dated.retry_after or 0) <= 121
    ignored = env.fetch(env.server.error("/500", 500, headers={"Retry-After": "120"}))
    assert ignored.retry_after is None  # only 429 and 503 are read for it


def test_redirect_loop_is_detected_before_the_cap(env: Env, http_settings: Settings) -> None:
    settings = http_settings.model_copy(update={"http_max_redirects": 20})
    result = fetch_once(settings, env.server.redirect_loop("/round"))
    assert result.error_class == errors.TOO_MANY_REDIRECTS and "loop" in (result.error_message or "")
    assert len(env.server.requests_to("/round")) == 1  # /round -> /round-again -> /round: stopped


# --- the SSRF guard ------------------------------------------------------------------------------------------
@pytest.fixture
def guarded(http_settings: Settings) -> Settings:
    return http_settings.model_copy(update={"allow_private_addresses": False})


@pytest.mark.parametrize(
    "make_url",
    [
        lambda s: s.url("/feed.xml"),  # 127.0.0.1
        lambda s: s.url("/feed.xml").replace("127.0.0.1", "localhost"),  # a name that resolves to loopback
        lambda s: "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        lambda s: "http://10.0.0.1/feed.xml",
        lambda s: "http://[::1]:1/feed.xml",
        lambda s: "http://[::ffff:127.0.0.1]:1/feed.xml",
    ],
)
def test_private_addresses_are_refused(server: FeedServer, guarded: Settings, make_url) -> None:  # type: ignore
    server.serve_bytes("/feed.xml", FEED)
    started = time.monotonic()
    result = fetch_once(guarded, make_url(server))
    assert (result.status, result.error_class, result.http_status) == ("error", errors.FORBIDDEN_ADDRESS, None)
    assert "allow_private_addresses" in (result.error_message or "")
    assert server.requests == []  # refused before any connection
    assert time.monotonic() - started < 1


def test_a_redirect_to_a_private_address_is_refused(guarded: Settings) -> None:
    """The first hop goes to a trusted address (127.0.0.2 stands in for a public server), its redirect
    to 127.0.0.1 is refused: every hop's connection is checked, not only the first URL."""
    with FeedServer() as inner, FeedServer(host="127.0.0.2") as outer:
        target = inner.serve_bytes("/secret.xml", FEED)
        first = outer.redirect("/feed.xml", target)
        allowed = fetch_once(guarded, outer.serve_bytes("/ok.xml", FEED), trusted=("127.0.0.2/32",))
        assert allowed.status == "ok"
        result = fetch_once(guarded, first, trusted=("127.0.0.2/32",))
        assert (result.error_class, result.http_status) == (errors.FORBIDDEN_ADDRESS, 302)
        assert inner.requests == [] and len(outer.requests_to("/feed.xml")) == 1
