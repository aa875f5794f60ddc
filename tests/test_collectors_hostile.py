"""One run against hostile servers on 127.0.0.1 beside well-behaved feeds: every hostile feed is cut off in
time and memory and classified, the good feeds of the same run are stored as if nothing happened, and
`flankwatch feeds` shows the failures afterwards."""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from collect_support import configure, feeds_by_name, records, rss
from collectors import errors
from collectors.collect import collect
from core.db import session_scope
from core.models import Article
from core.settings import Settings, get_settings
from feedserver import HTML_PAGE, FeedServer, gzip_bomb

MAX_BYTES = 500_000
# tracemalloc slows Python down several times: deadlines with room for it on a loaded machine
TIMEOUTS = {"http_total_timeout": 3.0, "http_read_timeout": 1.0}
INVALID_UTF8 = (
    b'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>LRT</title>'
    b"<item><title>R\xc5\xabdninkai \xff\xfe brigade</title><link>https://www.lrt.lt/en/1</link>"
    b"<pubDate>Mon, 02 Mar 2026 07:00:00 GMT</pubDate></item></channel></rss>"
)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def hostile_feeds(server: FeedServer) -> dict[str, str]:
    return {
        "good-1": server.serve_bytes("/good-1.xml", rss([(1, "Mon, 02 Mar 2026 07:00:00 GMT"), (2, "Mon, 02 Mar 2026 06:00:00 GMT")])),
        "good-2": server.serve_bytes("/good-2.xml", rss([(3, "Mon, 02 Mar 2026 05:00:00 GMT")])),
        "trickle": server.trickle("/trickle.xml", interval=0.05),
        "stall": server.trickle("/stall.xml", interval=30),
        "endless": server.endless("/endless.xml"),
        "gzip-bomb": server.gzip_bomb("/bomb.xml", gzip_bomb(512 * 1024 * 1024)),
        "redirect-loop": server.redirect_loop("/loop.xml"),
        "rate-limited": server.error("/429.xml", 429, headers={"Retry-After": "7200"}),
        "server-error": server.error("/500.xml", 500),
        "html-as-rss": server.serve_bytes("/html.xml", HTML_PAGE, content_type="application/rss+xml"),
        "png-as-rss": server.serve_bytes("/png.xml", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 50),
        "billion-laughs": server.billion_laughs("/lol.xml"),
        "invalid-utf8": server.serve_bytes("/utf8.xml", INVALID_UTF8),
    }


EXPECTED = {
    "good-1": ("ok", None),
    "good-2": ("ok", None),
    "trickle": ("error", errors.TIMEOUT),
    "stall": ("error", errors.TIMEOUT),
    "endless": ("error", errors.TOO_LARGE),
    "gzip-bomb": ("error", errors.TOO_LARGE),
    "redirect-loop": ("error", errors.TOO_MANY_REDIRECTS),
    "rate-limited": ("error", errors.RATE_LIMITED),
    "server-error": ("error", errors.HTTP_5XX),
    "html-as-rss": ("error", errors.NOT_A_FEED),
    "png-as-rss": ("error", errors.PARSE_ERROR),
    "billion-laughs": ("error", errors.XML_ENTITIES),
    "invalid-utf8": ("ok", None),  # read, the bad bytes replaced: one byte must not cost a feed
}


def test_hostile_servers_are_bounded_and_classified_and_the_rest_of_the_run_is_unaffected(
    settings: Settings, tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    feeds = hostile_feeds(server)
    settings = configure(settings, tmp_path, feeds, http_max_bytes=MAX_BYTES, fetch_concurrency=16,
                         fetch_per_host=16, **TIMEOUTS)  # one host serves them all; its limit is tested elsewhere
    # the run's clock: two days ago, so that the CLI (on the real clock) has something to say about silence
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=2)

    tracemalloc.start()
    started = time.monotonic()
    try:
        summary = collect(settings, run_id="hostile", now=now)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert elapsed < 8, elapsed  # every hostile server is cut at the 3-second total deadline or the size cap
    assert peak < 20 * 1024 * 1024, peak  # a 512 MB bomb and an endless body cost a few times the cap at most
    got = {name: (r.status, r.error_class) for name, r in records(settings, "hostile").items()}
    assert got == EXPECTED
    assert (summary.ok, summary.errors, summary.new_articles) == (3, len(feeds) - 3, 4)
    with session_scope(settings) as session:
        titles = set(session.scalars(select(Article.title)))
    assert {"Item 1", "Item 2", "Item 3"} <= titles
    assert "Rūdninkai \ufffd\ufffd brigade" in titles  # the good letters kept, the two bad bytes replaced

    state = feeds_by_name(settings)
    assert state["rate-limited"].next_fetch_at == now + timedelta(hours=2)  # its Retry-After
    assert state["server-error"].next_fetch_at == now + timedelta(minutes=30)  # backoff starts at the interval
    assert {state[n].health for n in EXPECTED if EXPECTED[n][0] == "error"} == {"failing"}

    # `flankwatch feeds` on the same state database shows health, error classes, rhythm, next fetch, silence
    monkeypatch.setenv("FLANKWATCH_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("FLANKWATCH_FEEDS_FILE", str(settings.feeds_file))
    monkeypatch.setenv("COLUMNS", "260")
    get_settings.cache_clear()
    try:
        from flankwatch.cli import app

        output = CliRunner().invoke(app, ["feeds"], catch_exceptions=False).output
    finally:
        get_settings.cache_clear()
    lines = {line.split("│")[1].strip(): line for line in output.splitlines() if line.count("│") > 5}
    for name, (status, error_class) in EXPECTED.items():
        line = lines[name]
        assert ("failing" if error_class else "ok") in line, line
        if error_class:
            assert error_class in line and f"{now + timedelta(minutes=30):%Y-%m-%d %H:%M}" in line or name == "rate-limited"
    assert "retry_after" in lines["rate-limited"] and f"{now + timedelta(hours=2):%Y-%m-%d %H:%M}" in lines["rate-limited"]
    assert f"{now:%Y-%m-%d %H:%M}" in lines["good-1"] and "24.0" in lines["good-1"]  # last success, items/day
    assert "silent" in lines["good-1"] and "silent" not in lines["server-error"]  # 2 days without a new item
    assert f"{len(feeds)} feeds: 3 ok, {len(feeds) - 3} failing, 0 unhealthy, 1 silent" in output


def test_a_hostile_feed_does_not_stall_the_next_run(settings: Settings, tmp_path: Path, server: FeedServer) -> None:
    """After the failure, the hostile feeds back off; the good feeds keep their own rhythm."""
    feeds = hostile_feeds(server)
    settings = configure(settings, tmp_path, feeds, http_max_bytes=MAX_BYTES, fetch_concurrency=16, fetch_per_host=16,
                         **TIMEOUTS)
    now = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
    collect(settings, run_id="1", now=now)
    server.serve_bytes("/good-1.xml", rss([(4, format_datetime(now, usegmt=True)), (1, "Mon, 02 Mar 2026 07:00:00 GMT")]))
    started = time.monotonic()
    second = collect(settings, run_id="2", now=now + timedelta(minutes=30))
    assert time.monotonic() - started < 8
    assert second.new_articles == 1 and second.ok + second.not_modified == 3  # good-1, good-2, invalid-utf8
    assert "rate-limited" not in records(settings, "2")  # its Retry-After (2 h) is not over yet
    assert records(settings, "2")["server-error"].error_class == errors.HTTP_5XX
    assert feeds_by_name(settings)["server-error"].next_fetch_at == now + timedelta(minutes=90)
