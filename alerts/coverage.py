"""Coverage health: tell the ops route when a key outlet (feeds.yaml `key: true`) stops delivering.

A key feed is `failing` (its last three polls failed, or the collector calls it unhealthy), else `silent` (no new article for
longer than its own rhythm allows, `collectors.schedule.is_silent`), else `paywalled` (most of its last
day's articles were teasers), else `ok`. Only a change alerts: `Feed.coverage_state` keeps the state last
alerted, and is written in the same transaction as the alert, so a feed that stays silent alerts once, and
a change back to `ok` alerts once as "recovered".

Ids are deterministic and built from the feed's own data, never from the clock: a re-run after a crash
(or a second run at the same time) computes the same id and finds the row instead of writing another.

Threads: an incident (from leaving `ok` to coming back) is one Slack thread, `thread_key`
`feed:<id>:<start of the incident>`. Its first alert opens it; a change of state within it (failing, then
silent) replies and is also shown in the channel; the recovery replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from alerts import outbox
from alerts.blocks import FALLBACK_MAX, context, field, header, section, utc
from alerts.escape import clean_text, escape_mrkdwn, truncate
from alerts.routing import place
from alerts.threads import thread_parent
from collectors.schedule import OK as HEALTH_OK
from collectors.schedule import is_silent, silent_since
from core.ids import stable_id
from core.models import Alert, Article, Feed
from core.settings import AlertRoute, Settings

OK, FAILING, SILENT, PAYWALLED = "ok", "failing", "silent", "paywalled"
PAYWALL_WINDOW = timedelta(hours=24)
PAYWALL_MIN_ARTICLES = 3  # fewer articles in the window say nothing about a paywall
LAST_ERROR_MAX = 300
COVERAGE_FAILURES = 3  # failed polls in a row before a key feed counts as failing
HEADLINES = {FAILING: "is failing", SILENT: "is silent", PAYWALLED: "looks paywalled", OK: "recovered"}
SEVERITIES = {FAILING: "high", SILENT: "high", PAYWALLED: "normal", OK: "normal"}


@dataclass(frozen=True)
class Coverage:
    """A key feed's state now, and the moment that identifies its episode (None for `ok`).

    failing: the last success (the failures came after it; the feed's creation if it never succeeded);
    silent: when the silence began (`silent_since`); paywalled: the first teaser fetched in the window.
    """

    state: str
    since: datetime | None = None
    fetched: int = 0  # articles fetched in the paywall window
    teasers: int = 0  # of them, paywall_suspected


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def _paywall_counts(session: Session, feed: Feed, now: datetime) -> tuple[int, int, datetime | None]:
    """(articles fetched in the window, teasers among them, the first teaser's fetch time)."""
    window = (Article.feed_id == feed.id, Article.fetched_at > now - PAYWALL_WINDOW, Article.fetched_at <= now)
    fetched, teasers = session.execute(
        select(func.count(Article.id), func.coalesce(func.sum(case((Article.paywall_suspected, 1), else_=0)), 0))
        .where(*window)
    ).one()
    first = session.scalar(select(func.min(Article.fetched_at)).where(*window, Article.paywall_suspected))
    if first is not None and first.tzinfo is None:  # func.min loses the column type on some dialects
        first = first.replace(tzinfo=timezone.utc)
    return int(fetched or 0), int(teasers or 0), first


def coverage_of(session: Session, settings: Settings, feed: Feed, now: datetime) -> Coverage:
    """The coverage state of `feed` at `now` (see the module docstring for the order of the checks)."""
    # One failed poll (a timeout) is not an outage worth waking ops for: failing counts from the
    # `COVERAGE_FAILURES`th failure in a row, or when the collector calls the feed unhealthy.
    failing = (feed.health or HEALTH_OK) != HEALTH_OK and (
        (feed.consecutive_failures or 0) >= COVERAGE_FAILURES or feed.health == "unhealthy"
    )
    if failing:
        return Coverage(FAILING, feed.last_success_at or feed.created_at or now)
    if is_silent(feed.last_new_item_at, feed.items_per_day, now, settings):
        return Coverage(SILENT, silent_since(feed.last_new_item_at, feed.items_per_day, settings))
    fetched, teasers, first = _paywall_counts(session, feed, now)
    if fetched >= PAYWALL_MIN_ARTICLES and teasers >= settings.coverage_paywall_share * fetched and first:
        return Coverage(PAYWALLED, first, fetched, teasers)
    return Coverage(OK, None, fetched, teasers)


def _thread_prefix(feed: Feed) -> str:
    return f"feed:{feed.id}:"


def _last_alert(session: Session, feed: Feed) -> Alert | None:
    """The feed's latest coverage alert (the one that set its current `coverage_state`)."""
    return session.scalars(
        select(Alert)
        .where(Alert.kind == "coverage", Alert.thread_key.startswith(_thread_prefix(feed), autoescape=True))
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .limit(1)
    ).first()


def _incident(session: Session, feed: Feed, previous: str, coverage: Coverage, now: datetime) -> tuple[str, str, bool]:
    """(thread key, the ISO start of the incident, whether it is a new one). An incident starts when the
    feed leaves `ok`; while it lasts, its alerts share the thread of its first one."""
    last = _last_alert(session, feed) if previous != OK else None
    started = (last.detail or {}).get("incident") if last is not None else None
    if last is not None and last.thread_key and (last.detail or {}).get("state") == previous and started:
        return last.thread_key, started, False
    started = _iso(coverage.since or now)
    return f"{_thread_prefix(feed)}{started}", started, True


def _recovered_at(feed: Feed, previous: str, incident: str, now: datetime) -> datetime:
    """When the feed came back: the success that ended the failures, the article that ended the silence;
    else `now`, the run that saw it."""
    moment = {FAILING: feed.last_success_at, SILENT: feed.last_new_item_at}.get(previous)
    if moment is not None and datetime.fromisoformat(incident) < moment <= now:
        return moment
    return now


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _why(feed: Feed, coverage: Coverage, previous: str) -> str:
    """One line saying what the rule saw (our words and numbers only; escaped by the caller)."""
    if coverage.state == FAILING:
        return f"{_plural(feed.consecutive_failures or 0, 'failed poll')} in a row; the feed is {feed.health}."
    if coverage.state == SILENT:
        rate = f"{feed.items_per_day:.1f}" if feed.items_per_day else "?"
        return f"No new article since {utc(feed.last_new_item_at)}; it usually publishes {rate} a day."
    if coverage.state == PAYWALLED:
        return (f"{coverage.teasers} of the {coverage.fetched} articles fetched in the last 24 h gave only a "
                "teaser (paywall suspected).")
    return f"Back to normal after being {previous}."


def _last_error(feed: Feed) -> str:
    if not feed.last_error_class:
        return "none"
    value = escape_mrkdwn(clean_text(feed.last_error_class))
    detail = truncate(escape_mrkdwn(clean_text(feed.last_error)), LAST_ERROR_MAX)
    return f"{value}: {detail}" if detail else value


def coverage_message(feed: Feed, coverage: Coverage, previous: str, since: datetime) -> dict[str, Any]:
    """`{"text": fallback, "blocks": [...]}`; the feed's name and last error are escaped here."""
    title = f"Coverage: {clean_text(feed.name) or 'a key feed'} {HEADLINES[coverage.state]}"
    state = coverage.state if coverage.state != OK else f"ok (was {previous})"
    if coverage.state == FAILING:
        state += f" ({feed.health})"
    rate = f"{feed.items_per_day:.1f}" if feed.items_per_day else "unknown"
    fields = [
        field("State", escape_mrkdwn(state)),
        field("Since", utc(since)),
        field("Last success", utc(feed.last_success_at) if feed.last_success_at else "never"),
        field("Last error", _last_error(feed)),
        field("Items per day", rate),
    ]
    blocks = [
        header(title),
        section(escape_mrkdwn(_why(feed, coverage, previous))),
        {"type": "section", "fields": fields},
        context("Flankwatch coverage health"),
    ]
    return {"text": truncate(escape_mrkdwn(title), FALLBACK_MAX), "blocks": blocks}


def _alert(session: Session, settings: Settings, route: AlertRoute, feed: Feed, coverage: Coverage, previous: str,
           now: datetime) -> Alert:
    thread_key, incident, new_incident = _incident(session, feed, previous, coverage, now)
    since = coverage.since if coverage.state != OK else _recovered_at(feed, previous, incident, now)
    episode = _iso(coverage.since) if coverage.since is not None else incident  # a recovery: of that incident
    alert = Alert(
        id=stable_id("alert", "coverage", str(feed.id), coverage.state, episode),
        kind="coverage",
        topic=None,
        severity=SEVERITIES[coverage.state],
        payload=coverage_message(feed, coverage, previous, since),
        detail={"feed_id": feed.id, "feed": feed.name, "state": coverage.state, "previous": previous,
                "since": _iso(since), "incident": incident},
        status="pending",
        thread_key=thread_key,
        attempts=0,
        created_at=now,
    )
    place(session, settings, alert, now, route=route)  # coverage is not holdable: it goes at once
    if not new_incident:
        parent = thread_parent(session, thread_key, alert.channel)
        if parent is not None and parent.id != alert.id:
            alert.parent_id = parent.id
            alert.broadcast = coverage.state != OK  # a worse state within the incident is shown in the channel
    return alert


def coverage_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """Write an alert (to the ops route) for every enabled key feed whose coverage state changed since the
    last alert, and record the new state. Returns the rows created; flushes, does not commit."""
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a UTC-aware clock")
    route = settings.ops_route()
    feeds = session.scalars(
        select(Feed).where(Feed.enabled.is_(True), Feed.key_outlet.is_(True)).order_by(Feed.id)
    )
    created = []
    for feed in list(feeds):
        coverage = coverage_of(session, settings, feed, now)
        previous = feed.coverage_state or OK
        if coverage.state == previous:
            continue
        alert = _alert(session, settings, route, feed, coverage, previous, now)
        # The state first, flushed: on SQLite the driver opens the transaction only at the first write, and a
        # savepoint (outbox.add) released outside one commits on its own; after the UPDATE it cannot, so the
        # alert and the state are committed (or lost) together.
        feed.coverage_state = coverage.state
        session.flush()
        if outbox.add(session, alert):
            created.append(alert)
    session.flush()
    return created
