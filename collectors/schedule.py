"""When to poll a feed next, how healthy it is, and whether it has gone silent. Pure functions of a feed's
state, the outcome of one poll and the settings; `collectors.collect` applies them.

After a success (200 or 304) the feed's adaptive interval changes by how many new articles the poll stored:
none: x1.5, 1 or 2: unchanged, `MANY_NEW` or more: x0.5, always within [`poll_min_interval_minutes`,
`poll_max_interval_hours`]; the first success starts at `INITIAL_INTERVAL`. The next poll is one interval
later, or later still when the server asks for it (`Cache-Control: max-age`, RSS `<ttl>`), never later than
the upper bound.

After a failure the interval is kept and the next try backs off exponentially: interval x 2^(failures-1),
within the same bounds, or later when a 429/503 says `Retry-After`. From `unhealthy_after_failures` failures
in a row the feed is `unhealthy` and tried every `unhealthy_retry_hours` only (it is never deleted); one
success makes it `ok` again."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.settings import Settings

INITIAL_INTERVAL = timedelta(minutes=30)
MANY_NEW = 3  # new articles in one poll from which the interval halves
GROW = 1.5
SHRINK = 0.5
MIN_SILENCE = timedelta(days=1)  # no feed is silent sooner, however busy it usually is

OK, FAILING, UNHEALTHY = "ok", "failing", "unhealthy"


@dataclass(frozen=True)
class Hints:
    """What the server said about when to come back, in seconds."""

    max_age: float | None = None
    ttl: float | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Schedule:
    """The feed's schedule after one poll."""

    next_fetch_at: datetime
    interval_seconds: int
    reason: str  # interval | max_age | ttl | backoff | retry_after | unhealthy
    health: str  # ok | failing | unhealthy


def bounds(settings: Settings) -> tuple[float, float]:
    """Shortest and longest interval in seconds (the longest never below the shortest)."""
    low = max(settings.poll_min_interval_minutes * 60.0, 1.0)
    return low, max(settings.poll_max_interval_hours * 3600.0, low)


def _clamp(seconds: float, settings: Settings) -> float:
    low, high = bounds(settings)
    return min(max(seconds, low), high)


def adapt_interval(current: int | None, new_items: int, settings: Settings) -> int:
    """The adaptive interval after a successful poll that stored `new_items` new articles."""
    if current is None:
        return round(_clamp(INITIAL_INTERVAL.total_seconds(), settings))
    factor = GROW if new_items == 0 else SHRINK if new_items >= MANY_NEW else 1.0
    return round(_clamp(current * factor, settings))


def after_success(current_interval: int | None, new_items: int, now: datetime, hints: Hints,
                  settings: Settings) -> Schedule:
    interval = adapt_interval(current_interval, new_items, settings)
    _, high = bounds(settings)
    delay, reason = float(interval), "interval"
    for name, hint in (("max_age", hints.max_age), ("ttl", hints.ttl)):
        if hint is not None and min(hint, high) > delay:
            delay, reason = min(hint, high), name
    return Schedule(now + timedelta(seconds=delay), interval, reason, OK)


def after_failure(current_interval: int | None, failures: int, now: datetime, hints: Hints,
                  settings: Settings) -> Schedule:
    """`failures`: failures in a row, this one included."""
    interval = current_interval or round(_clamp(INITIAL_INTERVAL.total_seconds(), settings))
    _, high = bounds(settings)
    if failures >= max(1, settings.unhealthy_after_failures):
        delay, reason, health = max(settings.unhealthy_retry_hours * 3600.0, 1.0), "unhealthy", UNHEALTHY
    else:
        delay = _clamp(interval * 2.0 ** min(max(failures - 1, 0), 30), settings)
        reason, health = "backoff", FAILING
    if hints.retry_after is not None and min(hints.retry_after, high) > delay:
        delay, reason = min(hints.retry_after, high), "retry_after"
    return Schedule(now + timedelta(seconds=delay), interval, reason, health)


def is_due(next_fetch_at: datetime | None, now: datetime) -> bool:
    return next_fetch_at is None or next_fetch_at <= now


def rhythm(dates: Iterable[datetime]) -> float | None:
    """Items per day in a feed document, from its entries' dates: (n - 1) / (newest - oldest). None with
    fewer than two distinct dates. The feed's own list is its rhythm: it needs no polling history, a backlog
    on the first poll does not inflate it, and it does not decay while the feed is silent."""
    moments = sorted(set(dates))
    if len(moments) < 2:
        return None
    span_days = (moments[-1] - moments[0]).total_seconds() / 86400.0
    if span_days <= 0:
        return None
    return (len(moments) - 1) / max(span_days, 1 / 1440)  # at most one item a minute


def silent_since(last_new_item_at: datetime | None, items_per_day: float | None, settings: Settings
                 ) -> datetime | None:
    """From when the feed counts as silent: `silent_after_gaps` of its usual gaps (1 / items per day) after
    its last new article, at least a day. None when its rhythm or last new article is unknown."""
    if last_new_item_at is None or not items_per_day or items_per_day <= 0:
        return None
    gap = timedelta(days=min(1 / items_per_day, 3650.0))
    return last_new_item_at + max(gap * settings.silent_after_gaps, MIN_SILENCE)


def is_silent(last_new_item_at: datetime | None, items_per_day: float | None, now: datetime,
              settings: Settings) -> bool:
    since = silent_since(last_new_item_at, items_per_day, settings)
    return since is not None and now >= since
