"""Digests on a real SQLite DB: held alerts carried once, the period's top stories, limits, escaping, and
delivery through the fake Slack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alerts_support import TOPIC, add_articles, add_story, alerts, slack_settings
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from alerts import outbox, routing
from alerts.blocks import BLOCKS_MAX, HEADER_MAX, SECTION_TEXT_MAX
from alerts.digest import build_digests, digest_id, run_digest
from core.db import session_scope
from core.ids import stable_id
from core.models import Alert, Article, StoryEvent
from core.settings import AlertRoute

VILNIUS = ZoneInfo("Europe/Vilnius")
NIGHT = AlertRoute(name="night", channel="C0NIGHT", timezone="Europe/Vilnius", quiet_hours="22:00-07:00",
                   digest_at=None)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of March 2025 on the Vilnius clock (EET, UTC+2), as UTC."""
    return datetime(2025, 3, day, hour, minute, tzinfo=VILNIUS).astimezone(UTC)


def _routed(settings, *routes: AlertRoute):
    return settings.model_copy(update={"alert_routes": list(routes)})


def _alert(session, settings, kind: str, at: datetime, *, story_id: str | None = None, text: str = "",
           key: str = "") -> Alert:
    """An alert written the way the rules write one: placed by its route (held or not), then added."""
    alert = Alert(
        id=stable_id("alert", kind, story_id or "", key, at.isoformat()),
        kind=kind,
        story_id=story_id,
        topic=TOPIC,
        severity="normal",
        payload={"text": text or f"{kind} at {at:%H:%M}", "blocks": []},
        thread_key=story_id,
        attempts=0,
        created_at=at,
    )
    routing.place(session, settings, alert, at)
    assert outbox.add(session, alert)
    session.flush()
    return alert


def _articles(source_languages: list[tuple[str, str]], at: datetime) -> list[dict]:
    return [{"source": source, "language": language, "published_at": at + timedelta(minutes=i),
             "enriched_at": at + timedelta(minutes=i)} for i, (source, language) in enumerate(source_languages)]


def _validate(blocks: list[dict]) -> None:
    assert 0 < len(blocks) <= BLOCKS_MAX
    for block in blocks:
        Block.parse(block).validate_json()
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= HEADER_MAX
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= SECTION_TEXT_MAX


def _texts(blocks: list[dict]) -> list[str]:
    texts = []
    for block in blocks:
        if block["type"] == "context":
            texts += [element["text"] for element in block["elements"]]
        else:
            texts.append(block["text"]["text"])
    return texts


def _night(settings) -> dict[str, str]:
    """A night on the `night` route: story s1 born at night (its new_story alert held), story s2 that opened
    a Slack thread the day before and developed at night (its update held), and a held spike."""
    with session_scope(settings) as session:
        s2 = add_story(session, "s2", _articles([("LRT", "en"), ("Delfi", "lt"), ("Tagesschau", "de")], local(1, 6)))
        opener = Alert(
            id=stable_id("alert", "new_story", "s2"), kind="new_story", story_id="s2", topic=TOPIC, route="night",
            channel="C0NIGHT", payload={"text": "opener", "blocks": []}, status="sent", delivery="slack",
            remote_id="1700000000.000100", remote_channel="C0NIGHT", thread_key="s2", attempts=1,
            created_at=local(1, 6, 30), sent_at=local(1, 6, 30),
        )
        session.add(opener)
        night = add_articles(session, s2, _articles([("LRT", "lt"), ("BNS", "lt"), ("LRT", "lt"), ("Delfi", "lt")],
                                                    local(3, 1)))
        session.add(StoryEvent(
            id="ev-dev", story_id="s2", kind="development", at=night[1].published_at, article_id=night[1].id,
            facts=["5000", "Rukla"], detail={"replaces": {"5000": "4800"}}, created_at=local(3, 1, 2),
        ))
        add_story(session, "s1", _articles([("LRT", "lt"), ("Delfi", "lt"), ("LRT", "lt")], local(2, 23)),
                  headline="Drones seen over Rūdninkai range")
        born = _alert(session, settings, "new_story", local(2, 23, 30), story_id="s1")
        update = _alert(session, settings, "story_update", local(3, 2), story_id="s2")
        spike = _alert(session, settings, "spike", local(3, 3), key="topic",
                       text="Spike: 40 articles in an hour on lithuania-brigade &amp; friends")
        assert [a.status for a in (born, update, spike)] == ["held"] * 3
        assert {a.held_reason for a in (born, update, spike)} == {"quiet_hours"}
        return {"born": born.id, "update": update.id, "spike": spike.id}


def test_quiet_night_digest_at_the_end_of_quiet_hours(settings):
    settings = _routed(settings, NIGHT)
    held = _night(settings)
    end = local(3, 7)
    with session_scope(settings) as session:
        assert build_digests(session, settings, local(3, 6, 55)) == []  # still quiet: the last boundary was
        # yesterday 07:00, and the previous day had nothing to report
        [digest] = build_digests(session, settings, local(3, 7, 5))
        assert digest.id == digest_id("night", end) == stable_id("alert", "digest", "night", end.isoformat())
        assert (digest.kind, digest.route, digest.channel, digest.status, digest.severity) == (
            "digest", "night", "C0NIGHT", "pending", "normal")
        assert (digest.parent_id, digest.thread_key, digest.held_reason) == (None, None, None)
        assert digest.detail == {
            "period_start": (end - timedelta(hours=24)).isoformat(), "period_end": end.isoformat(),
            "stories": ["s2", "s1"], "held": [held["born"], held["update"], held["spike"]],
        }  # fmt: skip
        blocks = digest.payload["blocks"]

    _validate(blocks)
    assert blocks[0]["text"]["text"] == "Digest night: 2025-03-02 07:00 – 2025-03-03 07:00 EET"
    _, first, second, others, summary = _texts(blocks)
    assert first == (
        "*1. German brigade moves 5000 troops to Rukla*\n"
        "4 new articles in the period (7 in all) · 4 independent sources · languages: lt (5), de (1), en (1)\n"
        "Developments: 4800 → 5000, Rukla\n"
        "<https://slack.com/archives/C0NIGHT/p1700000000000100|Slack thread>"
    )
    assert second == (  # its only alert was held: no thread yet
        "*2. Drones seen over Rūdninkai range*\n"
        "3 new articles in the period (3 in all) · 2 independent sources · languages: lt (3)"
    )
    assert others == "*Also held*\n• spike · 03 Mar 03:00: Spike: 40 articles in an hour on lithuania-brigade &amp; friends"
    assert summary == "2 stories active · 3 alerts held during quiet hours · Flankwatch digest · route night"

    with session_scope(settings) as session:
        rows = {a.id: a for a in alerts(session)}
        for alert_id in held.values():
            assert (rows[alert_id].status, rows[alert_id].digest_id) == ("digested", digest_id("night", end))
        # Later runs of the same morning (and of the day: no digest_at) find the digest and build nothing.
        assert build_digests(session, settings, local(3, 7, 5)) == []
        assert build_digests(session, settings, local(3, 12)) == []
        assert len([a for a in alerts(session) if a.kind == "digest"]) == 1


def test_digest_is_delivered_as_a_top_level_message_once(settings, fake_slack):
    settings = slack_settings(settings, fake_slack.url, fake_slack.token, alert_routes=[NIGHT])
    held = _night(settings)
    first = run_digest(settings, now=local(3, 7, 5))
    assert {k: v for k, v in first.items() if k != "digests"} == {
        "created": 1, "carried": 3, "sent": 1, "failed": 0, "pending": 0}
    [summary] = first["digests"]
    assert (summary["route"], summary["channel"], summary["stories"], summary["held"]) == ("night", "C0NIGHT", 2, 3)

    [message] = fake_slack.messages
    assert message["channel"] == "C0NIGHT" and "thread_ts" not in message
    [posted] = fake_slack.top_level("C0NIGHT")  # a message of its own, in no thread
    assert posted["thread_ts"] is None
    assert message["blocks"][0]["text"]["text"].startswith("Digest night: ")
    assert "4800 → 5000" in message["blocks"][1]["text"]["text"]

    again = run_digest(settings, now=local(3, 7, 35))
    assert (again["created"], again["sent"]) == (0, 0)
    assert len(fake_slack.requests) == 1
    with session_scope(settings) as session:
        rows = {a.id: a for a in alerts(session)}
        digest = rows[digest_id("night", local(3, 7))]
        assert (digest.status, digest.delivery, digest.remote_id) == ("sent", "slack", posted["ts"])
        assert all(rows[i].status == "digested" for i in held.values())  # held alerts are never sent alone


def test_over_budget_alert_waits_for_the_next_digest(settings):
    route = AlertRoute(name="busy", channel="C0BUSY", timezone="Europe/Vilnius", budget_per_hour=2, digest_at="08:00")
    settings = _routed(settings, route)
    with session_scope(settings) as session:
        made = [_alert(session, settings, "watch_match", local(3, 9, m), key=str(m), text=f"Match {m}")
                for m in (0, 10, 20)]
        assert [(a.status, a.held_reason) for a in made] == [("pending", None), ("pending", None), ("held", "budget")]
        # The 08:00 digest of that day came before the alert was held: nothing to report then.
        assert build_digests(session, settings, local(3, 9, 30)) == []
        [digest] = build_digests(session, settings, local(4, 8, 5))
        assert digest.id == digest_id("busy", local(4, 8))
        assert digest.detail["held"] == [made[2].id] and digest.detail["stories"] == []
        texts = _texts(digest.payload["blocks"])
        assert texts[1] == "*Also held*\n• saved search · 03 Mar 09:20 (over budget): Match 20"
        assert texts[-1].startswith("0 stories active · 1 alert held over budget · ")
        session.expire_all()
        assert [(a.status, a.digest_id) for a in session.scalars(select(Alert).where(Alert.kind == "watch_match")
                                                                  .order_by(Alert.created_at))] == [
            ("pending", None), ("pending", None), ("digested", digest.id)]


def test_nothing_to_report_no_digest(settings):
    settings = _routed(settings, NIGHT.model_copy(update={"digest_at": "08:00"}))
    with session_scope(settings) as session:
        # Activity before the period, and a story too small to have alerted, inside it.
        add_story(session, "old", _articles([("LRT", "lt"), ("Delfi", "lt"), ("BNS", "lt")], local(1, 10)))
        add_story(session, "tiny", _articles([("LRT", "lt")], local(3, 2)))
        assert build_digests(session, settings, local(3, 7, 5)) == []
        assert build_digests(session, settings, local(3, 8, 5)) == []
        # A route without digest times (the default route) never builds one either.
        assert build_digests(session, settings, local(3, 8, 5), route="default") == []
        assert [a for a in alerts(session) if a.kind == "digest"] == []


def test_next_period_starts_at_the_previous_digest(settings):
    settings = _routed(settings, NIGHT.model_copy(update={"digest_at": "12:00"}))
    _night(settings)
    with session_scope(settings) as session:
        [morning] = build_digests(session, settings, local(3, 7, 5))
        assert build_digests(session, settings, local(3, 12, 5)) == []  # nothing new since 07:00
        add_story(session, "s3", _articles([("LRT", "lt"), ("Delfi", "lt")], local(3, 9)), headline="Noon story")
        [noon] = build_digests(session, settings, local(3, 12, 5))
        assert noon.detail["period_start"] == morning.detail["period_end"] == local(3, 7).isoformat()
        assert noon.detail["stories"] == ["s3"] and noon.detail["held"] == []  # s1, s2: nothing new since
        assert noon.payload["blocks"][0]["text"]["text"] == "Digest night: 2025-03-03 07:00 – 12:00 EET"


def test_ad_hoc_digest_since(settings):
    route = AlertRoute(name="adhoc", channel="C0ADHOC", digest_at=None)  # no digest times at all
    settings = _routed(settings, route)
    now = local(3, 15)
    with session_scope(settings) as session:
        add_story(session, "before", _articles([("LRT", "lt"), ("Delfi", "lt")], local(3, 8)), headline="Before")
        add_story(session, "after", _articles([("LRT", "lt"), ("BNS", "lt")], local(3, 11)), headline="After")
        assert build_digests(session, settings, now) == []  # no boundary: nothing scheduled
        [digest] = build_digests(session, settings, now, route="adhoc", since=local(3, 10))
        assert digest.id == stable_id("alert", "digest", "adhoc", now.isoformat())
        assert digest.detail["period_start"] == local(3, 10).isoformat()
        assert digest.detail["period_end"] == now.isoformat()
        assert digest.detail["stories"] == ["after"]
        assert build_digests(session, settings, now, route="adhoc", since=local(3, 10)) == []  # same id


def test_hostile_feed_text_is_escaped(settings):
    settings = _routed(settings, NIGHT)
    hostile = "<!channel> Tanks & <@U123> <https://evil.example|click here>"
    with session_scope(settings) as session:
        add_story(session, "h1", _articles([("LRT", "<!here>"), ("Delfi", "lt")], local(3, 1)),
                          headline=hostile)
        session.add(StoryEvent(id="ev-h", story_id="h1", kind="development", at=local(3, 1, 1),
                               article_id=_second_article(session, "h1"),
                               facts=["<!everyone>"], detail={"replaces": {"<!everyone>": "<@U999>"}}))
        [digest] = build_digests(session, settings, local(3, 7, 5))
    blocks = digest.payload["blocks"]
    _validate(blocks)
    text = "\n".join(_texts(blocks)) + digest.payload["text"]
    for bad in ("<!channel>", "<@U123>", "<https://evil", "<!here>", "<!everyone>", "<@U999>"):
        assert bad not in text
    assert "&lt;!channel&gt; Tanks &amp; &lt;@U123&gt;" in blocks[1]["text"]["text"]
    assert "&lt;@U999&gt; → &lt;!everyone&gt;" in blocks[1]["text"]["text"]


def _second_article(session, story_id: str) -> str:
    return list(session.scalars(select(Article.id).where(Article.story_id == story_id)
                                .order_by(Article.published_at, Article.id)))[1]


def test_a_flood_stays_within_slack_limits_and_what_does_not_fit_waits(settings):
    settings = _routed(settings, NIGHT).model_copy(update={"digest_top_stories": 60})
    long = "Spike " + "&amp; <https://example.com/a|a link> " * 20
    with session_scope(settings) as session:
        for n in range(12):
            add_story(session, f"f{n}", _articles([("LRT", "lt"), ("Delfi", "lt")] * (n + 1), local(3, 1)),
                      headline=f"Story {n} " + "long headline & more " * 40)
        flood = [_alert(session, settings, "spike", local(3, 2) + timedelta(seconds=n), key=str(n), text=long)
                 for n in range(400)]
        [digest] = build_digests(session, settings, local(3, 7, 5))
        blocks = digest.payload["blocks"]
        _validate(blocks)
        assert len(blocks) == BLOCKS_MAX
        assert digest.detail["stories"][0] == "f11"  # most articles added first
        carried = set(digest.detail["held"])
        assert 0 < len(carried) < len(flood)
        for text in _texts(blocks):  # every link is whole: no `<` without its `>`
            assert text.count("<") == text.count(">")
        waiting = len(flood) - len(carried)
        assert f"{waiting} more held for the next digest" in _texts(blocks)[-1]
        session.expire_all()
        statuses = {a.id: a.status for a in session.scalars(select(Alert).where(Alert.kind == "spike"))}
        assert {i for i, s in statuses.items() if s == "digested"} == carried
        assert sum(1 for s in statuses.values() if s == "held") == waiting
        # The next digest (tomorrow morning) carries the rest: nothing is dropped.
        later = build_digests(session, settings, local(4, 7, 5))
        assert [set(d.detail["held"]) for d in later] == [set(statuses) - carried]
