"""The alerts stage end to end: real SQLite, the real slack_sdk client, FakeSlack or the console."""

from __future__ import annotations

import json

from alerts_support import T0, add_articles, add_story, alerts, minutes, slack_settings

from alerts.run import AlertSummary, alert
from core.db import session_scope
from core.ids import stable_id
from core.models import Story


def _story(settings, story_id: str = "s1") -> None:
    with session_scope(settings) as session:
        add_story(session, story_id, [{"source": "LRT"}, {"source": "Delfi"}, {"source": "Tagesschau"}])


def test_rerunning_the_stage_never_sends_twice(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    _story(settings)
    first = alert(settings, now=T0)
    again = alert(settings, now=T0 + minutes(10))
    assert first.to_dict() == {
        "created": 1, "sent": 1, "failed": 0, "pending": 0, "alert_ids": [stable_id("alert", "new_story", "s1")],
        "held": 0, "by_kind": {"new_story": 1}, "reactions_read": 0, "errors": {},
    }  # fmt: skip
    assert again.to_dict() == {
        "created": 0, "sent": 0, "failed": 0, "pending": 0, "alert_ids": [], "held": 0, "by_kind": {},
        "reactions_read": 1, "errors": {},
    }  # fmt: skip
    # one message; ten minutes later its reactions are read back
    assert [r.path for r in fake_slack.requests] == ["/api/chat.postMessage", "/api/reactions.get"]


def _counts(summary: AlertSummary) -> tuple:
    return (summary.created, summary.sent, summary.failed, summary.pending, summary.alert_ids)


def test_server_error_then_recovery_on_the_next_run(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token, slack_max_wait_seconds=0)
    _story(settings)
    fake_slack.fail_next(1, "server_error")
    assert _counts(alert(settings, now=T0)) == (1, 0, 0, 1, [stable_id("alert", "new_story", "s1")])
    with session_scope(settings) as session:
        [row] = alerts(session)
        assert (row.status, row.attempts, row.in_doubt) == ("pending", 1, True)  # Slack may have posted it
        assert "HTTP 500" in row.last_error
    assert _counts(alert(settings, now=T0 + minutes(10))) == (0, 1, 0, 0, [])
    assert _counts(alert(settings, now=T0 + minutes(20))) == (0, 0, 0, 0, [])
    # the second run looked for the alert id in the channel before posting again
    assert [r.path for r in fake_slack.requests] == [
        "/api/chat.postMessage", "/api/conversations.history", "/api/chat.postMessage", "/api/reactions.get"
    ]  # fmt: skip (the last: ten minutes on, the reactions to the message are read back)
    assert len(fake_slack.messages) == 1
    with session_scope(settings) as session:
        [row] = alerts(session)
        assert (row.status, row.attempts, row.last_error, row.sent_at) == ("sent", 2, None, T0 + minutes(10))
        assert (row.in_doubt, row.remote_channel) == (False, "C0FLANKWATCH")


def test_server_error_retried_within_the_run(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token, slack_max_wait_seconds=5)
    _story(settings)
    fake_slack.fail_next(1, "server_error")
    assert _counts(alert(settings, now=T0)) == (1, 1, 0, 0, [stable_id("alert", "new_story", "s1")])
    assert len(fake_slack.messages) == 1 and len(fake_slack.requests) == 3  # 500, history, post


def test_rate_limited_alert_stays_pending(settings, fake_slack):
    # Retry-After 30 s is more than this run may wait (10 s): the alert waits for the next run
    settings = slack_settings(settings, fake_slack.url, fake_slack.token, slack_max_wait_seconds=10)
    _story(settings)
    fake_slack.fail_next(1, "ratelimited", retry_after=30)
    summary = alert(settings, now=T0)
    assert (summary.sent, summary.pending) == (0, 1)
    with session_scope(settings) as session:
        [row] = alerts(session)
    assert row.status == "pending" and "Retry-After 30" in row.last_error
    assert row.in_doubt is False  # a 429 posts nothing: the next try need not look first


def test_new_story_then_update(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    _story(settings)
    alert(settings, now=T0)
    with session_scope(settings) as session:
        add_articles(
            session,
            session.get(Story, "s1"),
            [
                {"source": "LRT", "enriched_at": T0 + minutes(30), "novel_terms": ["5000", "Rukla"]},
                {"source": "Delfi", "enriched_at": T0 + minutes(40)},
            ],
        )
    assert alert(settings, now=T0 + minutes(40)).created == 0  # too soon after the first alert
    summary = alert(settings, now=T0 + minutes(70))
    assert (summary.created, summary.sent) == (1, 1)
    first, update = fake_slack.messages
    [parent] = fake_slack.top_level()
    assert update["thread_ts"] == parent["ts"]  # a reply in the story's thread
    assert update["metadata"]["event_payload"]["alert_id"] == summary.alert_ids[0]
    assert "new figure: 5000" in update["blocks"][1]["text"]["text"]
    assert update.get("reply_broadcast") is True  # a figure and a name weigh 3: shown in the channel too
    # the parent counts the two new articles: updated as soon as they joined (the run at +40 min, no reply
    # due yet) and again after the reply
    assert len(fake_slack.updates) == 2
    edit = fake_slack.updates[-1]
    assert edit["ts"] == parent["ts"]
    assert "*Articles*\n5" in [f["text"] for f in edit["blocks"][2]["fields"]]
    assert alert(settings, now=T0 + minutes(200)).created == 0


def test_console_when_no_token(settings, capsys):
    _story(settings)
    summary = alert(settings, now=T0)
    assert (summary.created, summary.sent, summary.pending) == (1, 1, 0)
    printed = capsys.readouterr().out
    assert "German brigade moves 5000 troops to Rukla" in printed
    assert "Why it alerts: New story: 3 articles from 3 independent sources" in printed
    [line] = settings.alert_log.read_text().splitlines()
    assert json.loads(line)["story_id"] == "s1"
    with session_scope(settings) as session:
        [row] = alerts(session)
    assert (row.status, row.delivery, row.remote_id) == ("sent", "console", "alerts.jsonl@0")
    assert alert(settings, now=T0 + minutes(10)).sent == 0
    assert len(settings.alert_log.read_text().splitlines()) == 1


def test_token_argument_selects_slack(settings, fake_slack):
    settings = settings.model_copy(update={"slack_api_url": fake_slack.url, "slack_channel": "C0", "alert_routes": []})
    _story(settings)
    assert alert(settings, now=T0, slack_token=fake_slack.token).sent == 1
    assert fake_slack.messages[0]["channel"] == "C0"
    assert not settings.alert_log.exists()
