"""Alert rules: which stories deserve a message now. They write outbox rows; delivery is elsewhere.

Ids are deterministic (`core.ids.stable_id`), so evaluating the rules twice, or after a crash, finds the
row it wrote the first time instead of creating a second message.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from alerts.blocks import story_message
from core.ids import stable_id
from core.models import Alert, Article, Story, StoryEvent
from core.settings import Settings

FACTS_IN_WHY = 8  # facts named in the one-line reason; the message lists all of them


def new_story_alert_id(story_id: str) -> str:
    return stable_id("alert", "new_story", story_id)


def update_alert_id(story_id: str, newest_article_id: str) -> str:
    return stable_id("alert", "story_update", story_id, newest_article_id)


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


def _unique(values: Iterable[str]) -> list[str]:
    """Values in first-seen order, without repeats that differ only in case or spacing."""
    seen: set[str] = set()
    unique = []
    for value in values:
        key = _key(value)
        if key and key not in seen:
            seen.add(key)
            unique.append(" ".join(value.split()))
    return unique


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _by_source_first(articles: list[Article]) -> list[Article]:
    """One article per source first (in the given order), then the rest: the top links show the spread."""
    seen: set[str] = set()
    first, rest = [], []
    for article in articles:
        key = _key(article.source or "")
        (rest if key in seen else first).append(article)
        seen.add(key)
    return first + rest


def _story_articles(session: Session, story_id: str) -> list[Article]:
    return list(
        session.scalars(select(Article).where(Article.story_id == story_id).order_by(Article.published_at, Article.id))
    )


def _add(session: Session, alert: Alert) -> bool:
    """Insert the row unless it exists; False when another run got there first (same deterministic id)."""
    if session.get(Alert, alert.id) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(alert)
    except IntegrityError:
        return False
    return True


def _alert(settings: Settings, kind: str, alert_id: str, story: Story, payload: dict, now: datetime) -> Alert:
    return Alert(
        id=alert_id,
        kind=kind,
        story_id=story.id,
        topic=story.topic,
        channel=settings.channel_for(story.topic),
        story_article_count=story.article_count or 0,
        payload=payload,
        status="pending",
        attempts=0,
        created_at=now,
    )


def new_story_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """(a) A story big enough (articles OR sources) that has never had a new_story alert."""
    already = select(Alert.id).where(Alert.story_id == Story.id, Alert.kind == "new_story").exists()
    stories = session.scalars(
        select(Story)
        .where(
            (Story.article_count >= settings.alert_min_articles) | (Story.source_count >= settings.alert_min_sources),
            Story.merged_into.is_(None),
            ~already,
        )
        .order_by(Story.first_seen, Story.id)
    )
    created = []
    for story in stories:
        articles = _story_articles(session, story.id)
        if story.representative_article_id:
            articles.sort(key=lambda article: article.id != story.representative_article_id)
        why = f"New story: {_plural(story.article_count, 'article')} from {_plural(story.source_count, 'source')}"
        payload = story_message("new_story", story, _by_source_first(articles), why=why, new_facts=[])
        alert = _alert(settings, "new_story", new_story_alert_id(story.id), story, payload, now)
        if _add(session, alert):
            created.append(alert)
    return created


def _update_candidates(session: Session, settings: Settings, now: datetime) -> list[tuple[str, datetime]]:
    """(story id, time of its last alert) for stories quiet long enough and with enough new articles."""
    last = (
        select(Alert.story_id.label("story_id"), func.max(Alert.created_at).label("last_at"))
        .where(Alert.story_id.is_not(None))
        .group_by(Alert.story_id)
        .subquery()
    )
    rows = session.execute(
        select(last.c.story_id, last.c.last_at)
        .join(Article, Article.story_id == last.c.story_id)
        .where(
            last.c.last_at <= now - timedelta(minutes=settings.update_min_interval_minutes),
            Article.enriched_at > last.c.last_at,
            Article.enriched_at <= now,
        )
        .group_by(last.c.story_id, last.c.last_at)
        .having(func.count(Article.id) >= settings.update_min_new_articles)
        .order_by(last.c.last_at, last.c.story_id)
    )
    return [(story_id, last_at) for story_id, last_at in rows]


def _update_why(new_count: int, facts: list[str], sources: list[str]) -> str:
    parts = [f"Story update: {_plural(new_count, 'new article')}"]
    if facts:
        named = ", ".join(facts[:FACTS_IN_WHY])
        more = len(facts) - FACTS_IN_WHY
        parts.append(f"new facts: {named}" + (f" (+{more} more)" if more > 0 else ""))
    if sources:
        parts.append(f"new sources: {', '.join(sources)}")
    return ", ".join(parts)


def _replaced_numbers(session: Session, story_id: str, article_ids: set[str]) -> dict[str, str]:
    """New number -> the known number it replaces, from the development events of these articles."""
    replaced: dict[str, str] = {}
    events = session.scalars(
        select(StoryEvent).where(StoryEvent.story_id == story_id, StoryEvent.kind == "development",
                                 StoryEvent.article_id.in_(article_ids))
    )
    for event in events:
        for new, old in (event.detail or {}).get("replaces", {}).items():
            if isinstance(new, str) and isinstance(old, str):
                replaced.setdefault(new, old)
    return replaced


def _with_replaced(facts: list[str], replaced: dict[str, str]) -> list[str]:
    """"37000" -> "25000 → 37000" where the story knew the number it replaces: the diff an analyst reads."""
    return [f"{replaced[fact]} → {fact}" if fact in replaced else fact for fact in facts]


def story_update_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """(b) A story that already alerted and has since gained enough articles that add something new:
    facts (`novel_terms`) or a source its earlier articles did not have."""
    created = []
    for story_id, last_at in _update_candidates(session, settings, now):
        story = session.get(Story, story_id)
        if story is None:
            continue
        articles = _story_articles(session, story_id)
        new = [a for a in articles if a.enriched_at is not None and last_at < a.enriched_at <= now]
        new_ids = {a.id for a in new}
        earlier = [a for a in articles if a.id not in new_ids]
        new.sort(key=lambda a: (a.enriched_at, a.published_at, a.id), reverse=True)  # newest first

        earlier_sources = {_key(a.source or "") for a in earlier}
        new_sources = _unique(a.source for a in reversed(new) if a.source and _key(a.source) not in earlier_sources)
        new_facts = _unique(term for a in reversed(new) for term in (a.novel_terms or []) if isinstance(term, str))
        if len(new) < settings.update_min_new_articles or not (new_facts or new_sources):
            continue  # more of the same: no message; the articles still count toward the next update
        new_facts = _with_replaced(new_facts, _replaced_numbers(session, story_id, new_ids))

        why = _update_why(len(new), new_facts, new_sources)
        payload = story_message("story_update", story, new + earlier[::-1], why=why, new_facts=new_facts)
        alert = _alert(settings, "story_update", update_alert_id(story_id, new[0].id), story, payload, now)
        if _add(session, alert):
            created.append(alert)
    return created


def evaluate(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """Write the outbox rows (status pending) the rules call for at `now`, and return them.

    Flushes but does not commit: the caller owns the transaction.
    """
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a UTC-aware clock")
    # Updates first: a story that gets its first alert in this run must not also get an update.
    updates = story_update_alerts(session, settings, now)
    return new_story_alerts(session, settings, now) + updates
