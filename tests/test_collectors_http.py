"""fetch_feed against a real local HTTP server: conditional GET and every way a fetch can fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from collectors import errors
from collectors.http import FetchResult, fetch_feed, make_client
from core.settings import Settings
from feedserver import FeedServer, closed_port_url


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
    )


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


@dataclass
class Env:
    server: FeedServer
    client: httpx.Client
    settings: Settings

    def fetch(self, url: str, **validators: str | None) -> FetchResult:
        return fetch_feed(self.client, url, settings=self.settings, **validators)


@pytest.fixture
def env(server: FeedServer, http_settings: Settings) -> Iterator[Env]:
    with make_client(http_settings) as client:
        yield Env(server, client, http_settings)


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
