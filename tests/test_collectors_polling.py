"""Polite, adaptive polling through real runs of the collect stage against a feed server on 127.0.0.1:
due-only polls, conditional GET, server hints (Cache-Control max-age, RSS <ttl>, Retry-After), the adaptive
interval, backoff to unhealthy and back, and the silent flag."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import pytest

from collect_support import configure, feeds_by_name, records, rss
from collectors import errors
from collectors.collect import collect
from collectors.schedule import is_silent
from core.settings import Settings
from feedserver import FeedServer

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)


def dated(start: int, stop: int, every: timedelta = timedelta(hours=1), end: datetime = NOW) -> list[tuple[int, str]]:
    """Items start..stop-1, the last one published at `end`, one every `every` before it."""
    return [(n, format_datetime(end - every * (stop - 1 - n), usegmt=True)) for n in range(start, stop)]


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def test_only_due_feeds_are_polled_and_304_keeps_the_schedule_going(
    settings: Settings, tmp_path: Path, server: FeedServer
) -> None:
    settings = configure(settings, tmp_path, {"a": server.serve_bytes("/a.xml", rss(dated(0, 3)))})
    assert collect(settings, run_id="1", now=NOW).ok == 1
    feed = feeds_by_name(settings)["a"]
    assert (feed.next_fetch_at, feed.interval_seconds, feed.health) == (NOW + timedelta(minutes=30), 1800, "ok")
    assert feed.items_per_day == pytest.approx(24.0) and feed.last_new_item_at == NOW

    for minutes in (5, 29):
        assert collect(settings, run_id=f"early-{minutes}", now=NOW + timedelta(minutes=minutes)).feeds == 0
    assert len(server.requests_to("/a.xml")) == 1 and records(settings, "early-5") == {}

    second = collect(settings, run_id="2", now=NOW + timedelta(minutes=30))
    assert (second.feeds, second.not_modified) == (1, 1)
    assert server.requests_to("/a.xml")[1].headers["if-none-match"] == feed.etag
    feed = feeds_by_name(settings)["a"]
    # nothing new: 30 -> 45 minutes; the last new item stays where it was
    assert (feed.interval_seconds, feed.next_fetch_at) == (2700, NOW + timedelta(minutes=75))
    assert feed.last_new_item_at == NOW and feed.last_status == "not_modified"


def test_server_hints_move_the_next_fetch(settings: Settings, tmp_path: Path, server: FeedServer) -> None:
    feeds = {
        "max-age": server.serve_bytes("/cached.xml", rss(dated(0, 2)), headers={"Cache-Control": "max-age=7200"}),
        "ttl": server.serve_bytes("/ttl.xml", rss(dated(10, 12), ttl=180)),
        "rate-limited": server.error("/429.xml", 429, headers={"Retry-After": "10800"}),
        "unavailable": server.error("/503.xml", 503, headers={"Retry-After": "14400"}),
        "hostile-hint": server.error("/forever.xml", 429, headers={"Retry-After": str(10 * 365 * 86400)}),
    }
    settings = configure(settings, tmp_path, feeds)
    collect(settings, run_id="hints", now=NOW)
    got = {name: (f.next_fetch_at - NOW, f.schedule_reason, f.last_error_class) for name, f in feeds_by_name(settings).items()}
    assert got == {
        "max-age": (timedelta(hours=2), "max_age", None),
        "ttl": (timedelta(hours=3), "ttl", None),
        "rate-limited": (timedelta(hours=3), "retry_after", errors.RATE_LIMITED),
        "unavailable": (timedelta(hours=4), "retry_after", errors.HTTP_5XX),
        "hostile-hint": (timedelta(hours=24), "retry_after", errors.RATE_LIMITED),  # capped at the upper bound
    }
    # before the hint runs out, nothing is asked again
    assert collect(settings, run_id="too-soon", now=NOW + timedelta(hours=1, minutes=59)).feeds == 0
    assert len(server.requests_to("/429.xml")) == 1


def test_interval_adapts_to_new_items_within_bounds(settings: Settings, tmp_path: Path, server: FeedServer) -> None:
    settings = configure(settings, tmp_path, {"wire": server.serve_bytes("/wire.xml", rss(dated(0, 5)))},
                         poll_min_interval_minutes=5, poll_max_interval_hours=2)
    now, newest, intervals = NOW, 5, []
    collect(settings, run_id="0", now=now)
    for poll in range(1, 5):  # busy: every poll brings 4 new items
        now = feeds_by_name(settings)["wire"].next_fetch_at
        server.serve_bytes("/wire.xml", rss(dated(0, newest + 4, end=now)))
        newest += 4
        summary = collect(settings, run_id=f"busy-{poll}", now=now)
        assert summary.new_articles == 4
        intervals.append(feeds_by_name(settings)["wire"].interval_seconds)
    assert intervals == [900, 450, 300, 300]  # halves down to the 5-minute floor
    intervals = []
    for poll in range(1, 10):  # quiet: nothing new (304)
        now = feeds_by_name(settings)["wire"].next_fetch_at
        assert collect(settings, run_id=f"quiet-{poll}", now=now).not_modified == 1
        intervals.append(feeds_by_name(settings)["wire"].interval_seconds)
    # grows x1.5 up to the 2-hour cap
    assert intervals == [450, 675, 1012, 1518, 2277, 3416, 5124, 7200, 7200]


def test_backoff_then_unhealthy_then_recovery(settings: Settings, tmp_path: Path, server: FeedServer) -> None:
    settings = configure(settings, tmp_path, {"broken": server.error("/broken.xml", 500)},
                         unhealthy_after_failures=3, unhealthy_retry_hours=48)
    now, delays, health = NOW, [], []
    for attempt in range(5):
        summary = collect(settings, run_id=f"try-{attempt}", now=now)
        assert (summary.feeds, summary.errors) == (1, 1)
        feed = feeds_by_name(settings)["broken"]
        delays.append(feed.next_fetch_at - now)
        health.append(feed.health)
        # not polled again before it is due
        assert collect(settings, run_id=f"early-{attempt}", now=feed.next_fetch_at - timedelta(seconds=1)).feeds == 0
        now = feed.next_fetch_at
    assert delays == [timedelta(minutes=30), timedelta(minutes=60), timedelta(hours=48), timedelta(hours=48),
                      timedelta(hours=48)]
    assert health == ["failing", "failing", "unhealthy", "unhealthy", "unhealthy"]
    feed = feeds_by_name(settings)["broken"]
    assert feed.consecutive_failures == 5 and feed.enabled and feed.last_error_class == errors.HTTP_5XX
    assert len(server.requests_to("/broken.xml")) == 5

    server.serve_bytes("/broken.xml", rss(dated(0, 2)))  # the outlet fixes its feed
    assert collect(settings, run_id="fixed", now=now).ok == 1
    feed = feeds_by_name(settings)["broken"]
    assert (feed.health, feed.consecutive_failures, feed.last_error_class) == ("ok", 0, None)
    assert feed.next_fetch_at == now + timedelta(minutes=30)  # its interval was kept through the failures


def test_a_feed_that_goes_quiet_is_flagged_silent(settings: Settings, tmp_path: Path, server: FeedServer) -> None:
    # four items a day (every 6 h): usual gap 6 h, silent after 10 gaps = 60 h without a new item
    url = server.serve_bytes("/quiet.xml", rss(dated(0, 8, every=timedelta(hours=6))))
    settings = configure(settings, tmp_path, {"quiet": url})
    collect(settings, run_id="start", now=NOW)
    now = NOW
    for run in range(12):  # the outlet publishes nothing more; we keep polling
        now = feeds_by_name(settings)["quiet"].next_fetch_at
        collect(settings, run_id=f"poll-{run}", now=now)
    feed = feeds_by_name(settings)["quiet"]
    assert feed.items_per_day == pytest.approx(4.0) and feed.last_new_item_at == NOW and feed.health == "ok"
    assert not is_silent(feed.last_new_item_at, feed.items_per_day, NOW + timedelta(hours=59), settings)
    assert is_silent(feed.last_new_item_at, feed.items_per_day, NOW + timedelta(hours=61), settings)
