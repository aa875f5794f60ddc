"""`flankwatch demo` replays real news from shared/data through the real pipeline and makes stories and alerts."""

from __future__ import annotations

import pytest
from rich.console import Console
from sqlalchemy import func, select

from archive import open_archive
from archive.base import HL_START, SearchQuery
from core.db import session_scope
from core.models import Alert, Article, Feed, Story
from flankwatch.demo import run_demo

pytestmark = pytest.mark.slow


def test_demo_makes_stories_and_alerts_and_is_idempotent(settings, shared_data, embedder):
    console = Console(record=True, width=160)
    result = run_demo(settings, data_dir=shared_data, limit=150, cycles=6, console=console)
    assert result.errors == []
    assert result.new_articles > 100 and result.relevant > 10

    with session_scope(settings) as session:
        grown = session.scalars(select(Story).where(Story.article_count >= 2)).all()
        assert grown, "no story with two or more articles"
        alerts = session.scalars(select(Alert)).all()
        assert alerts and all(a.status == "sent" for a in alerts)
        # one thread per story: the top-level messages are the stories that alerted, the rest are replies
        story_alerts = [a for a in alerts if a.kind in ("new_story", "story_update", "story_merged")]
        top_level = [a for a in story_alerts if a.parent_id is None]
        assert len(top_level) == len({a.thread_key for a in story_alerts}) == len({a.story_id for a in top_level})
        assert all(a.thread_ts for a in story_alerts if a.parent_id is not None)
        articles = session.scalar(select(func.count()).select_from(Article))
        # The demo feeds are left disabled, so a scheduled run never polls the stopped local server.
        assert not any(f.enabled for f in session.scalars(select(Feed).where(Feed.origin == "demo")))

    with open_archive(settings) as archive:
        hits = archive.search(SearchQuery(text="brigade"))
        assert hits.total >= 1
        assert any(HL_START in frag for hit in hits.hits for frags in hit.highlights.values() for frag in frags)

    again = run_demo(settings, data_dir=shared_data, limit=150, cycles=6, console=console)
    assert again.new_articles == 0 and again.alert_ids == []
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(Article)) == articles
        assert session.scalar(select(func.count()).select_from(Alert)) == len(alerts)
