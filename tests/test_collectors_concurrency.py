"""Concurrent polling against real servers on loopback addresses: 127.0.0.1, 127.0.0.2... are different hosts
(a host is the URL's host name, any port). Each server answers after a delay and counts the requests it
answers at once; one meter counts across all of them.

The timing bounds are structural (one wave of answers vs several), with margins for a loaded machine."""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path

from collect_support import configure, rss
from collectors.collect import collect
from core.settings import Settings
from feedserver import FeedServer, Meter

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=timezone.utc)
DELAY = 0.6  # each answer takes this long
FEEDS = 6


def run(settings: Settings, tmp_path: Path, servers: list[FeedServer], **overrides: object) -> tuple[float, int]:
    feeds = {
        f"feed-{i}": servers[i % len(servers)].slow(f"/feed-{i}.xml", rss([(i, "Mon, 02 Mar 2026 07:00:00 GMT")]), DELAY)
        for i in range(FEEDS)
    }
    settings = configure(settings, tmp_path, feeds, http_total_timeout=10.0, http_read_timeout=5.0, **overrides)
    started = time.monotonic()
    summary = collect(settings, run_id="run", now=NOW)
    elapsed = time.monotonic() - started
    assert (summary.feeds, summary.ok, summary.new_articles) == (FEEDS, FEEDS, FEEDS)
    return elapsed, summary.ok


def test_one_host_gets_at_most_per_host_requests_at_once(settings: Settings, tmp_path: Path) -> None:
    with FeedServer() as server:
        elapsed, _ = run(settings, tmp_path, [server], fetch_concurrency=8, fetch_per_host=2)
    assert server.meter.max_in_flight == 2
    assert elapsed >= FEEDS / 2 * DELAY * 0.95, elapsed  # three waves of two


def test_a_run_over_many_hosts_takes_about_the_slowest_host_not_the_sum(settings: Settings, tmp_path: Path) -> None:
    meter = Meter()
    with ExitStack() as stack:
        servers = [stack.enter_context(FeedServer(host=f"127.0.0.{i + 2}", meter=meter)) for i in range(FEEDS)]
        elapsed, _ = run(settings, tmp_path, servers, fetch_concurrency=8, fetch_per_host=2)
    assert meter.max_in_flight == FEEDS and all(s.meter.max_in_flight == 1 for s in servers)
    # all in flight at once (above) is the proof; the clock only rules out the sum (3.6 s one after the other;
    # one wave is 0.6 s, with room for a loaded machine)
    assert elapsed < FEEDS * DELAY * 0.75, elapsed


def test_the_global_limit_holds_across_hosts(settings: Settings, tmp_path: Path) -> None:
    meter = Meter()
    with ExitStack() as stack:
        servers = [stack.enter_context(FeedServer(host=f"127.0.0.{i + 2}", meter=meter)) for i in range(FEEDS)]
        elapsed, _ = run(settings, tmp_path, servers, fetch_concurrency=3, fetch_per_host=2)
    assert meter.max_in_flight == 3
    assert elapsed >= 2 * DELAY * 0.95, elapsed


def test_a_busy_host_does_not_hold_up_the_others(settings: Settings, tmp_path: Path) -> None:
    """Five feeds on one host and one on another, two global slots: the lone feed is not queued behind the
    busy host's backlog (host slots are taken before global ones)."""
    meter = Meter()
    with FeedServer(meter=meter) as busy, FeedServer(host="127.0.0.2", meter=meter) as other:
        feeds = {f"busy-{i}": busy.slow(f"/b{i}.xml", rss([(i, "Mon, 02 Mar 2026 07:00:00 GMT")]), DELAY) for i in range(5)}
        feeds["other"] = other.slow("/o.xml", rss([(99, "Mon, 02 Mar 2026 07:00:00 GMT")]), DELAY)
        settings = configure(settings, tmp_path, feeds, http_total_timeout=10.0, http_read_timeout=5.0,
                             fetch_concurrency=2, fetch_per_host=1)
        started = time.monotonic()
        assert collect(settings, run_id="run", now=NOW).ok == 6
        other_started = other.requests_to("/o.xml")[0].at - started
    assert other_started < DELAY, other_started  # in the first wave, beside the busy host's first feed
    assert busy.meter.max_in_flight == 1 and meter.max_in_flight == 2


def test_requests_to_one_host_are_spaced_by_the_host_delay(settings: Settings, tmp_path: Path) -> None:
    with FeedServer() as server:
        feeds = {f"f{i}": server.serve_bytes(f"/f{i}.xml", rss([(i, "Mon, 02 Mar 2026 07:00:00 GMT")])) for i in range(4)}
        settings = configure(settings, tmp_path, feeds, fetch_per_host=2, fetch_host_delay_seconds=0.3)
        assert collect(settings, run_id="run", now=NOW).ok == 4
        starts = sorted(r.at for r in server.requests)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert len(starts) == 4 and min(gaps) >= 0.25, gaps


def test_the_host_delay_counts_from_the_real_start_when_global_slots_are_busy(settings: Settings, tmp_path: Path) -> None:
    """One global slot, held first by a slow feed of another host: the two feeds of the first host wait for
    it, and still start `fetch_host_delay_seconds` apart (not one right after the other once it is free)."""
    with FeedServer() as server, FeedServer(host="127.0.0.2") as other:
        feeds = {"slow-other": other.slow("/slow.xml", rss([(0, "Mon, 02 Mar 2026 07:00:00 GMT")]), DELAY)}
        feeds.update({f"f{i}": server.serve_bytes(f"/f{i}.xml", rss([(i + 1, "Mon, 02 Mar 2026 07:00:00 GMT")]))
                      for i in range(2)})
        settings = configure(settings, tmp_path, feeds, http_total_timeout=10.0, http_read_timeout=5.0,
                             fetch_concurrency=1, fetch_per_host=2, fetch_host_delay_seconds=0.3)
        assert collect(settings, run_id="run", now=NOW).ok == 3
        slow_at = other.requests_to("/slow.xml")[0].at
        starts = sorted(r.at for r in server.requests)
    assert len(starts) == 2 and starts[0] >= slow_at + DELAY * 0.9, (starts, slow_at)  # waited for the slot
    assert starts[1] - starts[0] >= 0.25, starts
