"""Builders for the alerts tests: stories and articles written straight through the ORM (no model, no
feeds), plus settings pointed at a FakeSlack. No tests here."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.ids import stable_id
from core.models import Alert, Article, Story
from core.settings import Settings

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)
TOPIC = "lithuania-brigade"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def slack_settings(settings: Settings, url: str, token: str, **extra: Any) -> Settings:
    """`settings` with Slack pointed at the fake server, one default channel and no routes."""
    update = {
        "slack_api_url": url,
        "slack_token": SecretStr(token),
        "slack_channel": "C0FLANKWATCH",
        "alert_routes": [],
        **extra,
    }
    return settings.model_copy(update=update)


def add_articles(session: Session, story: Story, specs: list[dict[str, Any]]) -> list[Article]:
    """Add articles to `story` and recompute its counts the way enrichment keeps them.

    A spec needs `source`; optional: title, url, language, published_at, enriched_at, novel_terms.
    """
    start = session.scalar(select(func.count()).select_from(Article).where(Article.story_id == story.id)) or 0
    added = []
    for offset, spec in enumerate(specs):
        number = start + offset
        url = spec.get("url", f"https://{spec['source'].lower().replace(' ', '-')}.example/{story.id}/{number}")
        article = Article(
            id=stable_id("article", story.id, str(number)),
            source=spec["source"],
            url=url,
            canonical_url=f"{url}#{story.id}-{number}",
            title=spec.get("title", f"{spec['source']} report {number} on the brigade"),
            summary="",
            language=spec.get("language", "en"),
            published_at=spec.get("published_at", T0),
            fetched_at=spec.get("enriched_at", T0),
            updated_at=spec.get("enriched_at", T0),
            content_hash=stable_id("hash", story.id, str(number)),
            enriched_at=spec.get("enriched_at", T0),
            topic=story.topic,
            relevance=0.9,
            relevant=True,
            story_id=story.id,
            novel_terms=spec.get("novel_terms"),
        )
        session.add(article)
        added.append(article)
    session.flush()
    articles = list(session.scalars(select(Article).where(Article.story_id == story.id)))
    sources = Counter(a.source for a in articles)
    story.article_count = len(articles)
    story.source_count = len(sources)
    story.sources = dict(sources)
    story.language_counts = dict(Counter(a.language or "und" for a in articles))
    story.first_seen = min(a.published_at for a in articles)
    story.last_seen = max(a.published_at for a in articles)
    if story.representative_article_id is None:
        story.representative_article_id = articles[0].id
    session.flush()
    return added


def add_story(
    session: Session,
    story_id: str,
    specs: list[dict[str, Any]],
    *,
    headline: str = "German brigade moves 5000 troops to Rukla",
    topic: str = TOPIC,
) -> Story:
    story = Story(
        id=story_id,
        topic=topic,
        headline=headline,
        first_seen=T0,
        last_seen=T0,
        centroid=b"\x00" * 16,
        created_at=T0,
        updated_at=T0,
    )
    session.add(story)
    session.flush()
    add_articles(session, story, specs)
    return story


def alerts(session: Session) -> list[Alert]:
    session.expire_all()
    return list(session.scalars(select(Alert).order_by(Alert.created_at, Alert.id)))
