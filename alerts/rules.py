"""Alert rules: which stories deserve a message now. They write outbox rows; delivery is elsewhere.

One Slack thread per story and channel: a story's first alert opens it with the whole story (who reported
first, independent outlets, state-affiliated ones flagged, "single source" when one outlet is all there
is); later alerts reply in it with only what is new, the developments as a diff ("4800 → 5000", "new
place: Rukla"), and a weighty development is also broadcast to the channel. A merge is announced in the
threads of both stories.

Ids are deterministic (`core.ids.stable_id`), so evaluating the rules twice, or after a crash, finds the
row it wrote the first time instead of creating a second message.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, false, func, select
from sqlalchemy.orm import Session

from alerts.blocks import Provenance, reply_message, story_message
from alerts.outbox import add
from alerts.routing import place
from alerts.threads import thread_link, thread_parent
from core.ids import stable_id
from core.models import Alert, Article, Feed, Story, StoryEvent
from core.settings import AlertRoute, Settings
from core.text import fold

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


STORY_KINDS = ("new_story", "story_update")
MERGE_LOOKBACK = timedelta(days=7)
# What a development weighs: a broadcast to the channel needs `alert_broadcast_weight` (3 by default).
WEIGHTS = {"replaced": 3.0, "number": 2.0, "place": 2.0, "name": 1.0, "source": 1.0, "language": 1.0,
           "corroborated": 3.0}  # fmt: skip
SOURCE_WEIGHT_MAX = 2.0  # new outlets add at most this much together


def severity_of(settings: Settings, story: Story) -> str:
    """low: one outlet alone; high: `alert_high_sources` independent outlets or more; else normal."""
    if (story.source_count or 0) <= 1:
        return "low"
    return "high" if story.source_count >= settings.alert_high_sources else "normal"


def provenance(session: Session, story: Story, articles: list[Article]) -> Provenance:
    """Who reports the story: the first outlet, the independent ones, the state-affiliated among them."""
    feed_ids = {a.feed_id for a in articles if a.feed_id is not None}
    feeds = {f.id: f for f in session.scalars(select(Feed).where(Feed.id.in_(feed_ids)))} if feed_ids else {}
    copies = story.copy_sources or {}
    independent = {name for name, n in (story.sources or {}).items() if n > copies.get(name, 0)}
    state: dict[str, str] = {}
    for article in articles:
        feed = feeds.get(article.feed_id) if article.feed_id is not None else None
        if feed is not None and feed.state_affiliated and article.source:
            state.setdefault(article.source, feed.country or "")
    originals = [a for a in articles if not a.syndicated_from] or articles
    first = min(originals, key=lambda a: (a.published_at, a.id)) if originals else None
    return Provenance(
        first_source=first.source if first is not None else "",
        first_at=first.published_at if first is not None else None,
        independent=story.source_count or 0,
        state_outlets=tuple(sorted(state.items())),
        only_state=bool(independent) and independent <= set(state),
    )


def story_thread(session: Session, story_id: str, channel: str) -> Alert | None:
    """The thread of a story in a channel: its own, else that of a story merged into it (the thread an
    analyst already follows goes on)."""
    parent = thread_parent(session, story_id, channel)
    if parent is not None:
        return parent
    absorbed = session.scalars(select(Story.id).where(Story.merged_into == story_id).order_by(Story.first_seen))
    for absorbed_id in absorbed:
        parent = thread_parent(session, absorbed_id, channel)
        if parent is not None:
            return parent
    return None


def _story_route(session: Session, settings: Settings, story: Story, severity: str) -> AlertRoute:
    """The route of the story's latest alert (its thread lives there), else the route of topic and severity."""
    name = session.scalar(
        select(Alert.route)
        .where(Alert.story_id == story.id, Alert.kind.in_(STORY_KINDS), Alert.route.is_not(None))
        .order_by(Alert.created_at.desc(), Alert.id.desc())
        .limit(1)
    )
    if name:
        try:
            return settings.route_named(name)
        except KeyError:
            pass  # the route was removed from the configuration
    return settings.route_for(story.topic, severity)


def rendered_counts(story: Story) -> list[int]:
    """What a story's opening message shows in counts: when these change, the message is refreshed."""
    return [story.article_count or 0, story.source_count or 0, len(story.language_counts or {}),
            story.syndicated_outlets or 0]  # fmt: skip


def mark_stale_openers(session: Session, settings: Settings, now: datetime) -> int:
    """Flag the sent opening messages of active stories whose counts changed since they were rendered
    (a second outlet that came without a reply-worthy update included): delivery refreshes them."""
    since = now - timedelta(hours=settings.cluster_window_hours)
    rows = session.execute(
        select(Alert, Story)
        .join(Story, Story.id == Alert.story_id)
        .where(Alert.kind.in_(STORY_KINDS), Alert.parent_id.is_(None), Alert.status == "sent",
               Alert.stale.is_(False), Story.last_seen >= since, Story.merged_into.is_(None))
    )  # fmt: skip
    marked = 0
    for alert, story in rows:
        if (alert.detail or {}).get("rendered") != rendered_counts(story):
            alert.stale = True
            marked += 1
    return marked


def _alert(kind: str, alert_id: str, story: Story, payload: dict, now: datetime, **extra: object) -> Alert:
    return Alert(
        id=alert_id,
        kind=kind,
        story_id=story.id,
        topic=story.topic,
        thread_key=story.id,
        story_article_count=story.article_count or 0,
        payload=payload,
        status="pending",
        attempts=0,
        created_at=now,
        **extra,
    )


def _why_new(story: Story) -> str:
    return (f"New story: {_plural(story.article_count, 'article')} from "
            f"{_plural(story.source_count, 'independent source')}")  # fmt: skip


def _opening(session: Session, kind: str, story: Story, why: str, new_facts: list[str] | None = None) -> dict:
    articles = _story_articles(session, story.id)
    if story.representative_article_id:
        articles.sort(key=lambda article: article.id != story.representative_article_id)
    return story_message(
        kind, story, _by_source_first(articles), why=why, new_facts=new_facts or [],
        provenance=provenance(session, story, articles),
    )  # fmt: skip


def opener_payload(session: Session, settings: Settings, parent: Alert) -> dict | None:
    """The opening message of a story's thread as it reads now (for `chat.update`), or None for alerts
    that are not about a story."""
    if parent.kind not in STORY_KINDS or not parent.story_id:
        return None
    story = session.get(Story, parent.story_id)
    seen: set[str] = set()
    # an absorbed story's thread goes on with the survivor's news, unless the survivor has a thread of its own
    while story is not None and story.merged_into and story.id not in seen:
        if thread_parent(session, story.merged_into, parent.channel) is not None:
            break
        seen.add(story.id)
        story = session.get(Story, story.merged_into)
    if story is None:
        return None
    return _opening(session, "new_story", story, _why_new(story))


def new_story_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """(a) A story big enough (articles OR sources) that has never had a new_story alert. A story told by
    one outlet alone alerts as "single source" (low severity), or waits for a second outlet when
    `alert_single_source` is `skip`."""
    already = select(Alert.id).where(Alert.story_id == Story.id, Alert.kind == "new_story").exists()
    stories = session.scalars(
        select(Story)
        .where(
            (Story.article_count >= settings.alert_min_articles) | (Story.source_count >= settings.alert_min_sources),
            # every story, not only the active ones: one that became alert-worthy while the alert stage was
            # down for longer than the clustering window still gets its alert (late, but never lost)
            Story.merged_into.is_(None),
            ~already,
        )
        .order_by(Story.first_seen, Story.id)
    )
    created = []
    for story in stories:
        if (story.source_count or 0) <= 1 and settings.alert_single_source == "skip":
            continue
        severity = severity_of(settings, story)
        payload = _opening(session, "new_story", story, _why_new(story))
        alert = _alert("new_story", new_story_alert_id(story.id), story, payload, now, severity=severity,
                       detail={"sources": story.source_count, "articles": story.article_count,
                               "rendered": rendered_counts(story)})  # fmt: skip
        place(session, settings, alert, now)
        parent = story_thread(session, story.id, alert.channel)
        if parent is not None:  # a saved search (or a merged story) opened the thread first
            alert.parent_id, alert.broadcast = parent.id, True
        if add(session, alert):
            created.append(alert)
    return created


def _active(session: Session, settings: Settings) -> list[ColumnElement[bool]]:
    """The stories that can still take articles (as `enrichment.clustering.active_stories`: not merged, last
    article within `cluster_window_hours` of the newest story's): only they gain articles to send an update
    about, and reading only them keeps that rule's cost flat however long the history (ix_stories_active)."""
    newest = session.scalar(select(func.max(Story.last_seen)).where(Story.merged_into.is_(None)))
    if newest is None:
        return [false()]
    return [Story.merged_into.is_(None), Story.last_seen >= newest - timedelta(hours=settings.cluster_window_hours)]


def _update_candidates(session: Session, settings: Settings, now: datetime) -> list[tuple[str, datetime]]:
    """(story id, time of its last alert) for active stories quiet long enough and with enough new articles."""
    last = (
        select(Alert.story_id.label("story_id"), func.max(Alert.created_at).label("last_at"))
        .where(Alert.story_id.in_(select(Story.id).where(*_active(session, settings))), Alert.kind.in_(STORY_KINDS))
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


def _places(settings: Settings, topic: str | None) -> set[str]:
    try:
        config = settings.topic(topic or "")
    except KeyError:
        return set()
    return {fold(place.rstrip("*")) for place in config.places if place.strip("*")}


def _is_place(fact: str, places: set[str]) -> bool:
    folded = fold(fact)
    return any(folded == place or (len(place) >= 4 and folded.startswith(place)) for place in places)


def developments(
    settings: Settings, story: Story, facts: list[str], replaced: dict[str, str], new_sources: list[str],
    new_languages: list[str], state: dict[str, str], sources_before: int,
) -> tuple[list[str], float]:
    """The diff an analyst reads ("4800 → 5000", "new place: Rukla", "new source: LRT") and its weight."""
    places = _places(settings, story.topic)
    items: list[str] = []
    weight = 0.0
    if sources_before <= 1 < (story.source_count or 0):
        items.append(f"now confirmed by {story.source_count} independent outlets")
        weight += WEIGHTS["corroborated"]
    for fact in facts:
        if fact in replaced:
            items.append(f"{replaced[fact]} → {fact}")
            weight += WEIGHTS["replaced"]
        elif fact[:1].isdigit():
            items.append(f"new figure: {fact}")
            weight += WEIGHTS["number"]
        elif _is_place(fact, places):
            items.append(f"new place: {fact}")
            weight += WEIGHTS["place"]
        else:
            items.append(f"new name: {fact}")
            weight += WEIGHTS["name"]
    for source in new_sources:
        flag = f" (state-affiliated{', ' + state[source] if state.get(source) else ''})" if source in state else ""
        items.append(f"new source: {source}{flag}")
    weight += min(SOURCE_WEIGHT_MAX, WEIGHTS["source"] * len(new_sources))
    for language in new_languages:
        items.append(f"new language: {language}")
        weight += WEIGHTS["language"]
    return items, weight


def story_update_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """(b) A story that already alerted and has since gained enough articles that add something new:
    facts (`novel_terms`) or a source its earlier articles did not have. In the story's thread it is a
    reply with only what is new; without a thread (its first alert was held for a digest) it opens one."""
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
        earlier_languages = {a.language or "und" for a in earlier}
        new_languages = _unique(a.language for a in reversed(new) if a.language and a.language not in earlier_languages)
        replaced = _replaced_numbers(session, story_id, new_ids)
        origin = provenance(session, story, articles)
        sources_before = len({_key(a.source or "") for a in earlier if not a.syndicated_from})
        items, weight = developments(
            settings, story, new_facts, replaced, new_sources, new_languages, dict(origin.state_outlets),
            sources_before,
        )
        severity = severity_of(settings, story)
        alert_id = update_alert_id(story_id, new[0].id)
        route = _story_route(session, settings, story, severity)
        detail = {"weight": weight, "developments": items, "new_articles": len(new), "sources": story.source_count}
        alert = _alert("story_update", alert_id, story, {}, now, severity=severity, detail=detail)
        place(session, settings, alert, now, route=route)
        parent = story_thread(session, story_id, alert.channel)
        if parent is not None:
            summary = (f"{_plural(len(new), 'new article')} · now {_plural(story.article_count, 'article')} from "
                       f"{_plural(story.source_count, 'independent outlet')}")  # fmt: skip
            alert.payload = reply_message("story_update", story, new, summary=summary, developments=items,
                                          lead=origin.lead() if origin.only_state else None)  # fmt: skip
            alert.parent_id = parent.id
            alert.broadcast = weight >= settings.alert_broadcast_weight
        else:
            alert.detail = {**detail, "rendered": rendered_counts(story)}
            why = _update_why(len(new), _with_replaced(new_facts, replaced), new_sources)
            alert.payload = story_message(
                "story_update", story, new + earlier[::-1], why=why, new_facts=_with_replaced(new_facts, replaced),
                provenance=origin,
            )  # fmt: skip
        if add(session, alert):
            created.append(alert)
    return created


def merge_payload(session: Session, settings: Settings, alert: Alert) -> dict:
    """The merge note of a `story_merged` alert, rendered when it is sent: the link to the other story's
    thread exists only once that thread's opener is sent, which may be after the merge was seen."""
    from alerts.blocks import context, section
    from alerts.escape import escape_mrkdwn, link

    detail = alert.detail or {}
    role = detail.get("role")
    other = session.get(Story, detail.get("absorbed") if role == "survivor" else detail.get("survivor"))
    other_parent = session.get(Alert, detail.get("other_parent") or "") if detail.get("other_parent") else None
    title = f"“{' '.join(((other.headline if other else '') or '(untitled story)').split())}”"
    articles = _plural((other.article_count or 0) if other else 0, "article")
    if role == "survivor":
        text = f"Merged: the story {title} ({articles}) turned out to be this one."
    elif other_parent is None:
        text = f"This story turned out to be part of a bigger one, {title}; its updates continue in this thread."
    else:
        text = f"This story turned out to be part of {title}; its updates continue in that story's thread."
    url = thread_link(settings, other_parent)
    shown = escape_mrkdwn(text) + (f" {link(url, 'Open its thread')}" if url else "")
    story_id = escape_mrkdwn(detail.get("survivor") or "")
    return {
        "text": escape_mrkdwn(text + (f" {url}" if url else "")),
        "blocks": [section(shown), context(f"Flankwatch stories merged · story `{story_id}`")],
    }


def story_merged_alerts(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """(c) Two stories turned out to be one: the surviving story's thread says so and links the other;
    the absorbed story's thread points to the survivor's (or, when only it has a thread, goes on there)."""
    events = session.scalars(
        select(StoryEvent)
        .where(StoryEvent.kind == "merged", StoryEvent.at > now - MERGE_LOOKBACK, StoryEvent.at <= now)
        .order_by(StoryEvent.at, StoryEvent.id)
    )
    created = []
    for event in events:
        survivor = session.get(Story, event.story_id)
        absorbed = session.get(Story, (event.detail or {}).get("absorbed") or "")
        if survivor is None or absorbed is None:
            continue
        channels = set(session.scalars(
            select(Alert.channel).where(Alert.thread_key.in_((survivor.id, absorbed.id)), Alert.parent_id.is_(None),
                                        Alert.status.in_(("pending", "sent")))
        ))  # fmt: skip
        for channel in sorted(channels):
            mine, theirs = thread_parent(session, survivor.id, channel), thread_parent(session, absorbed.id, channel)
            for role, parent, other_parent in (("survivor", mine, theirs), ("absorbed", theirs, mine)):
                if parent is None:
                    continue
                detail = {"survivor": survivor.id, "absorbed": absorbed.id, "role": role,
                          "other_parent": other_parent.id if other_parent is not None else None}  # fmt: skip
                alert = _alert("story_merged", stable_id("alert", "story_merged", event.id, parent.id), survivor,
                               {}, now, severity=parent.severity or "normal", detail=detail)  # fmt: skip
                alert.payload = merge_payload(session, settings, alert)
                alert.thread_key = parent.thread_key
                place(session, settings, alert, now, route=_route_of(settings, parent))
                alert.channel, alert.parent_id = parent.channel, parent.id
                if add(session, alert):
                    created.append(alert)
    return created


def _route_of(settings: Settings, alert: Alert) -> AlertRoute:
    try:
        return settings.route_named(alert.route or "default")
    except KeyError:
        return settings.route_for(alert.topic, alert.severity or "normal")


def evaluate(session: Session, settings: Settings, now: datetime) -> list[Alert]:
    """Write the outbox rows (status pending, or held) the story rules call for at `now`, and return them.

    Flushes but does not commit: the caller owns the transaction.
    """
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass a UTC-aware clock")
    # Updates first: a story that gets its first alert in this run must not also get an update.
    updates = story_update_alerts(session, settings, now)
    merges = story_merged_alerts(session, settings, now)
    created = new_story_alerts(session, settings, now) + updates + merges
    mark_stale_openers(session, settings, now)
    return created
