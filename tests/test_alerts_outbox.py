"""The outbox: sent once, retried while pending, given up after alert_max_attempts, never deleted."""

from __future__ import annotations

from sqlalchemy.orm import sessionmaker
from alerts_support import T0, add_story, alerts, minutes, slack_settings

from alerts.delivery import SlackSender
from alerts.outbox import _claim, deliver_pending
from alerts.rules import evaluate
from core.db import get_engine, session_scope
from core.models import Alert


def _stories(session, settings, count: int) -> list[Alert]:
    for number in range(count):
        add_story(session, f"s{number}", [{"source": "LRT"}, {"source": "Delfi"}], headline=f"Story {number}")
    return evaluate(session, settings, T0)


def _sender(fake):
    return SlackSender(fake.token, "C0FLANKWATCH", fake.url)


def test_sent_once_and_never_again(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    with session_scope(settings) as session:
        _stories(session, settings, 2)
        assert deliver_pending(session, _sender(fake_slack), settings, T0) == (2, 0, 0)
        assert deliver_pending(session, _sender(fake_slack), settings, T0 + minutes(10)) == (0, 0, 0)
        rows = alerts(session)
    assert len(fake_slack.messages) == 2
    for row in rows:
        assert (row.status, row.attempts, row.delivery, row.sent_at) == ("sent", 1, "slack", T0)
        assert row.remote_id.startswith("1700000000.")


def test_alert_error_moves_on_to_the_next(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    fake_slack.fail_next(1, "channel_not_found")
    with session_scope(settings) as session:
        _stories(session, settings, 2)
        assert deliver_pending(session, _sender(fake_slack), settings, T0) == (1, 0, 1)
        first, second = sorted(alerts(session), key=lambda a: a.status)
    assert (first.status, first.attempts) == ("pending", 1)
    assert "channel_not_found" in first.last_error
    assert (second.status, second.attempts, second.last_error) == ("sent", 1, None)


def test_rate_limit_stops_the_run_and_keeps_everything_pending(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    fake_slack.fail_next(1, "ratelimited", retry_after=42)
    with session_scope(settings) as session:
        _stories(session, settings, 3)
        assert deliver_pending(session, _sender(fake_slack), settings, T0) == (0, 0, 3)
        rows = alerts(session)
    assert len(fake_slack.requests) == 1  # no hammering after a 429
    assert sorted(row.attempts for row in rows) == [0, 0, 1]
    [limited] = [row for row in rows if row.attempts]
    assert "Retry-After 42 s" in limited.last_error


def test_max_attempts_then_failed_and_kept(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token, alert_max_attempts=3)
    fake_slack.fail_next(10, "channel_not_found")
    with session_scope(settings) as session:
        _stories(session, settings, 1)
        results = [deliver_pending(session, _sender(fake_slack), settings, T0 + minutes(i)) for i in range(5)]
        [row] = alerts(session)
    assert results == [(0, 0, 1), (0, 0, 1), (0, 1, 0), (0, 0, 0), (0, 0, 0)]
    assert (row.status, row.attempts, row.sent_at) == ("failed", 3, None)
    assert "channel_not_found" in row.last_error
    assert len(fake_slack.requests) == 3


def test_a_claimed_alert_is_left_to_the_run_that_claimed_it(settings):
    """Two runs that read the same pending row: only the first to claim it sends it."""
    make = sessionmaker(get_engine(settings), expire_on_commit=False)
    with session_scope(settings) as session:
        [alert_id] = [a.id for a in _stories(session, settings, 1)]
    with make() as first, make() as second:
        mine, theirs = first.get(Alert, alert_id), second.get(Alert, alert_id)
        assert _claim(first, mine) is True
        assert _claim(second, theirs) is False
        assert mine.attempts == 1
