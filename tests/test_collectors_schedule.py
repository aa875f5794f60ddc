"""The schedule's pure rules: adaptive interval within bounds, server hints, backoff, health, rhythm, silence;
and the header and address rules it relies on."""

from __future__ import annotations

import ipaddress
from datetime import datetime, timedelta, timezone

import pytest

from collectors import schedule
from collectors.headers import max_age_seconds, retry_after_seconds
from collectors.politeness import host_key
from collectors.safety import AddressPolicy, is_public
from core.settings import Settings

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings(poll_min_interval_minutes=5, poll_max_interval_hours=24, unhealthy_after_failures=4,
                    unhealthy_retry_hours=48, silent_after_gaps=10)
MIN, MAX = 5 * 60, 24 * 3600


def test_first_success_starts_at_the_initial_interval() -> None:
    assert schedule.adapt_interval(None, 40, SETTINGS) == schedule.INITIAL_INTERVAL.total_seconds()


def test_interval_shrinks_with_many_new_items_and_grows_with_none_within_bounds() -> None:
    busy = [1800]
    for _ in range(10):
        busy.append(schedule.adapt_interval(busy[-1], 12, SETTINGS))
    assert busy[1:4] == [900, 450, MIN] and busy[-1] == MIN
    quiet = [1800]
    for _ in range(20):
        quiet.append(schedule.adapt_interval(quiet[-1], 0, SETTINGS))
    assert quiet[1:3] == [2700, 4050] and quiet[-1] == MAX
    assert all(a <= b for a, b in zip(quiet, quiet[1:])) and all(a >= b for a, b in zip(busy, busy[1:]))
    assert schedule.adapt_interval(1800, 1, SETTINGS) == schedule.adapt_interval(1800, 2, SETTINGS) == 1800


def test_success_waits_for_the_longest_hint_capped_at_the_upper_bound() -> None:
    plain = schedule.after_success(1800, 1, NOW, schedule.Hints(), SETTINGS)
    assert (plain.next_fetch_at, plain.reason, plain.health) == (NOW + timedelta(minutes=30), "interval", "ok")
    short_hint = schedule.after_success(1800, 1, NOW, schedule.Hints(max_age=60), SETTINGS)
    assert short_hint.next_fetch_at == NOW + timedelta(minutes=30)  # a hint never makes us poll sooner
    cached = schedule.after_success(1800, 1, NOW, schedule.Hints(max_age=7200, ttl=3600), SETTINGS)
    assert (cached.next_fetch_at, cached.reason, cached.interval_seconds) == (NOW + timedelta(hours=2), "max_age", 1800)
    ttl = schedule.after_success(1800, 1, NOW, schedule.Hints(max_age=600, ttl=5400), SETTINGS)
    assert (ttl.next_fetch_at, ttl.reason) == (NOW + timedelta(minutes=90), "ttl")
    huge = schedule.after_success(1800, 1, NOW, schedule.Hints(max_age=30 * 86400), SETTINGS)
    assert huge.next_fetch_at == NOW + timedelta(hours=24)


def test_backoff_doubles_then_the_feed_is_unhealthy_and_tried_rarely() -> None:
    delays = [schedule.after_failure(1800, n, NOW, schedule.Hints(), SETTINGS) for n in range(1, 7)]
    assert [d.next_fetch_at - NOW for d in delays[:3]] == [timedelta(minutes=m) for m in (30, 60, 120)]
    assert [d.health for d in delays] == ["failing"] * 3 + ["unhealthy"] * 3
    assert {d.next_fetch_at - NOW for d in delays[3:]} == {timedelta(hours=48)}
    assert {d.reason for d in delays[3:]} == {"unhealthy"} and {d.interval_seconds for d in delays} == {1800}
    capped = schedule.after_failure(4 * 3600, 3, NOW, schedule.Hints(), SETTINGS)
    assert capped.next_fetch_at == NOW + timedelta(hours=16)
    capped = schedule.after_failure(12 * 3600, 3, NOW, schedule.Hints(), SETTINGS)
    assert capped.next_fetch_at == NOW + timedelta(hours=24)  # the upper bound caps backoff too


def test_retry_after_is_honoured_when_later_than_the_backoff() -> None:
    later = schedule.after_failure(1800, 1, NOW, schedule.Hints(retry_after=7200), SETTINGS)
    assert (later.next_fetch_at, later.reason, later.health) == (NOW + timedelta(hours=2), "retry_after", "failing")
    sooner = schedule.after_failure(1800, 1, NOW, schedule.Hints(retry_after=10), SETTINGS)
    assert (sooner.next_fetch_at, sooner.reason) == (NOW + timedelta(minutes=30), "backoff")
    hostile = schedule.after_failure(1800, 1, NOW, schedule.Hints(retry_after=10 * 365 * 86400), SETTINGS)
    assert hostile.next_fetch_at == NOW + timedelta(hours=24)


def test_due() -> None:
    assert schedule.is_due(None, NOW) and schedule.is_due(NOW, NOW)
    assert not schedule.is_due(NOW + timedelta(seconds=1), NOW)


def test_rhythm_from_entry_dates() -> None:
    hourly = [NOW - timedelta(hours=h) for h in range(25)]
    assert schedule.rhythm(hourly) == pytest.approx(24.0)
    assert schedule.rhythm([NOW]) is None and schedule.rhythm([NOW, NOW]) is None and schedule.rhythm([]) is None
    weekly = [NOW - timedelta(days=7 * w) for w in range(5)]
    assert schedule.rhythm(weekly) == pytest.approx(1 / 7)


def test_silence_is_judged_by_the_feeds_own_rhythm() -> None:
    # 2 items a day: usual gap 12 h, silent after 10 gaps = 5 days
    assert not schedule.is_silent(NOW - timedelta(days=4), 2.0, NOW, SETTINGS)
    assert schedule.is_silent(NOW - timedelta(days=6), 2.0, NOW, SETTINGS)
    # a busy wire (100 a day) is not silent after a quiet night: at least a day
    assert not schedule.is_silent(NOW - timedelta(hours=20), 100.0, NOW, SETTINGS)
    assert schedule.is_silent(NOW - timedelta(hours=25), 100.0, NOW, SETTINGS)
    # a weekly feed may rest for two months
    assert not schedule.is_silent(NOW - timedelta(days=60), 1 / 7, NOW, SETTINGS)
    # unknown rhythm or never a new item: not judged
    assert not schedule.is_silent(None, 2.0, NOW, SETTINGS) and not schedule.is_silent(NOW - timedelta(days=99), None, NOW, SETTINGS)
    assert not schedule.is_silent(NOW - timedelta(days=99), 1e-12, NOW, SETTINGS)  # no overflow


@pytest.mark.parametrize(
    ("cache_control", "age", "expected"),
    [
        ("max-age=600", None, 600.0),
        ("public, max-age=3600, must-revalidate", "100", 3500.0),
        ("s-maxage=60", None, None),
        ("no-cache, max-age=600", None, None),
        ("max-age=10", "99", 0.0),
        ("max-age=999999999999", None, 7 * 86400.0),
        (None, None, None),
        ("max-age=abc", None, None),
    ],
)
def test_max_age(cache_control: str | None, age: str | None, expected: float | None) -> None:
    assert max_age_seconds(cache_control, age) == expected


def test_retry_after() -> None:
    assert retry_after_seconds("120") == 120.0
    assert retry_after_seconds("Sun, 01 Mar 2026 12:10:00 GMT", "Sun, 01 Mar 2026 12:00:00 GMT") == 600.0
    assert retry_after_seconds("Sun, 01 Mar 2026 12:10:00 GMT", None, now=NOW) == 600.0
    assert retry_after_seconds("Sun, 01 Mar 2026 11:00:00 GMT", None, now=NOW) == 0.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None
    assert retry_after_seconds("99999999999") == 7 * 86400.0


def test_host_key_is_the_host_name_without_port_or_scheme() -> None:
    assert host_key("https://WWW.Tagesschau.de:8443/x") == host_key("http://www.tagesschau.de/y") == "www.tagesschau.de"
    assert host_key("http://127.0.0.2:8000/") != host_key("http://127.0.0.1:8000/")
    assert host_key("not a url") == ""


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False),
        ("172.16.0.1", False), ("192.168.1.1", False), ("169.254.169.254", False), ("100.64.0.1", False),
        ("0.0.0.0", False), ("224.0.0.1", False), ("::1", False), ("fe80::1", False), ("fd00::1", False),
        ("::ffff:127.0.0.1", False), ("::ffff:93.184.216.34", True),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public(ipaddress.ip_address(address)) is public
    assert AddressPolicy.build(True).allows(ipaddress.ip_address(address))


def test_trusted_networks() -> None:
    policy = AddressPolicy.build(False, ["127.0.0.2/32", "fd00::/8"])
    assert policy.allows(ipaddress.ip_address("127.0.0.2")) and policy.allows(ipaddress.ip_address("fd12::1"))
    assert not policy.allows(ipaddress.ip_address("127.0.0.1"))
