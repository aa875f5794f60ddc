"""Feedback on alerts through the real alert stage: 👍 / 👎 added on FakeSlack's messages, read back with
reactions.get once they have settled, precision per rule and route, and `flankwatch alerts report`."""

from __future__ import annotations

import json

import pytest
from alerts_support import T0, TOPIC, add_articles, add_story, minutes, slack_settings
from typer.testing import CliRunner

from alerts.feedback import SETTLE, precision_report
from alerts.run import alert
from core.db import session_scope
from core.ids import stable_id
from core.models import Alert, Story
from core.settings import AlertRoute, get_settings
from flankwatch.cli import app

BRIGADE = AlertRoute(name="brigade", topic=TOPIC, channel="C0BRIGADE")
OTHER_TOPIC = "kaliningrad-transit"
THREE = [{"source": "LRT"}, {"source": "Delfi"}, {"source": "Tagesschau"}]


def _slack(settings, fake, **extra):
    """Slack at the fake: the brigade topic to its own route, every other topic to the default channel."""
    extra.setdefault("slack_min_interval_seconds", 0)
    extra.setdefault("alert_routes", [BRIGADE])
    return slack_settings(settings, fake.url, fake.token, **extra)


def _stories(settings, *story_ids: str, topic: str = TOPIC) -> None:
    with session_scope(settings) as session:
        for story_id in story_ids:
            add_story(session, story_id, THREE, headline=f"Story {story_id}: the brigade moves", topic=topic)


def _opener(story_id: str) -> str:
    return stable_id("alert", "new_story", story_id)


def _row(settings, alert_id: str) -> Alert:
    with session_scope(settings) as session:
        row = session.get(Alert, alert_id)
        session.expunge(row)
        return row


def _react(fake, settings, alert_id: str, *reactions: tuple[str, int]) -> None:
    row = _row(settings, alert_id)
    for name, count in reactions:
        fake.react(row.remote_channel, row.remote_id, name, count)


def _reads(fake) -> int:
    return sum(1 for r in fake.requests if r.path == "/api/reactions.get")


def _three_sent(settings, fake) -> None:
    """s1 and s2 on the brigade route, s3 on the default route, all sent at T0."""
    _stories(settings, "s1", "s2")
    _stories(settings, "s3", topic=OTHER_TOPIC)
    assert alert(settings, now=T0).sent == 3


def test_reactions_are_read_back_once_settled(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    _three_sent(settings, fake_slack)
    assert {_row(settings, _opener(s)).route for s in ("s1", "s2", "s3")} == {"brigade", "default"}
    _react(fake_slack, settings, _opener("s1"), ("+1", 2), ("+1::skin-tone-2", 1), ("-1", 1), ("eyes", 4))
    _react(fake_slack, settings, _opener("s2"), ("-1", 2), ("thumbsup", 1))

    # too fresh: no reactions.get yet
    assert alert(settings, now=T0 + SETTLE - minutes(1)).reactions_read == 0
    assert _reads(fake_slack) == 0

    summary = alert(settings, now=T0 + SETTLE)
    assert summary.reactions_read == 3 and _reads(fake_slack) == 3
    s1, s2, s3 = (_row(settings, _opener(s)) for s in ("s1", "s2", "s3"))
    assert (s1.reactions_up, s1.reactions_down) == (3, 1)  # the skin tone counts as a 👍; 👀 not at all
    assert (s2.reactions_up, s2.reactions_down) == (1, 2)
    assert (s3.reactions_up, s3.reactions_down) == (0, 0)
    assert s1.reactions_checked_at == s3.reactions_checked_at == T0 + SETTLE

    with session_scope(settings) as session:
        rows = [r.to_dict() for r in precision_report(session)]
    assert rows == [
        {"kind": "new_story", "route": "brigade", "sent": 2, "rated": 2, "up": 4, "down": 3, "useful": 1,
         "precision": 0.5},
        {"kind": "new_story", "route": "default", "sent": 1, "rated": 0, "up": 0, "down": 0, "useful": 0,
         "precision": None},
    ]  # fmt: skip

    # reactions change: the next read stores the new counts
    _react(fake_slack, settings, _opener("s1"), ("thumbsdown", 3))
    assert alert(settings, now=T0 + minutes(30)).reactions_read == 3
    s1 = _row(settings, _opener("s1"))
    assert (s1.reactions_up, s1.reactions_down, s1.reactions_checked_at) == (3, 4, T0 + minutes(30))
    with session_scope(settings) as session:
        [brigade, _] = precision_report(session)
    assert (brigade.useful, brigade.rated, brigade.precision) == (0, 2, 0.0)


def test_reactions_per_run_bounds_the_calls(settings, fake_slack):
    settings = _slack(settings, fake_slack, reactions_per_run=2)
    _three_sent(settings, fake_slack)
    assert alert(settings, now=T0 + minutes(10)).reactions_read == 2
    assert _reads(fake_slack) == 2
    checked = {s for s in ("s1", "s2", "s3") if _row(settings, _opener(s)).reactions_checked_at is not None}
    assert len(checked) == 2
    # the next run starts with the alert never read
    assert alert(settings, now=T0 + minutes(11)).reactions_read == 2
    assert _reads(fake_slack) == 4
    [unread] = {"s1", "s2", "s3"} - checked
    assert _row(settings, _opener(unread)).reactions_checked_at == T0 + minutes(11)


def test_old_alerts_are_not_read_again(settings, fake_slack):
    settings = _slack(settings, fake_slack, reactions_lookback_days=1)
    _three_sent(settings, fake_slack)
    assert alert(settings, now=T0 + minutes(10)).reactions_read == 3
    assert alert(settings, now=T0 + minutes(60 * 24 + 1)).reactions_read == 0
    assert _reads(fake_slack) == 3


def test_console_delivery_reads_nothing(settings, fake_slack):
    _stories(settings, "s1")
    console = alert(settings, now=T0)  # no token: the console
    assert console.sent == 1 and _row(settings, _opener("s1")).delivery == "console"
    assert alert(settings, now=T0 + minutes(20)).reactions_read == 0
    # with Slack configured later, alerts the console printed are still not looked up in Slack
    assert alert(_slack(settings, fake_slack), now=T0 + minutes(30)).reactions_read == 0
    assert fake_slack.requests == []
    row = _row(settings, _opener("s1"))
    assert (row.reactions_checked_at, row.reactions_up, row.reactions_down) == (None, 0, 0)


# --- `flankwatch alerts report` --------------------------------------------------------------------


@pytest.fixture
def report(settings, monkeypatch):
    """`flankwatch alerts report ...` on the test's state DB, as a user runs it."""
    monkeypatch.setenv("FLANKWATCH_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("FLANKWATCH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, ["alerts", "report", *args], catch_exceptions=False)

    yield invoke
    get_settings.cache_clear()


def _rated_alerts(settings, fake) -> None:
    """Three new stories and an update of s1, all read back: brigade new_story 1 of 2 useful, default
    new_story unrated, brigade story_update useful."""
    _three_sent(settings, fake)
    _react(fake, settings, _opener("s1"), ("+1", 2))
    _react(fake, settings, _opener("s2"), ("-1", 1))
    with session_scope(settings) as session:
        add_articles(session, session.get(Story, "s1"), [
            {"source": "LRT", "enriched_at": T0 + minutes(30), "novel_terms": ["5000"]},
            {"source": "BNS", "enriched_at": T0 + minutes(40)},
        ])  # fmt: skip
    update = alert(settings, now=T0 + minutes(70))
    assert update.by_kind == {"story_update": 1}
    _react(fake, settings, update.alert_ids[0], ("+1::skin-tone-5", 1))
    assert alert(settings, now=T0 + minutes(80)).reactions_read == 4


def test_report_table_and_json(settings, fake_slack, report):
    _rated_alerts(_slack(settings, fake_slack), fake_slack)

    shown = report()
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    for column in ("kind", "route", "sent", "rated", "👍", "👎", "precision"):
        assert column in shown.output
    [brigade_new] = [line for line in lines if "new_story" in line and "brigade" in line]
    assert [c.strip() for c in brigade_new.split("│")[1:8]] == ["new_story", "brigade", "2", "2", "2", "1", "50% (1/2)"]
    [default_new] = [line for line in lines if "new_story" in line and "default" in line]
    assert [c.strip() for c in default_new.split("│")[1:8]] == ["new_story", "default", "1", "0", "0", "0", "–"]
    [update] = [line for line in lines if "story_update" in line]
    assert [c.strip() for c in update.split("│")[1:8]] == ["story_update", "brigade", "1", "1", "1", "0", "100% (1/1)"]
    [total] = [line for line in lines if "total" in line]
    assert [c.strip() for c in total.split("│")[1:8]] == ["total", "", "4", "3", "3", "1", "67% (2/3)"]

    as_json = report("--json")
    assert as_json.exit_code == 0
    rows = json.loads(as_json.output)
    assert [(r["kind"], r["route"], r["sent"], r["rated"], r["up"], r["down"], r["precision"]) for r in rows] == [
        ("new_story", "brigade", 2, 2, 2, 1, 0.5),
        ("new_story", "default", 1, 0, 0, 0, None),
        ("story_update", "brigade", 1, 1, 1, 0, 1.0),
    ]

    # --since: only what was sent from then on
    assert json.loads(report("--since", "2025-03-04", "--json").output) == []
    later = json.loads(report("--since", "2025-03-03T08:30:00+00:00", "--json").output)
    assert [(r["kind"], r["sent"]) for r in later] == [("story_update", 1)]
    empty = report("--since", "2025-03-04")
    assert empty.exit_code == 0 and "no alert sent yet in this period" in empty.output
    assert "–" in [line for line in empty.output.splitlines() if "total" in line][0]


def test_report_before_any_rating_and_bad_dates(settings, fake_slack, report):
    settings = _slack(settings, fake_slack)
    _stories(settings, "s1")
    alert(settings, now=T0)
    shown = report()
    assert shown.exit_code == 0 and "no 👍 / 👎 yet" in shown.output
    bad = report("--since", "yesterday")
    assert bad.exit_code != 0 and "not a date" in bad.output
