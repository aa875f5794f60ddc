"""Senders against a real HTTP server (FakeSlack) and the console: what arrives, and how failures read."""

from __future__ import annotations

import io
import json
import socket

import pytest
from rich.console import Console
from slack_sdk import WebClient
from alerts_support import T0, add_story, slack_settings

from alerts.delivery import ConsoleSender, DeliveryError, SlackSender, sender_for
from alerts.rules import evaluate
from core.db import session_scope
from core.settings import AlertRoute

HOSTILE = "<!channel> & <script>"
HOSTILE_ESCAPED = "&lt;!channel&gt; &amp; &lt;script&gt;"


THREE_SOURCES = [
    {"source": "LRT", "language": "lt"},
    {"source": "Delfi", "language": "lt"},
    {"source": "Tagesschau", "language": "de"},
]


def _one_alert(settings, specs=THREE_SOURCES, **story_kw):
    with session_scope(settings) as session:
        add_story(session, "s1", specs, **story_kw)
        [alert] = evaluate(session, settings, T0)
    return alert


def test_block_kit_body_as_slack_receives_it(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    alert = _one_alert(settings)
    sent = SlackSender(fake_slack.token, "C0FLANKWATCH", fake_slack.url).send(alert)

    [request] = fake_slack.requests
    assert (sent.ts, sent.channel) == (request.response["ts"], "C0FLANKWATCH")
    assert request.path == "/api/chat.postMessage"
    assert request.headers["authorization"] == f"Bearer {fake_slack.token}"
    assert request.headers["content-type"].startswith("application/json")
    body = request.body
    assert body["channel"] == "C0FLANKWATCH"
    assert body["unfurl_links"] is False and body["unfurl_media"] is False
    assert body["text"] == "German brigade moves 5000 troops to Rukla — New story: 3 articles from 3 independent sources"
    assert body["metadata"] == {"event_type": "flankwatch_alert", "event_payload": {"alert_id": alert.id}}
    header, why, facts, links, context = body["blocks"]
    assert header["type"] == "header"
    assert header["text"] == {"type": "plain_text", "text": "German brigade moves 5000 troops to Rukla", "emoji": False}
    assert why["text"]["text"] == "*Why it alerts:* New story: 3 articles from 3 independent sources"
    assert [f["text"] for f in facts["fields"]] == [
        "*Sources*\n3 independent: Delfi, LRT, Tagesschau",
        "*Languages*\nlt (2), de (1)",
        "*First reported*\nDelfi, 2025-03-03 08:00 UTC",  # all at 08:00: the first by id
        "*Articles*\n3",
        "*Last seen*\n2025-03-03 08:00 UTC",
    ]
    lines = links["text"]["text"].split("\n")
    assert lines[0] == "*Top articles*"
    assert lines[1] == "• <https://lrt.example/s1/0|LRT report 0 on the brigade> (LRT)"
    assert len(lines) == 4
    assert context["elements"][0]["text"] == "Flankwatch new story · topic lithuania-brigade · story `s1`"


def test_hostile_title_and_url_arrive_escaped(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    evil_url = "https://evil.example/a|<!channel>> <@U123>"
    alert = _one_alert(
        settings,
        headline=HOSTILE,
        specs=[
            {"source": "LRT", "title": HOSTILE, "url": evil_url},
            {"source": "<!here>", "title": "ok", "url": "javascript:alert(1)"},
        ],
    )
    SlackSender(fake_slack.token, "", fake_slack.url).send(alert)

    [request] = fake_slack.requests
    raw = request.raw.decode()
    for ping in ("<!channel>", "<!here>", "<@U123>", "<script>"):
        assert ping not in raw
    body = request.body
    assert body["blocks"][0]["text"]["text"] == HOSTILE_ESCAPED
    assert HOSTILE_ESCAPED in body["text"]
    links = body["blocks"][3]["text"]["text"].split("\n")
    assert links[1] == f"• <https://evil.example/a%7C%3C!channel%3E%3E%20%3C@U123%3E|{HOSTILE_ESCAPED}> (LRT)"
    assert links[2] == "• ok (&lt;!here&gt;)"  # javascript: is no link
    assert "*Sources*\n2 independent: &lt;!here&gt;, LRT" in [f["text"] for f in body["blocks"][2]["fields"]]


@pytest.mark.parametrize(
    ("mode", "message", "stop"),
    [
        ("ratelimited", "Slack rate limited (HTTP 429, Retry-After 30 s)", True),
        ("server_error", "Slack server error (HTTP 500)", True),
        ("channel_not_found", "Slack refused the message to C0FLANKWATCH: channel_not_found (HTTP 200)", False),
    ],
)
def test_slack_failures_become_delivery_errors(settings, fake_slack, mode, message, stop):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token)
    alert = _one_alert(settings)
    sender = SlackSender(fake_slack.token, "", fake_slack.url)
    fake_slack.fail_next(1, mode, retry_after=30)
    with pytest.raises(DeliveryError) as caught:
        sender.send(alert)
    assert str(caught.value).startswith(message)
    assert caught.value.stop is stop
    assert caught.value.retry_after == (30 if mode == "ratelimited" else None)
    assert sender.send(alert)  # the next call goes through
    assert len(fake_slack.messages) == 1


def test_bad_token_stops_the_run(settings, fake_slack):
    alert = _one_alert(slack_settings(settings, fake_slack.url, fake_slack.token))
    with pytest.raises(DeliveryError, match="invalid_auth") as caught:
        SlackSender("xoxb-wrong", "", fake_slack.url).send(alert)
    assert caught.value.stop
    assert "xoxb-wrong" not in str(caught.value)


def test_unreachable_slack(settings):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    alert = _one_alert(settings)
    with pytest.raises(DeliveryError, match="cannot reach Slack") as caught:
        SlackSender("xoxb-x", "C0", f"http://127.0.0.1:{port}/api/").send(alert)
    assert caught.value.stop


def test_console_sender_prints_and_writes_jsonl(settings, tmp_path):
    alert = _one_alert(
        settings,
        headline="[bold red]Alarm[/bold red] \x1b[2J <!channel>",
        specs=[{"source": "LRT", "title": "[link=file:///etc/passwd]click[/link]"}, {"source": "Delfi"}],
    )
    out = io.StringIO()
    path = tmp_path / "log" / "alerts.jsonl"
    sender = ConsoleSender(path, Console(file=out, width=200, color_system=None))
    remote_id = sender.send(alert).ts
    sender.send(alert)

    printed = out.getvalue()
    assert "[bold red]Alarm[/bold red] [2J <!channel>" in printed  # markup shown, not applied
    assert "\x1b" not in printed
    assert "[link=file:///etc/passwd]click[/link] (https://lrt.example/s1/0) (LRT)" in printed
    assert "Why it alerts: New story: 2 articles from 2 independent sources" in printed
    assert "Sources: 2 independent: Delfi, LRT" in printed
    lines = path.read_text().splitlines()
    assert len(lines) == 2
    record = json.loads(lines[0])
    assert (record["id"], record["kind"], record["story_id"]) == (alert.id, "new_story", "s1")
    assert record["blocks"] == alert.payload["blocks"]
    assert remote_id == "alerts.jsonl@0"


def test_sender_choice(settings):
    assert isinstance(sender_for(settings), ConsoleSender)  # no token
    assert sender_for(settings).path == settings.alert_log
    with_channel = settings.model_copy(update={"slack_channel": "C0", "alert_routes": []})
    assert isinstance(sender_for(with_channel), ConsoleSender)
    assert isinstance(sender_for(with_channel, slack_token="xoxb-1"), SlackSender)
    no_channel = settings.model_copy(update={"slack_channel": "", "alert_routes": []})
    assert isinstance(sender_for(no_channel, slack_token="xoxb-1"), ConsoleSender)
    routed = no_channel.model_copy(update={"alert_routes": [AlertRoute(topic="*", channel="#flank")]})
    assert isinstance(sender_for(routed, slack_token="xoxb-1"), SlackSender)  # a route is a channel too


def test_console_log_that_cannot_be_written(settings, tmp_path):
    alert = _one_alert(settings)
    blocked = tmp_path / "file"
    blocked.write_text("")
    sender = ConsoleSender(blocked / "alerts.jsonl", Console(file=io.StringIO()))
    with pytest.raises(DeliveryError, match="cannot write the alert log"):
        sender.send(alert)


def test_fake_slack_reads_form_bodies_too(fake_slack):
    client = WebClient(token=fake_slack.token, base_url=fake_slack.url, retry_handlers=[])
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}]
    response = client.api_call("chat.postMessage", params={"channel": "C0", "text": "hi", "blocks": json.dumps(blocks)})
    assert response["ok"]
    [request] = fake_slack.requests
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.body == {"channel": "C0", "text": "hi", "blocks": blocks}


def test_a_send_in_doubt_to_a_channel_named_by_name_is_found_by_its_id(settings, fake_slack):
    """Reads need the channel id: a fresh sender (another run) that finds an alert in doubt in "#flank"
    asks conversations.list for the id, then finds the message instead of posting it twice."""
    alert = _one_alert(slack_settings(settings, fake_slack.url, fake_slack.token))
    alert.channel = "#flank"
    first = SlackSender(fake_slack.token, "", fake_slack.url).send(alert)
    assert first.channel.startswith("C")
    again = SlackSender(fake_slack.token, "", fake_slack.url).send(alert, in_doubt=True)
    assert again == first
    assert [r.path for r in fake_slack.requests] == [
        "/api/chat.postMessage", "/api/conversations.list", "/api/conversations.history"
    ]  # fmt: skip
    assert fake_slack.alert_ids() == [alert.id]
