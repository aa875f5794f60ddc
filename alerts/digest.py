"""Digests: what a route held back (quiet hours, budget) and what its stories did, in one message.

A route's digest is due at each of its boundaries (`alerts.routing.digest_boundaries`: the daily `digest_at`
and the end of its quiet hours, on the route's own clock). It covers the time since the route's previous
digest (else the 24 hours before), lists the stories most active in that period with their counts, their
developments and a link to their Slack thread, and carries every alert the route held: those become
`digested` and name the digest, so nothing a route held is lost. The id is deterministic (route and period
end), so re-running finds the digest it wrote and builds nothing; a period with nothing to report gets no
digest at all.

A digest is an outbox row like any alert (`alerts.outbox.add`), never held: delivery sends it as a
top-level message.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from alerts import outbox
from alerts.blocks import BLOCKS_MAX, SECTION_TEXT_MAX, context, header, names, section
from alerts.escape import ELLIPSIS, clean_text, escape_mrkdwn, link, truncate
from alerts.routing import digest_boundaries
from alerts.threads import thread_link, thread_parent
from core.db import session_scope
from core.ids import stable_id
from core.models import Alert, Article, Story, StoryEvent
from core.settings import SEVERITIES, AlertRoute, Settings

DEFAULT_PERIOD = timedelta(hours=24)  # a route's first digest looks back this far
HEADLINE_MAX = 300
HELD_LINE_MAX = 400  # one held alert's line in the list: its fallback text, cut
FALLBACK_MAX = 300
HELD_KINDS = {
    "new_story": "new story",
    "story_update": "story update",
    "story_merged": "stories merged",
    "watch_match": "saved search",
    "spike": "spike",
}


def digest_id(route_name: str, period_end: datetime) -> str:
    return stable_id("alert", "digest", route_name, period_end.isoformat())


@dataclass
class StoryEntry:
    """A story as the digest shows it."""

    story: Story
    added: int  # articles that joined it in the period
    developments: list[str]  # the period's new facts, "4800 → 5000" where a number replaced another
    thread: str | None  # the web link of its Slack thread in the route's channel


# --- text helpers ------------------------------------------------------------------------------------


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def _cut(text: str, limit: int) -> str:
    """`text` (escaped mrkdwn) cut to `limit`, never inside an entity and never inside a `<...>` link:
    a link that does not fit is left out whole."""
    if len(text) <= limit:
        return text
    cut = truncate(text, limit)
    opened = cut.rfind("<")
    if opened > cut.rfind(">"):
        cut = text[:opened].rstrip() + ELLIPSIS
    return cut


def _local(moment: datetime, zone: ZoneInfo) -> datetime:
    return moment.astimezone(zone)


def local_period(route: AlertRoute, start: datetime, end: datetime) -> str:
    """"2025-03-02 07:00 – 2025-03-03 07:00 EET", on the route's clock (both zones named across a DST change)."""
    zone = ZoneInfo(route.timezone)
    first, last = _local(start, zone), _local(end, zone)
    tail = f"{last:%H:%M}" if first.date() == last.date() else f"{last:%Y-%m-%d %H:%M}"
    head = f"{first:%Y-%m-%d %H:%M}"
    if first.tzname() != last.tzname():
        head += f" {first.tzname()}"
    return f"{head} – {tail} {last.tzname()}"


# --- what the period holds ---------------------------------------------------------------------------


def _stored_moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def previous_digest_end(session: Session, route: AlertRoute) -> datetime | None:
    """The end of the route's newest digest (from its detail), or None before its first."""
    newest = session.scalars(
        select(Alert).where(Alert.kind == "digest", Alert.route == route.name)
        .order_by(Alert.created_at.desc(), Alert.id.desc()).limit(1)
    ).first()
    return _stored_moment((newest.detail or {}).get("period_end")) if newest is not None else None


def period_for(
    session: Session, route: AlertRoute, now: datetime, since: datetime | None = None
) -> tuple[datetime, datetime] | None:
    """(start, end) of the digest due at `now`, or None when none is: no boundary yet, or the previous
    digest already reaches the latest boundary. With `since`: the ad-hoc period from `since` to `now`."""
    if since is not None:
        return (since, now) if since < now else None
    boundaries = digest_boundaries(route, now)
    if not boundaries:
        return None
    end = boundaries[0]
    previous = previous_digest_end(session, route)
    if previous is not None and previous >= end:
        return None
    return (previous if previous is not None else end - DEFAULT_PERIOD), end


def held_alerts(session: Session, route: AlertRoute, end: datetime) -> list[Alert]:
    """Every alert the route holds that was created before `end`, oldest first (whenever it was held:
    a held alert waits for a digest however long that takes)."""
    return list(session.scalars(
        select(Alert)
        .where(Alert.route == route.name, Alert.status == "held", Alert.created_at < end)
        .order_by(Alert.created_at, Alert.id)
    ))


def _routes_topic(settings: Settings, route: AlertRoute, topic: str | None) -> bool:
    """Whether some alert of this topic would go to `route` (routes match first-come, by severity)."""
    return any(settings.route_for(topic, severity).name == route.name for severity in SEVERITIES)


def _added(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Articles that joined each story in [start, end) (enrichment assigns the story as it enriches)."""
    rows = session.execute(
        select(Article.story_id, func.count(Article.id))
        .where(Article.story_id.is_not(None), Article.enriched_at >= start, Article.enriched_at < end)
        .group_by(Article.story_id)
    )
    return {story_id: count for story_id, count in rows}


def _developments(session: Session, story_ids: list[str], start: datetime, end: datetime) -> dict[str, list[str]]:
    """The period's development facts per story: events of articles that joined in the period (or, for an
    event without an article, recorded in it), numbers shown as the diff "4800 → 5000"."""
    if not story_ids:
        return {}
    in_period = or_(
        and_(Article.enriched_at >= start, Article.enriched_at < end),
        and_(StoryEvent.article_id.is_(None), StoryEvent.created_at >= start, StoryEvent.created_at < end),
    )
    events = session.scalars(
        select(StoryEvent)
        .outerjoin(Article, Article.id == StoryEvent.article_id)
        .where(StoryEvent.kind == "development", StoryEvent.story_id.in_(story_ids), in_period)
        .order_by(StoryEvent.at, StoryEvent.id)
    )
    facts: dict[str, list[str]] = {}
    seen: dict[str, set[str]] = {}
    for event in events:
        replaces = (event.detail or {}).get("replaces") or {}
        for fact in event.facts or []:
            if not isinstance(fact, str):
                continue
            old = replaces.get(fact) if isinstance(replaces, dict) else None
            shown = f"{old} → {fact}" if isinstance(old, str) and old else fact
            key = " ".join(shown.split()).casefold()
            if key and key not in seen.setdefault(event.story_id, set()):
                seen[event.story_id].add(key)
                facts.setdefault(event.story_id, []).append(shown)
    return facts


def top_stories(
    session: Session, settings: Settings, route: AlertRoute, start: datetime, end: datetime, held: list[Alert]
) -> list[StoryEntry]:
    """The route's stories most active in [start, end): ranked by articles added, then independent sources.

    Candidates are the stories of the route's topics that gained articles in the period and are big enough
    to have alerted (`alert_min_articles` or `alert_min_sources`), and the stories of its held alerts.
    """
    added = _added(session, start, end)
    held_story_ids = {alert.story_id for alert in held if alert.story_id}
    ids = sorted(set(added) | held_story_ids)
    if not ids:
        return []
    candidates = []
    for story in session.scalars(select(Story).where(Story.id.in_(ids), Story.merged_into.is_(None))):
        if story.id not in held_story_ids:
            if not _routes_topic(settings, route, story.topic):
                continue
            if story.article_count < settings.alert_min_articles and story.source_count < settings.alert_min_sources:
                continue
        candidates.append(story)
    candidates.sort(key=lambda s: (-added.get(s.id, 0), -(s.source_count or 0), -(s.article_count or 0), s.id))
    chosen = candidates[: max(0, min(settings.digest_top_stories, BLOCKS_MAX - 3))]  # header, held, context
    developments = _developments(session, [s.id for s in chosen], start, end)
    return [
        StoryEntry(
            story=story,
            added=added.get(story.id, 0),
            developments=developments.get(story.id, []),
            thread=thread_link(settings, thread_parent(session, story.id, route.channel)),
        )
        for story in chosen
    ]


# --- the message -------------------------------------------------------------------------------------


def _languages(counts: dict[str, int] | None) -> list[str]:
    ranked = sorted((counts or {}).items(), key=lambda item: (-int(item[1] or 0), item[0]))
    return [f"{code} ({count})" for code, count in ranked]


def story_section(rank: int, entry: StoryEntry) -> dict[str, Any]:
    story = entry.story
    headline = _cut(escape_mrkdwn(clean_text(story.headline) or "(untitled story)"), HEADLINE_MAX)
    counts = [
        f"{_plural(entry.added, 'new article')} in the period ({story.article_count or 0} in all)",
        _plural(story.source_count or 0, "independent source"),
    ]
    languages = names(_languages(story.language_counts))
    if languages:
        counts.append(f"languages: {languages}")
    lines = [f"*{rank}. {headline}*", " · ".join(counts)]
    thread = link(entry.thread, "Slack thread") if entry.thread else ""
    if entry.developments:
        room = SECTION_TEXT_MAX - len("\n".join(lines)) - (len(thread) + 1 if thread else 0) - 1
        lines.append(_cut(f"Developments: {names(entry.developments)}", room))
    if thread:
        lines.append(thread)
    return section(_cut("\n".join(lines), SECTION_TEXT_MAX))


def _held_line(alert: Alert, zone: ZoneInfo) -> str:
    """A held alert in the list: kind, local time and its fallback text (escaped when it was built)."""
    label = HELD_KINDS.get(alert.kind, clean_text(alert.kind))
    text = clean_text(str((alert.payload or {}).get("text") or "")) or escape_mrkdwn(label)
    when = f"{_local(alert.created_at, zone):%d %b %H:%M}" if alert.created_at else ""
    reason = " (over budget)" if alert.held_reason == "budget" else ""
    return _cut(f"• {escape_mrkdwn(label)} · {when}{reason}: {text}", HELD_LINE_MAX)


def held_sections(lines: list[str], max_blocks: int) -> tuple[list[dict[str, Any]], int]:
    """Sections of at most SECTION_TEXT_MAX characters listing `lines` (first under a title), in at most
    `max_blocks` blocks; and how many lines fit."""
    if max_blocks <= 0:
        return [], 0
    sections: list[dict[str, Any]] = []
    current = ["*Also held*"]
    size = len(current[0])
    shown = 0
    for line in lines:
        if size + 1 + len(line) > SECTION_TEXT_MAX:
            if len(sections) + 1 >= max_blocks:
                break
            sections.append(section("\n".join(current)))
            current, size = [], -1
        current.append(line)
        size += 1 + len(line)
        shown += 1
    if shown:
        sections.append(section("\n".join(current)))
    return sections, shown


def _held_counts(held: list[Alert]) -> str:
    quiet = sum(1 for alert in held if alert.held_reason == "quiet_hours")
    budget = sum(1 for alert in held if alert.held_reason == "budget")
    other = len(held) - quiet - budget
    parts = []
    if quiet:
        parts.append(f"{_plural(quiet, 'alert')} held during quiet hours")
    if budget:
        parts.append(f"{budget} over budget" if parts else f"{_plural(budget, 'alert')} held over budget")
    if other:
        parts.append(f"{other} held" if parts else f"{_plural(other, 'alert')} held")
    return ", ".join(parts) or "no alerts held"


def digest_message(
    route: AlertRoute, start: datetime, end: datetime, stories: list[StoryEntry], others: list[Alert],
    carried: list[Alert], waiting: int,
) -> dict[str, Any]:
    """`{"text", "blocks"}` of the digest. `others`: the carried alerts not about the listed stories;
    `carried`: every alert this digest carries; `waiting`: held alerts left for the next digest (no room)."""
    zone = ZoneInfo(route.timezone)
    period = local_period(route, start, end)
    blocks: list[dict[str, Any]] = [header(f"Digest {route.name}: {period}")]
    blocks += [story_section(rank, entry) for rank, entry in enumerate(stories, 1)]
    if others:
        sections, _ = held_sections([_held_line(alert, zone) for alert in others], BLOCKS_MAX - len(blocks) - 1)
        blocks += sections
    summary = [_plural(len(stories), "story", "stories") + " active", _held_counts(carried)]
    if waiting:
        summary.append(f"{waiting} more held for the next digest (no room)")
    summary.append(f"Flankwatch digest · route {escape_mrkdwn(clean_text(route.name))}")
    blocks.append(context(" · ".join(summary)))
    fallback = f"Flankwatch digest {route.name}: {period}: {_plural(len(stories), 'story', 'stories')}, {_held_counts(carried)}"
    return {"text": truncate(escape_mrkdwn(clean_text(fallback)), FALLBACK_MAX), "blocks": blocks[:BLOCKS_MAX]}


# --- building ----------------------------------------------------------------------------------------


def _digest_for(
    session: Session, settings: Settings, route: AlertRoute, now: datetime, since: datetime | None
) -> Alert | None:
    period = period_for(session, route, now, since)
    if period is None:
        return None
    start, end = period
    identifier = digest_id(route.name, end)
    if session.get(Alert, identifier) is not None:
        return None
    held = held_alerts(session, route, end)
    stories = top_stories(session, settings, route, start, end, held)
    if not stories and not held:
        return None  # nothing to report: no empty digest

    listed = {entry.story.id for entry in stories}
    about_stories = [alert for alert in held if alert.story_id in listed]
    others = [alert for alert in held if alert.story_id not in listed]
    # The blocks left for the list of other held alerts decide how many this digest can carry; the rest
    # stay held for the next one (never carried unseen).
    room = BLOCKS_MAX - 2 - len(stories)
    zone = ZoneInfo(route.timezone)
    _, fits = held_sections([_held_line(alert, zone) for alert in others], room)
    shown_others = others[:fits]
    carried = sorted(about_stories + shown_others, key=lambda a: (a.created_at, a.id))
    payload = digest_message(route, start, end, stories, shown_others, carried, len(others) - fits)

    digest = Alert(
        id=identifier,
        kind="digest",
        story_id=None,
        topic=None,
        route=route.name,
        severity="normal",
        channel=route.channel,
        story_article_count=0,
        payload=payload,
        detail={
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "stories": [entry.story.id for entry in stories],
            "held": [alert.id for alert in carried],
        },
        status="pending",
        thread_key=None,
        parent_id=None,
        attempts=0,
        created_at=now,
    )
    if not outbox.add(session, digest):
        return None  # another run wrote it first: it carries the held alerts
    for alert in carried:
        alert.status, alert.digest_id = "digested", digest.id
    session.flush()
    return digest


def build_digests(
    session: Session,
    settings: Settings,
    now: datetime,
    *,
    route: str | AlertRoute | None = None,
    since: datetime | None = None,
) -> list[Alert]:
    """Write the digests due at `now` (every route, or only `route`), carrying their held alerts; return them.

    `since`: an ad-hoc digest from `since` to `now` instead of the one of the latest boundary.
    Flushes but does not commit: the caller owns the transaction.
    """
    if now.tzinfo is None or (since is not None and since.tzinfo is None):
        raise ValueError("naive datetime: pass UTC-aware clocks")
    if isinstance(route, str):
        routes = [settings.route_named(route)]
    else:
        routes = [route] if route is not None else settings.routes()
    created = []
    for each in routes:
        digest = _digest_for(session, settings, each, now, since)
        if digest is not None:
            created.append(digest)
    return created


def run_digest(
    settings: Settings,
    *,
    now: datetime | None = None,
    route: str | AlertRoute | None = None,
    since: datetime | None = None,
    slack_token: str | None = None,
) -> dict[str, Any]:
    """Build the digests due at `now`, commit them, then deliver the outbox (Slack with a token and a
    channel, else the console). Safe to re-run: a digest is built once per route and period end."""
    from alerts.run import deliver_outbox

    now = now or datetime.now(UTC)
    with session_scope(settings) as session:
        created = build_digests(session, settings, now, route=route, since=since)
        digests = [
            {
                "id": digest.id,
                "route": digest.route,
                "channel": digest.channel,
                "period_start": digest.detail["period_start"],
                "period_end": digest.detail["period_end"],
                "stories": len(digest.detail["stories"]),
                "held": len(digest.detail["held"]),
            }
            for digest in created
        ]
        session.commit()
    sent, failed, pending = deliver_outbox(settings, now=now, slack_token=slack_token)
    return {
        "created": len(digests),
        "carried": sum(d["held"] for d in digests),
        "sent": sent,  # everything the outbox delivered in this run (digests and any alert left pending)
        "failed": failed,
        "pending": pending,
        "digests": digests,
    }
