"""One Slack thread per story, through the real alert stage (`alerts.run.alert`): real SQLite, the real
slack_sdk client, FakeSlack on 127.0.0.1. The assertions are on what Slack received: top-level messages,
replies (thread_ts), broadcasts, chat.update of a thread's parent, the alert ids in the metadata."""

from __future__ import annotations

import json

import pytest
from alerts_support import T0, add_articles, add_story, alerts, minutes, slack_settings

from alerts.run import alert
from core.db import session_scope
from core.ids import stable_id
from core.models import Alert, Article, Feed, Story, StoryEvent
from core.settings import AlertRoute

CHANNEL = "C0FLANKWATCH"
WORKSPACE = "https://flankwatch-test.slack.com"
HOSTILE = "<!channel> brigade *moves* <@U0BOSS> to <https://evil.example/x|Rukla> & <!here>"
PINGS = ("<!channel>", "<!here>", "<!everyone>", "<@U", "<https://evil")
THREE = ("LRT", "Delfi", "Tagesschau")


# --- helpers ---------------------------------------------------------------------------------------


def _slack(settings, fake, **extra):
    """Settings on the fake Slack, without pacing (it would sleep a second between two posts)."""
    extra.setdefault("slack_min_interval_seconds", 0)
    extra.setdefault("slack_workspace_url", WORKSPACE)
    return slack_settings(settings, fake.url, fake.token, **extra)


def _story(settings, story_id: str, sources=THREE, **kw) -> None:
    with session_scope(settings) as session:
        add_story(session, story_id, [{"source": name} for name in sources], **kw)


def _new(source: str, minute: float, *terms: str) -> dict:
    """An article enriched `minute` minutes after T0 that brought `terms`."""
    return {"source": source, "enriched_at": T0 + minutes(minute), "novel_terms": list(terms)}


def _grow(settings, story_id: str, specs: list[dict], replaces: dict[str, str] | None = None) -> list[str]:
    """Add articles to a story; `replaces` ({new: old}) is recorded as the first new article's development,
    the way enrichment records a number that changed."""
    with session_scope(settings) as session:
        new = add_articles(session, session.get(Story, story_id), specs)
        if replaces:
            session.add(StoryEvent(
                id=stable_id("event", story_id, "development", new[0].id), story_id=story_id, kind="development",
                at=new[0].published_at, article_id=new[0].id, facts=list(replaces), detail={"replaces": replaces},
            ))  # fmt: skip
        return [a.id for a in new]


def _merge(settings, survivor_id: str, absorbed_id: str, at) -> None:
    """Story `absorbed_id` turns out to be `survivor_id`, recorded as enrichment/clustering.py does: the
    absorbed story points to the survivor, its articles move, and the survivor gets a "merged" event."""
    with session_scope(settings) as session:
        survivor, absorbed = session.get(Story, survivor_id), session.get(Story, absorbed_id)
        session.add(StoryEvent(
            id=stable_id("event", survivor_id, "merged", absorbed_id), story_id=survivor_id, kind="merged", at=at,
            detail={"absorbed": absorbed_id, "headline": absorbed.headline, "articles": absorbed.article_count},
        ))  # fmt: skip
        absorbed.merged_into = survivor_id
        for article in session.query(Article).filter(Article.story_id == absorbed_id):
            article.story_id = survivor_id
        session.flush()
        add_articles(session, survivor, [])  # recount the survivor


def _row(settings, alert_id: str) -> Alert:
    with session_scope(settings) as session:
        row = session.get(Alert, alert_id)
        session.expunge(row)
        return row


def _id(message: dict) -> str:
    return message["metadata"]["event_payload"]["alert_id"]


def _fields(blocks: list[dict]) -> list[str]:
    return [f["text"] for block in blocks for f in block.get("fields", [])]


def _posts(fake) -> int:
    return len(fake.messages)


def _safe(fake) -> None:
    """Every payload Slack got was accepted (the fake refuses invalid Block Kit) and pings nobody."""
    for request in fake.requests:
        assert request.response.get("error") not in ("invalid_blocks", "no_text"), request.response
        if request.path in ("/api/chat.postMessage", "/api/chat.update"):
            shown = json.dumps([request.body.get("text"), request.body.get("blocks")], ensure_ascii=False)
            for ping in PINGS:
                assert ping not in shown, (ping, shown)


def _link(ts: str) -> str:
    return f"{WORKSPACE}/archives/{CHANNEL}/p{ts.replace('.', '')}"


# --- a story's thread ------------------------------------------------------------------------------


def test_first_alert_opens_the_thread_and_updates_reply_in_it(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    _story(settings, "s1", headline=HOSTILE)
    assert alert(settings, now=T0).sent == 1
    [parent] = fake_slack.top_level(CHANNEL)
    opener_id = stable_id("alert", "new_story", "s1")
    assert parent["metadata"] == {"event_type": "flankwatch_alert", "event_payload": {"alert_id": opener_id}}
    assert parent["thread_ts"] is None
    assert _row(settings, opener_id).remote_id == parent["ts"]

    # a number that replaced an earlier one: weight 3, broadcast to the channel as well
    _grow(settings, "s1", [_new("LRT", 30, "5000"), _new("Delfi", 40)], replaces={"5000": "4800"})
    update = alert(settings, now=T0 + minutes(70))
    assert (update.created, update.sent, update.by_kind) == (1, 1, {"story_update": 1})
    [reply] = fake_slack.replies(CHANNEL, parent["ts"])
    assert reply["thread_ts"] == parent["ts"] and _id(reply) == update.alert_ids[0]
    summary, diff = reply["blocks"][0]["text"]["text"], reply["blocks"][1]["text"]["text"]
    assert summary == "2 new articles · now 5 articles from 3 independent outlets"
    assert diff == "*What is new*\n• 4800 → 5000"
    assert reply["reply_broadcast"] is True
    row = _row(settings, update.alert_ids[0])
    assert (row.parent_id, row.thread_ts, row.broadcast, row.detail["weight"]) == (opener_id, parent["ts"], True, 3.0)
    # the parent was brought up to date: 5 articles now
    [edit] = fake_slack.updates
    assert (edit["channel"], edit["ts"]) == (CHANNEL, parent["ts"])
    assert "*Articles*\n5" in _fields(edit["blocks"])
    assert fake_slack.message(CHANNEL, parent["ts"])["edited"]

    # only a new outlet: weight 1, a reply in the thread and nothing in the channel
    _grow(settings, "s1", [_new("LRT", 100), _new("Wirtualna Polska", 110)])
    second = alert(settings, now=T0 + minutes(140))
    assert second.sent == 1
    first_reply, source_reply = fake_slack.replies(CHANNEL, parent["ts"])
    assert _id(source_reply) == second.alert_ids[0]
    assert source_reply["blocks"][1]["text"]["text"] == "*What is new*\n• new source: Wirtualna Polska"
    assert source_reply["reply_broadcast"] is False
    assert _row(settings, second.alert_ids[0]).detail["weight"] == 1.0
    assert len(fake_slack.top_level()) == 1  # still one thread
    latest = fake_slack.updates[-1]
    assert latest["ts"] == parent["ts"] and "*Articles*\n7" in _fields(latest["blocks"])
    assert any("4 independent" in text and "Wirtualna Polska" in text for text in _fields(latest["blocks"]))
    _safe(fake_slack)


@pytest.mark.parametrize(("weight", "broadcast"), [(3.0, True), (3.5, False)])
def test_broadcast_needs_the_configured_weight(settings, fake_slack, weight, broadcast):
    settings = _slack(settings, fake_slack, alert_broadcast_weight=weight)
    _story(settings, "s1")
    alert(settings, now=T0)
    _grow(settings, "s1", [_new("LRT", 30, "5000"), _new("Delfi", 40)], replaces={"5000": "4800"})
    alert(settings, now=T0 + minutes(70))
    [parent] = fake_slack.top_level()
    [reply] = fake_slack.replies(CHANNEL, parent["ts"])
    assert reply["reply_broadcast"] is broadcast
    # the sender asks for the broadcast only when the development weighs enough
    posts = [r for r in fake_slack.requests if r.path == "/api/chat.postMessage"]
    assert posts[-1].body.get("reply_broadcast", False) is broadcast


def test_replaying_many_updates_keeps_one_thread_per_story(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    stories = ["s1", "s2", "s3"]
    for number, story_id in enumerate(stories):
        _story(settings, story_id, headline=f"Story {number}: brigade moves to Rukla")
    # story s4 never reaches the thresholds: no thread
    _story(settings, "s4", sources=("LRT",))
    for step in range(4):
        now = T0 + minutes(70 * step)
        if step:
            for story_id in stories:
                base = 70 * step - 40
                _grow(settings, story_id, [_new("LRT", base, f"{1000 * step}"), _new(f"Outlet {step}", base + 5)])
        first = alert(settings, now=now)
        again = alert(settings, now=now)  # the same run replayed: nothing new
        assert first.created == 3 and again.created == 0
    assert alert(settings, now=T0 + minutes(1000)).created == 0

    top = fake_slack.top_level()
    assert len(top) == len(stories)
    assert sorted(_id(m) for m in top) == sorted(stable_id("alert", "new_story", s) for s in stories)
    assert len(fake_slack.alert_ids()) == len(set(fake_slack.alert_ids())) == 4 * len(stories)
    with session_scope(settings) as session:
        rows = alerts(session)
        for story_id in stories:
            opener = session.get(Alert, stable_id("alert", "new_story", story_id))
            updates = [r.id for r in rows if r.story_id == story_id and r.kind == "story_update"]
            thread = fake_slack.replies(CHANNEL, opener.remote_id)
            assert [_id(m) for m in thread] == updates and len(updates) == 3
            assert all(r.parent_id == opener.id for r in rows if r.id in updates)
    _safe(fake_slack)


# --- merges ----------------------------------------------------------------------------------------


def test_merge_is_announced_in_both_threads(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    _story(settings, "a", sources=("LRT", "Delfi"))
    _story(settings, "b", sources=("Tagesschau", "BNS", "ERR"), headline=HOSTILE)
    assert alert(settings, now=T0).sent == 2
    a_ts = _row(settings, stable_id("alert", "new_story", "a")).remote_id
    b_ts = _row(settings, stable_id("alert", "new_story", "b")).remote_id

    _merge(settings, "a", "b", at=T0 + minutes(10))
    summary = alert(settings, now=T0 + minutes(20))
    assert (summary.created, summary.sent, summary.by_kind) == (2, 2, {"story_merged": 2})
    [in_a] = fake_slack.replies(CHANNEL, a_ts)
    [in_b] = fake_slack.replies(CHANNEL, b_ts)
    survivor_text, absorbed_text = in_a["blocks"][0]["text"]["text"], in_b["blocks"][0]["text"]["text"]
    assert survivor_text.startswith("Merged: the story “&lt;!channel&gt; brigade")
    assert "(3 articles) turned out to be this one." in survivor_text
    assert f"<{_link(b_ts)}|Open its thread>" in survivor_text
    assert absorbed_text.startswith("This story turned out to be part of “German brigade moves 5000 troops to Rukla”")
    assert f"<{_link(a_ts)}|Open its thread>" in absorbed_text
    assert in_a["reply_broadcast"] is False and in_b["reply_broadcast"] is False
    assert len(fake_slack.top_level()) == 2

    posts = _posts(fake_slack)
    assert alert(settings, now=T0 + minutes(30)).created == 0
    assert alert(settings, now=T0 + minutes(40)).created == 0
    assert _posts(fake_slack) == posts  # announced once

    # the survivor's updates go on in its own thread; the absorbed one's thread hears no more
    _grow(settings, "a", [_new("LRT", 50, "Pabradė"), _new("Wirtualna Polska", 55)])
    later = alert(settings, now=T0 + minutes(100))
    assert later.by_kind == {"story_update": 1}
    assert [_id(m) for m in fake_slack.replies(CHANNEL, a_ts)][-1] == later.alert_ids[0]
    assert len(fake_slack.replies(CHANNEL, b_ts)) == 1
    assert len(fake_slack.top_level()) == 2
    update = fake_slack.replies(CHANNEL, a_ts)[-1]
    assert "now 7 articles from 6 independent outlets" in update["blocks"][0]["text"]["text"]
    _safe(fake_slack)


def test_merge_into_a_story_without_thread_goes_on_in_the_absorbed_thread(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    _story(settings, "a", sources=("LRT",))  # below the thresholds: no alert, no thread
    _story(settings, "b", sources=THREE)
    assert alert(settings, now=T0).sent == 1
    b_ts = _row(settings, stable_id("alert", "new_story", "b")).remote_id

    _merge(settings, "a", "b", at=T0 + minutes(10))
    summary = alert(settings, now=T0 + minutes(20))
    assert sorted(summary.by_kind.items()) == [("new_story", 1), ("story_merged", 1)]
    thread = {_id(m): m for m in fake_slack.replies(CHANNEL, b_ts)}
    assert len(thread) == 2
    opened = thread.pop(stable_id("alert", "new_story", "a"))
    [note] = thread.values()
    assert note["blocks"][0]["text"]["text"].startswith("This story turned out to be part of a bigger one, “")
    assert "its updates continue in this thread" in note["blocks"][0]["text"]["text"]
    assert "Open its thread" not in note["blocks"][0]["text"]["text"]  # the survivor has no thread to link
    assert opened["reply_broadcast"] is True  # a story's first alert, in a thread: shown in the channel
    assert len(fake_slack.top_level()) == 1

    _grow(settings, "a", [_new("LRT", 50, "Pabradė"), _new("Delfi", 60)])
    later = alert(settings, now=T0 + minutes(100))
    assert later.by_kind == {"story_update": 1}
    assert _id(fake_slack.replies(CHANNEL, b_ts)[-1]) == later.alert_ids[0]
    assert _row(settings, later.alert_ids[0]).parent_id == stable_id("alert", "new_story", "b")
    assert len(fake_slack.top_level()) == 1
    _safe(fake_slack)


def test_absorbed_thread_that_goes_on_does_not_send_readers_away(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    _story(settings, "a", sources=("LRT",))
    _story(settings, "b", sources=THREE)
    alert(settings, now=T0)
    b_ts = _row(settings, stable_id("alert", "new_story", "b")).remote_id
    _merge(settings, "a", "b", at=T0 + minutes(10))
    alert(settings, now=T0 + minutes(20))
    [note] = [m for m in fake_slack.replies(CHANNEL, b_ts) if _row(settings, _id(m)).kind == "story_merged"]
    assert "continue there" not in note["blocks"][0]["text"]["text"]


def test_merge_note_links_a_thread_that_was_pending_when_the_merge_was_seen(settings, fake_slack):
    settings = _slack(settings, fake_slack, slack_max_wait_seconds=0)
    _story(settings, "b", sources=("Tagesschau", "BNS", "ERR"))
    alert(settings, now=T0)
    _story(settings, "a", sources=("LRT", "Delfi"))
    fake_slack.fail_next(1, "channel_not_found")
    alert(settings, now=T0 + minutes(5))  # a's thread opener stays pending
    _merge(settings, "a", "b", at=T0 + minutes(10))
    summary = alert(settings, now=T0 + minutes(20))
    assert summary.sent == 3  # a's opener, then both notes
    a_ts = _row(settings, stable_id("alert", "new_story", "a")).remote_id
    b_ts = _row(settings, stable_id("alert", "new_story", "b")).remote_id
    [note] = fake_slack.replies(CHANNEL, b_ts)
    assert f"<{_link(a_ts)}|Open its thread>" in note["blocks"][0]["text"]["text"]


# --- provenance: single source, state-affiliated outlets -------------------------------------------


def _first_line(message: dict) -> str:
    return message["blocks"][1]["text"]["text"].splitlines()[0]


def test_single_source_is_marked_low_and_corroboration_is_broadcast(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    _story(settings, "s1", sources=("LRT", "LRT", "LRT"))
    first = alert(settings, now=T0)
    [opener] = fake_slack.top_level()
    assert _first_line(opener) == "*Single source: only LRT reports this so far*"
    assert opener["text"].startswith("Single source: only LRT reports this so far: ")
    assert _row(settings, first.alert_ids[0]).severity == "low"

    _grow(settings, "s1", [_new("Delfi", 30), _new("LRT", 40)])
    update = alert(settings, now=T0 + minutes(70))
    [reply] = fake_slack.replies(CHANNEL, opener["ts"])
    assert reply["blocks"][1]["text"]["text"] == (
        "*What is new*\n• now confirmed by 2 independent outlets\n• new source: Delfi"
    )
    assert reply["reply_broadcast"] is True
    row = _row(settings, update.alert_ids[0])
    assert (row.severity, row.detail["weight"]) == ("normal", 4.0)
    # the parent no longer says single source
    edit = fake_slack.updates[-1]
    assert "Single source" not in json.dumps(edit["blocks"]) and "Single source" not in edit["text"]
    _safe(fake_slack)


def test_single_source_skipped_until_a_second_outlet(settings, fake_slack):
    settings = _slack(settings, fake_slack, alert_single_source="skip")
    _story(settings, "s1", sources=("LRT", "LRT", "LRT"))
    assert alert(settings, now=T0).created == 0
    assert alert(settings, now=T0 + minutes(10)).created == 0
    assert fake_slack.messages == []

    _grow(settings, "s1", [_new("Delfi", 15)])
    summary = alert(settings, now=T0 + minutes(20))
    assert summary.by_kind == {"new_story": 1} and summary.sent == 1
    [opener] = fake_slack.top_level()
    assert _first_line(opener) == "*Why it alerts:* New story: 4 articles from 2 independent sources"
    assert "Single source" not in opener["text"]
    assert _row(settings, summary.alert_ids[0]).severity == "normal"
    _safe(fake_slack)


def _feeds(settings) -> dict[str, int]:
    """Feeds by outlet: two state-affiliated Russian ones, two Lithuanian ones that are not."""
    with session_scope(settings) as session:
        feeds = [
            Feed(url="https://ria.example/rss", name="RIA Novosti", country="RU", state_affiliated=True),
            Feed(url="https://rt.example/rss", name="RT", country="RU", state_affiliated=True),
            Feed(url="https://lrt.example/rss", name="LRT", country="LT", state_affiliated=False),
            Feed(url="https://delfi.example/rss", name="Delfi", country="LT"),
        ]
        session.add_all(feeds)
        session.flush()
        return {feed.name: feed.id for feed in feeds}


def _link_feeds(settings, story_id: str, feeds: dict[str, int]) -> None:
    with session_scope(settings) as session:
        for article in session.query(Article).filter(Article.story_id == story_id):
            article.feed_id = feeds.get(article.source)


def test_state_affiliated_outlets_only(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    feeds = _feeds(settings)
    _story(settings, "s1", sources=("RT", "RIA Novosti"))
    _link_feeds(settings, "s1", feeds)
    alert(settings, now=T0)
    [opener] = fake_slack.top_level()
    assert _first_line(opener) == "*Only state-affiliated outlets report this: RIA Novosti (RU), RT (RU)*"
    assert opener["text"].startswith("Only state-affiliated outlets report this: RIA Novosti (RU), RT (RU): ")
    assert "*Sources*\n2 independent: RIA Novosti ⚑ state-affiliated (RU), RT ⚑ state-affiliated (RU)" in _fields(
        opener["blocks"]
    )

    # a reply in the thread of such a story says it again
    _grow(settings, "s1", [_new("RT", 30, "5000"), _new("RIA Novosti", 40)])
    _link_feeds(settings, "s1", feeds)
    alert(settings, now=T0 + minutes(70))
    [reply] = fake_slack.replies(CHANNEL, opener["ts"])
    assert reply["blocks"][0]["text"]["text"].splitlines()[0] == (
        "*Only state-affiliated outlets report this: RIA Novosti (RU), RT (RU)*"
    )
    _safe(fake_slack)


def test_mixed_story_flags_the_state_outlet_without_the_lead(settings, fake_slack):
    settings = _slack(settings, fake_slack)
    feeds = _feeds(settings)
    _story(settings, "s1", sources=("LRT", "RT", "Delfi"))
    _link_feeds(settings, "s1", feeds)
    alert(settings, now=T0)
    [opener] = fake_slack.top_level()
    assert _first_line(opener).startswith("*Why it alerts:*")
    assert "state-affiliated outlets report" not in opener["text"]
    [sources] = [f for f in _fields(opener["blocks"]) if f.startswith("*Sources*")]
    assert sources == "*Sources*\n3 independent: Delfi, LRT, RT ⚑ state-affiliated (RU)"

    # a new state-affiliated outlet is flagged in the diff
    _grow(settings, "s1", [_new("RIA Novosti", 30), _new("LRT", 40)])
    _link_feeds(settings, "s1", feeds)
    alert(settings, now=T0 + minutes(70))
    [reply] = fake_slack.replies(CHANNEL, opener["ts"])
    assert reply["blocks"][1]["text"]["text"] == "*What is new*\n• new source: RIA Novosti (state-affiliated, RU)"
    assert not reply["blocks"][0]["text"]["text"].startswith("*Only")
    _safe(fake_slack)


# --- delivery --------------------------------------------------------------------------------------


def test_timed_out_post_is_found_not_posted_again(settings, fake_slack):
    settings = _slack(settings, fake_slack, slack_timeout_seconds=0.5, slack_max_wait_seconds=5)
    _story(settings, "s1")
    fake_slack.chaos(rate_slow=1.0, slow_seconds=2, methods=["chat.postMessage"])
    summary = alert(settings, now=T0)
    assert (summary.sent, summary.pending) == (1, 0)
    opener_id = stable_id("alert", "new_story", "s1")
    assert fake_slack.alert_ids() == [opener_id]  # Slack has it once
    assert [r.path for r in fake_slack.requests] == ["/api/chat.postMessage", "/api/conversations.history"]
    [stored] = fake_slack.top_level()
    row = _row(settings, opener_id)
    assert (row.status, row.remote_id, row.remote_channel, row.attempts, row.in_doubt) == (
        "sent", stored["ts"], CHANNEL, 1, False
    )  # fmt: skip
    _safe(fake_slack)


def test_timed_out_reply_is_found_in_its_thread(settings, fake_slack):
    settings = _slack(settings, fake_slack, slack_timeout_seconds=0.5, slack_max_wait_seconds=5)
    _story(settings, "s1")
    alert(settings, now=T0)
    [parent] = fake_slack.top_level()
    _grow(settings, "s1", [_new("LRT", 30, "5000"), _new("Delfi", 40)])
    fake_slack.chaos(rate_slow=1.0, slow_seconds=2, methods=["chat.postMessage"])
    seen = len(fake_slack.requests)
    summary = alert(settings, now=T0 + minutes(70))
    assert (summary.created, summary.sent, summary.pending) == (1, 1, 0)
    [update_id] = summary.alert_ids
    assert fake_slack.alert_ids().count(update_id) == 1
    assert [_id(m) for m in fake_slack.replies(CHANNEL, parent["ts"])] == [update_id]
    paths = [r.path for r in fake_slack.requests[seen:]]
    assert paths[:2] == ["/api/chat.postMessage", "/api/conversations.replies"]
    assert "/api/chat.update" in paths and paths.count("/api/chat.postMessage") == 1
    row = _row(settings, update_id)
    assert (row.status, row.thread_ts, row.in_doubt) == ("sent", parent["ts"], False)
    assert row.remote_id == fake_slack.replies(CHANNEL, parent["ts"])[0]["ts"]
    _safe(fake_slack)


@pytest.mark.parametrize("mode", ["channel_not_found", "ratelimited"])
def test_replies_wait_for_their_parent_and_keep_their_order(settings, fake_slack, mode):
    settings = _slack(settings, fake_slack, slack_max_wait_seconds=0)
    _story(settings, "s1")
    opener_id = stable_id("alert", "new_story", "s1")
    fake_slack.fail_next(1, mode)
    alert(settings, now=T0)
    _grow(settings, "s1", [_new("LRT", 30, "5000"), _new("Delfi", 40)])
    fake_slack.fail_next(1, mode)
    first = alert(settings, now=T0 + minutes(70))
    _grow(settings, "s1", [_new("LRT", 100, "Pabradė"), _new("Delfi", 110)])
    fake_slack.fail_next(1, mode)
    second = alert(settings, now=T0 + minutes(140))
    assert first.created == second.created == 1
    assert fake_slack.messages == []
    for update_id in first.alert_ids + second.alert_ids:
        row = _row(settings, update_id)
        assert (row.status, row.parent_id, row.attempts) == ("pending", opener_id, 0)  # never tried
    assert _row(settings, opener_id).attempts == 3

    summary = alert(settings, now=T0 + minutes(150))
    assert (summary.sent, summary.pending) == (3, 0)
    assert fake_slack.alert_ids() == [opener_id, *first.alert_ids, *second.alert_ids]
    [parent] = fake_slack.top_level()
    assert [_id(m) for m in fake_slack.replies(CHANNEL, parent["ts"])] == first.alert_ids + second.alert_ids
    _safe(fake_slack)


@pytest.mark.parametrize(("quiet_hours", "posted"), [("07:00-09:00", False), ("22:00-07:00", True)])
def test_quiet_hours_hold_the_alert(settings, fake_slack, quiet_hours, posted):
    route = AlertRoute(name="brigade", channel="C0BRIGADE", quiet_hours=quiet_hours, timezone="UTC")
    settings = _slack(settings, fake_slack, alert_routes=[route])
    _story(settings, "s1")
    summary = alert(settings, now=T0)  # 08:00 UTC
    row = _row(settings, summary.alert_ids[0])
    assert row.route == "brigade"
    if posted:
        assert (summary.sent, summary.held, row.status) == (1, 0, "sent")
        assert [m["channel"] for m in fake_slack.top_level()] == ["C0BRIGADE"]
    else:
        assert (summary.sent, summary.held, row.status, row.held_reason) == (0, 1, "held", "quiet_hours")
        assert fake_slack.requests == []
        assert alert(settings, now=T0 + minutes(30)).sent == 0
        assert fake_slack.messages == []


def test_opener_follows_its_story_without_a_reply(settings, fake_slack):
    """A single-source story's second outlet arrives alone (no update due: one new article): the opening
    message is refreshed all the same, and stops saying "single source"; a run with no change edits nothing."""
    settings = _slack(settings, fake_slack)
    _story(settings, "s1", sources=("LRT", "LRT", "LRT"))
    alert(settings, now=T0)
    [parent] = fake_slack.top_level()
    assert "Single source" in parent["blocks"][1]["text"]["text"]
    with session_scope(settings) as session:
        add_articles(session, session.get(Story, "s1"), [{"source": "Delfi", "enriched_at": T0 + minutes(5)}])
    summary = alert(settings, now=T0 + minutes(10))
    assert summary.created == 0
    [edit] = fake_slack.updates
    assert edit["ts"] == parent["ts"]
    assert "Single source" not in edit["blocks"][1]["text"]["text"]
    alert(settings, now=T0 + minutes(20))
    assert len(fake_slack.updates) == 1
