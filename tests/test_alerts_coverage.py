"""Coverage health on a real SQLite DB: key outlets that fail, go silent or look paywalled alert the ops
route once per change of state, and once more when they recover."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from alerts_support import T0, alerts, minutes
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from alerts.coverage import coverage_alerts
from collectors.feeds_config import FeedSpec, sync_feeds
from core.db import session_scope
from core.ids import stable_id
from core.models import Alert, Article, Feed
from core.settings import AlertRoute, Settings

HOURS = timedelta(hours=1)
DAYS = timedelta(days=1)
ROUTES = [
    AlertRoute(name="brigade", topic="*", channel="C0BRIGADE"),
    AlertRoute(name="ops", topic="*", channel="C0OPS", ops=True),
]


def _settings(settings: Settings, **ops: object) -> Settings:
    routes = [ROUTES[0], ROUTES[1].model_copy(update=ops)] if ops else ROUTES
    return settings.model_copy(update={"alert_routes": routes})


def _feed(session, name: str = "LRT English", *, key: bool = True, **state: object) -> Feed:
    """A feed polled happily until T0: last success and last new article one hour ago, 20 items a day."""
    values = {
        "url": f"https://{name.lower().replace(' ', '-')}.example/rss",
        "name": name,
        "key_outlet": key,
        "enabled": True,
        "health": "ok",
        "consecutive_failures": 0,
        "items_total": 100,
        "last_success_at": T0 - HOURS,
        "last_new_item_at": T0 - HOURS,
        "items_per_day": 20.0,
        "created_at": T0 - 30 * DAYS,
        **state,
    }
    feed = Feed(**values)
    session.add(feed)
    session.flush()
    return feed


def _fail(feed: Feed, failures: int = 5, health: str = "unhealthy") -> None:
    feed.health = health
    feed.consecutive_failures = failures
    feed.last_error_class = "http_5xx"
    feed.last_error = "HTTP 503 Service Unavailable"


def _articles(session, feed: Feed, teasers: int, free: int, at: datetime = T0 - HOURS) -> None:
    for number in range(teasers + free):
        url = f"https://{feed.id}.example/{at.isoformat()}/{number}"
        session.add(Article(
            id=stable_id("article", url), feed_id=feed.id, source=feed.name, url=url, canonical_url=url,
            title=f"Report {number}", summary="", published_at=at, fetched_at=at + minutes(number),
            content_hash=stable_id("hash", url), paywall_suspected=number < teasers,
        ))
    session.flush()


def _text(alert: Alert) -> str:
    return json.dumps(alert.payload, ensure_ascii=False)


def _header(alert: Alert) -> str:
    return alert.payload["blocks"][0]["text"]["text"]


def _assert_valid_blocks(alert: Alert) -> None:
    for block in alert.payload["blocks"]:
        Block.parse(block).validate_json()  # raises on anything Slack would reject


def test_unhealthy_key_feed_alerts_once_then_recovers_in_its_thread(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        feed = _feed(session)
        feed_id = feed.id
        assert coverage_alerts(session, settings, T0) == []  # healthy: nothing, and no state written
        assert feed.coverage_state is None
        _fail(feed)
        [first] = coverage_alerts(session, settings, T0)
        assert (first.kind, first.route, first.channel, first.severity, first.status) == (
            "coverage", "ops", "C0OPS", "high", "pending")
        assert first.topic is None and first.parent_id is None
        assert first.id == stable_id("alert", "coverage", str(feed_id), "failing", (T0 - HOURS).isoformat())
        assert first.thread_key.startswith(f"feed:{feed_id}:")
        assert _header(first) == "Coverage: LRT English is failing"
        assert first.detail == {"feed_id": feed_id, "feed": "LRT English", "state": "failing", "previous": "ok",
                                "since": (T0 - HOURS).isoformat(), "incident": (T0 - HOURS).isoformat()}
        assert "HTTP 503 Service Unavailable" in _text(first) and "unhealthy" in _text(first)
        assert "Flankwatch coverage health" in _text(first)
        _assert_valid_blocks(first)
        assert feed.coverage_state == "failing"

    with session_scope(settings) as session:
        feed = session.get(Feed, feed_id)
        assert coverage_alerts(session, settings, T0 + minutes(10)) == []  # still unhealthy: quiet
        feed.health = "failing"  # failing or unhealthy: the same state
        assert coverage_alerts(session, settings, T0 + minutes(20)) == []
        feed.health, feed.consecutive_failures = "ok", 0
        feed.last_error_class = feed.last_error = None
        feed.last_success_at = feed.last_new_item_at = T0 + minutes(30)
        [recovered] = coverage_alerts(session, settings, T0 + minutes(30))
        assert _header(recovered) == "Coverage: LRT English recovered"
        assert (recovered.severity, recovered.route, recovered.parent_id) == ("normal", "ops", first.id)
        assert recovered.thread_key == first.thread_key
        assert recovered.detail["state"] == "ok" and recovered.detail["previous"] == "failing"
        assert recovered.detail["since"] == (T0 + minutes(30)).isoformat()
        _assert_valid_blocks(recovered)
        assert feed.coverage_state == "ok"
        assert coverage_alerts(session, settings, T0 + minutes(40)) == []
        assert len(alerts(session)) == 2


def test_a_second_incident_opens_its_own_thread(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        feed = _feed(session)
        _fail(feed)
        [first] = coverage_alerts(session, settings, T0)
        feed.health, feed.last_success_at, feed.last_new_item_at = "ok", T0 + HOURS, T0 + HOURS
        [recovered] = coverage_alerts(session, settings, T0 + HOURS)
        _fail(feed)
        [second] = coverage_alerts(session, settings, T0 + 2 * HOURS)
        feed.health, feed.last_success_at, feed.last_new_item_at = "ok", T0 + 3 * HOURS, T0 + 3 * HOURS
        [recovered_again] = coverage_alerts(session, settings, T0 + 3 * HOURS)
    assert len({first.id, recovered.id, second.id, recovered_again.id}) == 4
    assert second.parent_id is None and second.thread_key != first.thread_key
    assert (recovered.parent_id, recovered_again.parent_id) == (first.id, second.id)


def test_a_crash_before_commit_writes_the_same_alert_on_the_rerun(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        feed = _feed(session)
        _fail(feed)
        feed_id = feed.id

    class Crash(Exception):
        pass

    with pytest.raises(Crash), session_scope(settings) as session:
        [lost] = coverage_alerts(session, settings, T0)
        raise Crash  # between the add and the commit
    with session_scope(settings) as session:
        assert alerts(session) == [] and session.get(Feed, feed_id).coverage_state is None
        [kept] = coverage_alerts(session, settings, T0 + minutes(10))  # the next run, a little later
    assert kept.id == lost.id
    with session_scope(settings) as session:
        session.get(Feed, feed_id).coverage_state = None  # as if the state had not been written
        assert coverage_alerts(session, settings, T0 + minutes(20)) == []  # the row is found, not duplicated
        assert session.get(Feed, feed_id).coverage_state == "failing"
        assert len(alerts(session)) == 1


def test_silent_key_feed_from_the_feeds_file_alerts(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        sync_feeds(session, [FeedSpec(name="ERR News", url="https://news.err.ee/rss", key=True),
                             FeedSpec(name="Postimees", url="https://www.postimees.ee/rss")])
        err, postimees = session.scalars(select(Feed).order_by(Feed.id)).all()
        for feed in (err, postimees):  # 10 a day: silent 10 gaps (one day) after the last new article
            feed.last_success_at, feed.last_new_item_at, feed.items_per_day = T0, T0 - 12 * HOURS, 10.0
        assert coverage_alerts(session, settings, T0) == []  # 12 h without an article: not yet
        [alert] = coverage_alerts(session, settings, T0 + 13 * HOURS)
    assert _header(alert) == "Coverage: ERR News is silent"
    assert (alert.severity, alert.route, alert.parent_id) == ("high", "ops", None)
    assert alert.detail["since"] == (T0 + 12 * HOURS).isoformat()
    assert alert.id == stable_id("alert", "coverage", str(err.id), "silent", (T0 + 12 * HOURS).isoformat())
    assert "it usually publishes 10.0 a day" in _text(alert)
    _assert_valid_blocks(alert)


def test_failing_then_silent_replies_in_the_incident_thread(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        feed = _feed(session)
        _fail(feed)
        [failing] = coverage_alerts(session, settings, T0 + 2 * DAYS)
        feed.health, feed.last_success_at = "ok", T0 + 2 * DAYS + HOURS  # polls work again, but nothing new
        [silent] = coverage_alerts(session, settings, T0 + 2 * DAYS + HOURS)
        feed.last_new_item_at = T0 + 2 * DAYS + 2 * HOURS
        [recovered] = coverage_alerts(session, settings, T0 + 2 * DAYS + 2 * HOURS)
    assert [a.detail["state"] for a in (failing, silent, recovered)] == ["failing", "silent", "ok"]
    assert (silent.parent_id, silent.broadcast, silent.severity) == (failing.id, True, "high")
    assert (recovered.parent_id, recovered.broadcast, recovered.detail["previous"]) == (failing.id, False, "silent")
    assert recovered.detail["since"] == (T0 + 2 * DAYS + 2 * HOURS).isoformat()


@pytest.mark.parametrize(
    ("teasers", "free", "fires"),
    [
        (4, 0, True),
        (4, 1, True),  # 0.8 = coverage_paywall_share
        (3, 2, False),  # 0.6
        (2, 0, False),  # fewer than 3 articles say nothing
    ],
)
def test_paywalled_key_feed_alerts(settings, teasers, fires, free):
    settings = _settings(settings)
    with session_scope(settings) as session:
        feed = _feed(session, "LSM English")
        _articles(session, feed, teasers=0, free=5, at=T0 - 2 * DAYS)  # older ones, outside the window
        _articles(session, feed, teasers=teasers, free=free)
        created = coverage_alerts(session, settings, T0)
        assert len(created) == int(fires)
        if fires:
            [alert] = created
            assert _header(alert) == "Coverage: LSM English looks paywalled"
            assert (alert.severity, alert.route, alert.detail["state"]) == ("normal", "ops", "paywalled")
            assert f"{teasers} of the {teasers + free} articles" in _text(alert)
            assert alert.detail["since"] == (T0 - HOURS).isoformat()  # the first teaser's fetch
            _assert_valid_blocks(alert)
            assert coverage_alerts(session, settings, T0 + minutes(10)) == []
            feed.last_new_item_at = T0 + 2 * DAYS - HOURS  # not silent: new articles, no longer teasers
            assert coverage_alerts(session, settings, T0 + 2 * DAYS)[0].detail["state"] == "ok"


def test_feeds_that_are_not_key_or_not_enabled_never_alert(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        plain = _feed(session, "Delfi.lt", key=False, last_new_item_at=T0 - 30 * DAYS)
        disabled = _feed(session, "LSM English", enabled=False)
        _fail(plain)
        _fail(disabled)
        _articles(session, plain, teasers=5, free=0)
        assert coverage_alerts(session, settings, T0) == []
        assert coverage_alerts(session, settings, T0 + 10 * DAYS) == []
        assert plain.coverage_state is None and disabled.coverage_state is None
        assert alerts(session) == []


def test_hostile_feed_name_and_error_are_escaped(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        feed = _feed(session, "<!channel> LRT & <@U123ABC> \u202eevil")
        _fail(feed)
        feed.last_error = "<!here> <https://evil.example|click> " + "x" * 2000
        [alert] = coverage_alerts(session, settings, T0)
    text = _text(alert)
    for forbidden in ("<!channel>", "<!here>", "<@U123ABC>", "<https://evil", "\u202e"):
        assert forbidden not in text
    assert _header(alert) == "Coverage: &lt;!channel&gt; LRT &amp; &lt;@U123ABC&gt; evil is failing"
    assert alert.payload["text"].startswith("Coverage: &lt;!channel&gt;")
    [error] = [f["text"] for f in alert.payload["blocks"][2]["fields"] if f["text"].startswith("*Last error*")]
    assert "http_5xx: &lt;!here&gt;" in error and error.endswith("…") and len(error) < 400
    assert alert.detail["feed"] == "<!channel> LRT & <@U123ABC> \u202eevil"  # the record keeps the raw name
    _assert_valid_blocks(alert)


def test_quiet_hours_on_the_ops_route_do_not_hold_coverage(settings):
    settings = _settings(settings, quiet_hours="00:00-23:59", budget_per_hour=0)
    with session_scope(settings) as session:
        feed = _feed(session)
        _fail(feed)
        [alert] = coverage_alerts(session, settings, T0)
    assert (alert.route, alert.status, alert.held_reason) == ("ops", "pending", None)


def test_without_an_ops_route_coverage_goes_to_the_first_route(settings):
    settings = settings.model_copy(update={"alert_routes": [ROUTES[0]]})
    with session_scope(settings) as session:
        _fail(_feed(session))
        [alert] = coverage_alerts(session, settings, T0)
    assert (alert.route, alert.channel) == ("brigade", "C0BRIGADE")


def test_one_failed_poll_is_not_an_outage(settings):
    settings = _settings(settings)
    with session_scope(settings) as session:
        feed = _feed(session)
        _fail(feed, failures=2, health="failing")  # two timeouts in a row: the collector backs off, ops sleeps
        assert coverage_alerts(session, settings, T0) == []
        _fail(feed, failures=3, health="failing")  # the third failure in a row is an outage
        [alert] = coverage_alerts(session, settings, T0 + minutes(30))
        assert alert.detail["state"] == "failing" and alert.severity == "high"
