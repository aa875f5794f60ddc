"""One pipeline cycle end to end on the embedded default: real feeds over HTTP on 127.0.0.1, the real model,
SQLite state and archive, alerts to the console file or to a fake Slack Web API."""

from __future__ import annotations

import json

import pytest
import yaml
from sqlalchemy import func, select

from archive import open_archive
from archive.base import HL_END, HL_START, SearchQuery
from core.db import session_scope
from core.models import Alert, Article, FetchRecord, Story
from flankwatch.pipeline import run_once
from fakeslack import TOKEN, FakeSlack
from feedserver import closed_port_url
from scenario import BASE, ITEMS, write_feeds_file
from flankwatch.replay_server import ReplayServer

pytestmark = pytest.mark.slow


@pytest.fixture
def served(settings, tmp_path, embedder):
    with ReplayServer(ITEMS) as server:
        feeds = write_feeds_file(tmp_path / "feeds.yaml", server)
        # the replay server is on 127.0.0.1: lift the SSRF guard; no politeness delay toward our own server
        local = {"allow_private_addresses": True, "fetch_host_delay_seconds": 0.0}
        yield server, settings.model_copy(update={"feeds_file": feeds, **local})


def test_one_cycle_makes_stories_archive_and_alerts(served):
    server, settings = served
    now = BASE.replace(hour=12)
    summary = run_once(settings, now=now)
    assert summary.ok, summary.errors
    assert summary.stages["collect"]["new_articles"] == len(ITEMS)
    assert summary.stages["enrich"]["relevant"] >= 6

    with session_scope(settings) as session:
        stories = session.scalars(select(Story).order_by(Story.article_count.desc())).all()
        brigade = stories[0]
        assert brigade.article_count >= 3 and brigade.source_count >= 2
        assert "de" in brigade.language_counts
        transit = [s for s in stories if "Kaliningrad" in s.headline]
        assert transit and transit[0].id != brigade.id
        unrelated = session.scalars(select(Article).where(Article.title.like("%Champions League%"))).one()
        assert not unrelated.relevant and unrelated.story_id is None
        assert all("utm_" not in a.canonical_url for a in session.scalars(select(Article)))
        alerts = session.scalars(select(Alert)).all()
        assert any(a.kind == "new_story" and a.story_id == brigade.id for a in alerts)
        assert all(a.status == "sent" and a.delivery == "console" for a in alerts)

    with open_archive(settings) as archive:
        result = archive.search(SearchQuery(text="rudninkai"))
        assert result.total >= 2
        assert any(HL_START + "Rūdninkai" + HL_END in " ".join(frags)
                   for hit in result.hits for frags in hit.highlights.values())
        assert archive.count()["stories"] == len(stories)

    logged = [json.loads(line) for line in settings.alert_log.read_text(encoding="utf-8").splitlines()]
    assert len(logged) == len(alerts)


def test_second_cycle_is_304_and_duplicates_nothing(served):
    server, settings = served
    first = run_once(settings, now=BASE.replace(hour=12))
    second = run_once(settings, now=BASE.replace(hour=13))
    assert second.ok, second.errors
    assert second.stages["collect"]["not_modified"] == len(server.outlets)
    assert second.stages["collect"]["new_articles"] == 0
    assert second.stages["enrich"]["enriched"] == 0
    assert second.stages["alert"]["created"] == 0 and second.stages["alert"]["sent"] == 0
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(Article)) == len(ITEMS)
        assert session.scalar(select(func.count()).select_from(Alert)) == first.stages["alert"]["created"]
        assert session.scalar(select(func.count()).select_from(FetchRecord)) == 2 * len(server.outlets)


def test_broken_feed_is_recorded_and_the_run_goes_on(served, tmp_path):
    server, settings = served
    feeds = yaml.safe_load(settings.feeds_file.read_text(encoding="utf-8"))
    feeds["feeds"].append({"name": "Dead Outlet", "url": closed_port_url("/rss"), "language": "en"})
    feeds["feeds"].append({"name": "Missing Feed", "url": server.base_url + "/feeds/missing.xml", "language": "en"})
    settings.feeds_file.write_text(yaml.safe_dump(feeds), encoding="utf-8")

    summary = run_once(settings, now=BASE.replace(hour=12))
    assert summary.ok, summary.errors
    assert summary.stages["collect"]["errors"] == 2
    assert summary.stages["collect"]["new_articles"] == len(ITEMS)
    with session_scope(settings) as session:
        records = {r.feed_id: r for r in session.scalars(select(FetchRecord))}
        classes = sorted(r.error_class for r in records.values() if r.status == "error")
        assert classes == ["connect", "http_4xx"]


def test_alerts_reach_slack_with_escaped_block_kit(served):
    server, settings = served
    with FakeSlack() as slack:
        slack_settings = settings.model_copy(update={"slack_api_url": slack.url, "slack_channel": "#flank"})
        summary = run_once(slack_settings, now=BASE.replace(hour=12), slack_token=TOKEN)
        assert summary.ok, summary.errors
        assert summary.stages["alert"]["sent"] >= 1
        assert len(slack.messages) == summary.stages["alert"]["sent"]
        message = slack.messages[0]
        assert message["blocks"][0]["type"] == "header"
        assert any("rudninkai" in json.dumps(message["blocks"]).lower() or "4,800" in json.dumps(message["blocks"])
                   for message in slack.messages)
        again = run_once(slack_settings, now=BASE.replace(hour=13), slack_token=TOKEN)
        assert again.stages["alert"]["sent"] == 0
        assert len(slack.messages) == summary.stages["alert"]["sent"]
