"""Where an alert goes and whether it goes now: routes, quiet hours (in the route's time zone), budgets.

An alert that a route holds (quiet hours, over its hourly budget) is never dropped: it stays in the outbox
with status `held` until the route's next digest carries it (`alerts.digest`).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.models import Alert
from core.settings import AlertRoute, Settings

# Kinds a route's budget counts and its quiet hours hold. Coverage alerts (ops) and digests always go.
HOLDABLE = ("new_story", "story_update", "story_merged", "watch_match", "spike")


def _clock(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def quiet_window(route: AlertRoute) -> tuple[time, time] | None:
    if not route.quiet_hours:
        return None
    start, end = route.quiet_hours.split("-")
    return _clock(start), _clock(end)


def is_quiet(route: AlertRoute, now: datetime) -> bool:
    """Whether `now` falls in the route's quiet hours, read on the route's own clock (DST included)."""
    window = quiet_window(route)
    if window is None:
        return False
    start, end = window
    local = now.astimezone(ZoneInfo(route.timezone)).time()
    if start <= end:
        return start <= local < end
    return local >= start or local < end  # over midnight: 22:00-07:00


def _local_boundaries(route: AlertRoute, clock: time, before: datetime, days: int = 3) -> list[datetime]:
    zone = ZoneInfo(route.timezone)
    local_day = before.astimezone(zone).date()
    moments = []
    for back in range(days):
        day = local_day - timedelta(days=back)
        moments.append(datetime.combine(day, clock, tzinfo=zone).astimezone(before.tzinfo))
    return moments


def digest_boundaries(route: AlertRoute, now: datetime) -> list[datetime]:
    """The digest times of the route in the last three days up to `now`, newest first: its daily
    `digest_at` and the end of its quiet hours (UTC-aware)."""
    clocks = [_clock(route.digest_at)] if route.digest_at else []
    window = quiet_window(route)
    if window is not None:
        clocks.append(window[1])
    moments = {m for clock in clocks for m in _local_boundaries(route, clock, now) if m <= now}
    return sorted(moments, reverse=True)


def sent_in_last_hour(session: Session, route: AlertRoute, now: datetime) -> int:
    """Alerts of the route (pending or sent, not held) created in the hour before `now`: its budget's use."""
    return session.scalar(
        select(func.count()).select_from(Alert).where(
            Alert.route == route.name,
            Alert.kind.in_(HOLDABLE),
            Alert.status.in_(("pending", "sent")),
            Alert.created_at > now - timedelta(hours=1),
            Alert.created_at <= now,
        )
    ) or 0


def place(session: Session, settings: Settings, alert: Alert, now: datetime, route: AlertRoute | None = None) -> None:
    """Set the alert's route and channel, and hold it (status `held`) when the route is quiet or its budget
    for the hour is spent. `route` defaults to the route of the alert's topic and severity."""
    route = route or settings.route_for(alert.topic, alert.severity or "normal")
    alert.route = route.name
    alert.channel = route.channel
    alert.status = alert.status or "pending"
    if alert.kind not in HOLDABLE:
        return
    if is_quiet(route, now):
        alert.status, alert.held_reason = "held", "quiet_hours"
    elif route.budget_per_hour is not None and sent_in_last_hour(session, route, now) >= route.budget_per_hour:
        alert.status, alert.held_reason = "held", "budget"
