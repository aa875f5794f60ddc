"""Stories in the browser: the most active stories (`/stories`) and one story's whole record
(`/stories/{id}`): its articles in order, who reported first, independent confirmations and syndicated
copies, state-affiliated outlets, the developments as diffs ("4800 → 5000"), births, growth and merges,
and the alerts sent about it with links to their Slack messages. JSON twins under /api/.

The data comes from the state DB (`core.models`), not the archive: it holds what the archive does not
(events, alerts, feeds). A story page reads by indexed columns only (`Article.story_id`, `StoryEvent`'s
(story_id, at), `Alert.story_id`, `Story.merged_into`, primary keys) and caps what it lists, so it stays fast
whatever the size of the database.
"""

from __future__ import annotations

import math
import re
import time as clock
from collections.abc import Mapping
from datetime import datetime, time, timezone
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.threads import message_link
from core.db import session_scope
from core.models import Alert, Article, Feed, Story, StoryEvent
from core.settings import Settings
from flankwatch.web.app import render, settings_of

router = APIRouter()

PER_PAGE = 25
MAX_PAGE = 400  # deeper than this is a search, not browsing
SORTS = {"last_seen": "most recently active first", "articles": "most articles first"}
# One story page lists at most this many articles: the first half and the latest half when it is cut.
TIMELINE_MAX = 500
EVENTS_MAX = 300
ALERTS_MAX = 200
ABSORBED_MAX = 100


# --- small helpers, shared with desk_pages ---------------------------------------------------------------


_HTTP_URL = re.compile(r"https?://[^\x00-\x20\x7f/?#\\]+(?:[/?#][^\x00-\x20\x7f]*)?", re.IGNORECASE)


def http_url(url: str | None) -> str | None:
    """`url` if it may become a link (http or https with a host, no spaces or control characters), else
    None: `javascript:`, `data:` and the like are shown as text."""
    if not url or not isinstance(url, str):
        return None
    return url if _HTTP_URL.fullmatch(url) else None


def iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo is timezone.utc else value.astimezone(timezone.utc)).isoformat()


def when(value: str | None) -> str:
    """An ISO timestamp of the data, as the page shows it: `2025-03-03 08:00 UTC`."""
    if not value:
        return "–"
    if value.endswith("+00:00") and len(value) >= 16 and value[10] == "T":  # what `iso` writes: cut, not parsed
        return f"{value[:10]} {value[11:16]} UTC"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    return f"{parsed.astimezone(timezone.utc):%Y-%m-%d %H:%M} UTC"


def parse_moment(value: str | None, *, end: bool = False) -> datetime | None:
    """`YYYY-MM-DD` (the whole day: from its start, or `end`: to its last moment) or ISO 8601; UTC unless
    it names a zone. Raises ValueError with a message an analyst can act on."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        if len(value) == 10:
            day = datetime.strptime(value, "%Y-%m-%d").date()
            return datetime.combine(day, time.max if end else time.min, tzinfo=timezone.utc)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _story_link(story_id: str) -> str:
    return f"/stories/{quote(story_id, safe='')}"


# --- the list ------------------------------------------------------------------------------------------


def _json_key_exists(column: Any, key: str) -> Any:
    """EXISTS a key `key` in the JSON object `column` (SQLite and PostgreSQL both have `json_each`; unlike a
    JSON path, a key with quotes or dots needs no escaping)."""
    entries = func.json_each(column).table_valued("key").alias("entry")
    return select(entries.c.key).select_from(entries).where(entries.c.key == key).exists()


def stories_filters(params: Mapping[str, str]) -> dict[str, Any]:
    """The list's filters from the query string; raises ValueError on a bad date, sort or page."""
    sort = (params.get("sort") or "last_seen").strip()
    if sort not in SORTS:
        raise ValueError(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    try:
        page = int(params.get("page") or 1)
    except ValueError:
        raise ValueError("page must be a number") from None
    if not 1 <= page <= MAX_PAGE:
        raise ValueError(f"page must be between 1 and {MAX_PAGE}")
    since, until = params.get("since") or "", params.get("until") or ""
    date_from, date_to = parse_moment(since), parse_moment(until, end=True)
    if date_from and date_to and date_from > date_to:
        raise ValueError("since is after until")
    return {
        "q": (params.get("q") or "").strip(),
        "topic": (params.get("topic") or "").strip(),
        "source": (params.get("source") or "").strip(),
        "language": (params.get("language") or "").strip(),
        "since": since.strip(),
        "until": until.strip(),
        "sort": sort,
        "page": page,
        "_from": date_from,
        "_to": date_to,
    }


def _public(filters: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in filters.items() if not key.startswith("_")}


def _page_link(filters: dict[str, Any], page: int) -> str:
    params = {k: v for k, v in _public(filters).items() if v and k != "page"}
    if page > 1:
        params["page"] = page
    return "/stories" + (f"?{urlencode(params)}" if params else "")


def story_summary(story: Story) -> dict[str, Any]:
    return {
        "id": story.id,
        "url": _story_link(story.id),
        "headline": story.headline,
        "topic": story.topic,
        "articles": story.article_count or 0,
        "independent_sources": story.source_count or 0,
        "syndicated_outlets": story.syndicated_outlets or 0,
        "languages": len(story.language_counts or {}),
        "language_counts": dict(sorted((story.language_counts or {}).items(), key=lambda kv: (-kv[1], kv[0]))),
        "first_seen": iso(story.first_seen),
        "last_seen": iso(story.last_seen),
        "born_at": iso(story.born_at),
    }


def stories_data(session: Session, filters: dict[str, Any]) -> dict[str, Any]:
    """The stories of the filters, a page of them, and how many there are. Stories merged into another
    are left out (their articles count in the survivor)."""
    where = [Story.merged_into.is_(None)]
    if filters["topic"]:
        where.append(Story.topic == filters["topic"])
    if filters["q"]:
        where.append(Story.headline.icontains(filters["q"], autoescape=True))
    if filters["source"]:
        where.append(_json_key_exists(Story.sources, filters["source"]))
    if filters["language"]:
        where.append(_json_key_exists(Story.language_counts, filters["language"]))
    if filters["_from"] is not None:  # active in the period: seen in it at least once
        where.append(Story.last_seen >= filters["_from"])
    if filters["_to"] is not None:
        where.append(Story.first_seen <= filters["_to"])
    order = (
        (Story.last_seen.desc(), Story.id)
        if filters["sort"] == "last_seen"
        else (Story.article_count.desc(), Story.last_seen.desc(), Story.id)
    )
    total = session.scalar(select(func.count()).select_from(Story).where(*where)) or 0
    page = filters["page"]
    rows = session.scalars(select(Story).where(*where).order_by(*order).offset((page - 1) * PER_PAGE).limit(PER_PAGE))
    pages = max(1, math.ceil(total / PER_PAGE))
    return {
        "stories": [story_summary(story) for story in rows],
        "total": total,
        "page": page,
        "per_page": PER_PAGE,
        "pages": pages,
        "sort": filters["sort"],
        "sort_meaning": SORTS[filters["sort"]],
        "filters": _public(filters),
        "previous": _page_link(filters, page - 1) if page > 1 else None,
        "next": _page_link(filters, page + 1) if page < pages else None,
    }


def _topics(settings: Settings) -> list[str]:
    return [topic.name for topic in settings.topics]


@router.get("/stories", response_class=HTMLResponse, summary="The most active stories (page)")
def stories_page(request: Request) -> HTMLResponse:
    settings = settings_of(request)
    params = dict(request.query_params)
    try:
        filters = stories_filters(params)
    except ValueError as exc:
        shown = {key: params.get(key, "") for key in ("q", "topic", "source", "language", "since", "until", "sort")}
        return render(request, "stories.html", status_code=400, error=str(exc), data=None, filters=shown,
                      sorts=SORTS, topics=_topics(settings), when=when)  # fmt: skip
    with session_scope(settings) as session:
        data = stories_data(session, filters)
    return render(request, "stories.html", error=None, data=data, filters=data["filters"], sorts=SORTS,
                  topics=_topics(settings), when=when)  # fmt: skip


@router.get("/api/stories", summary="The most active stories (JSON)")
def stories_api(
    request: Request, q: str = "", topic: str = "", source: str = "", language: str = "", since: str = "",
    until: str = "", sort: str = "last_seen", page: str = "1",
) -> JSONResponse:
    """Query parameters as /stories: q (in the headline), topic, source, language, since/until (YYYY-MM-DD or
    ISO 8601; a story counts when it was seen in the period), sort (last_seen | articles), page."""
    params = {"q": q, "topic": topic, "source": source, "language": language, "since": since, "until": until,
              "sort": sort, "page": page}  # fmt: skip
    try:
        filters = stories_filters(params)
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    with session_scope(settings_of(request)) as session:
        return JSONResponse(stories_data(session, filters))


# --- one story -----------------------------------------------------------------------------------------

_TIMELINE_COLUMNS = (
    Article.id, Article.feed_id, Article.source, Article.url, Article.title, Article.language,
    Article.published_at, Article.syndicated_from,
)  # fmt: skip


def _timeline_rows(session: Session, story_id: str, total: int) -> tuple[list[Any], list[Any]]:
    """The story's articles in publication order: all of them, or when there are more than
    `TIMELINE_MAX`, the first and the latest halves (head, tail)."""
    base = select(*_TIMELINE_COLUMNS).where(Article.story_id == story_id)
    if total <= TIMELINE_MAX:
        return list(session.execute(base.order_by(Article.published_at, Article.id).limit(TIMELINE_MAX))), []
    half = TIMELINE_MAX // 2
    head = list(session.execute(base.order_by(Article.published_at, Article.id).limit(half)))
    tail = list(session.execute(base.order_by(Article.published_at.desc(), Article.id.desc()).limit(half)))
    return head, tail[::-1]


def _state_outlets(session: Session, story_id: str) -> dict[str, str]:
    """Outlet -> country of the story's articles from state-affiliated feeds (`Feed.state_affiliated`)."""
    rows = session.execute(
        select(Article.source, Feed.country)
        .join(Feed, Feed.id == Article.feed_id)
        .where(Article.story_id == story_id, Feed.state_affiliated.is_(True))
        .distinct()
    )
    outlets: dict[str, str] = {}
    for source, country in rows:
        if source:
            outlets.setdefault(source, country or "")
    return dict(sorted(outlets.items()))


def _first_report(session: Session, story_id: str, head: list[Any]) -> Any | None:
    """Who reported first, as `alerts.rules.provenance` says: the earliest article that is not a copy of
    another (else the earliest of all). The head of the timeline holds it unless it is all copies."""
    for row in head:
        if not row.syndicated_from:
            return row
    original = session.execute(
        select(*_TIMELINE_COLUMNS)
        .where(Article.story_id == story_id, Article.syndicated_from.is_(None))
        .order_by(Article.published_at, Article.id)
        .limit(1)
    ).first()
    return original or (head[0] if head else None)


def _changes(event: Any) -> list[dict[str, Any]]:
    """A development's facts as a diff: a number that replaces a known one reads "4800 → 5000"."""
    replaces = (event.detail or {}).get("replaces") or {}
    changes = []
    for fact in event.facts or []:
        if not isinstance(fact, str):
            continue
        old = replaces.get(fact)
        old = old if isinstance(old, str) else None
        changes.append({"new": fact, "old": old, "text": f"{old} → {fact}" if old else fact})
    return changes


_EVENT_COLUMNS = (StoryEvent.kind, StoryEvent.at, StoryEvent.article_id, StoryEvent.facts, StoryEvent.detail)


def _event(event: Any) -> dict[str, Any]:
    detail = event.detail or {}
    item: dict[str, Any] = {"kind": event.kind, "at": iso(event.at), "article_id": event.article_id}
    if event.kind == "development":
        item["changes"] = _changes(event)
        item["summary"] = ", ".join(change["text"] for change in item["changes"])
    elif event.kind == "born":
        item["summary"] = f"became a story: {detail.get('articles', '?')} articles, {detail.get('sources', '?')} sources"
    elif event.kind == "growing":
        item["summary"] = (f"growing: {detail.get('articles_in_window', '?')} articles in "
                           f"{detail.get('window_hours', '?')} h (usually {detail.get('usual_per_hour', '?')}/h)")
    elif event.kind == "merged":
        absorbed = detail.get("absorbed")
        item["absorbed"] = {
            "id": absorbed if isinstance(absorbed, str) else None,
            "url": _story_link(absorbed) if isinstance(absorbed, str) and absorbed else None,
            "headline": str(detail.get("headline") or ""),
            "articles": detail.get("articles"),
        }
        item["summary"] = f"absorbed a story of {detail.get('articles', '?')} articles"
    else:
        item["summary"] = ""
    return item


def _alert(settings: Settings, alert: Any) -> dict[str, Any]:
    link = thread = None
    if alert.delivery == "slack":
        channel = alert.remote_channel or alert.channel
        link = http_url(message_link(settings, channel, alert.remote_id))
        if alert.thread_ts:
            thread = http_url(message_link(settings, channel, alert.thread_ts))
    return {
        "id": alert.id,
        "kind": alert.kind,
        "status": alert.status,
        "severity": alert.severity,
        "route": alert.route,
        "channel": alert.remote_channel or alert.channel or None,
        "delivery": alert.delivery,
        "created_at": iso(alert.created_at),
        "sent_at": iso(alert.sent_at),
        "reply": bool(alert.parent_id),
        "broadcast": bool(alert.broadcast),
        "watch_id": alert.watch_id,
        "slack_link": link,
        "thread_link": thread,
    }


_ALERT_COLUMNS = (
    Alert.id, Alert.kind, Alert.status, Alert.severity, Alert.route, Alert.channel, Alert.remote_channel,
    Alert.delivery, Alert.remote_id, Alert.thread_ts, Alert.created_at, Alert.sent_at, Alert.parent_id,
    Alert.broadcast, Alert.watch_id,
)  # fmt: skip


def story_data(session: Session, settings: Settings, story_id: str) -> dict[str, Any] | None:
    """Everything the story page shows, JSON-ready; None for an unknown story."""
    story = session.get(Story, story_id)
    if story is None:
        return None
    total = session.scalar(select(func.count()).select_from(Article).where(Article.story_id == story_id)) or 0
    head, tail = _timeline_rows(session, story_id, total)
    rows = head + tail
    feed_ids = {row.feed_id for row in rows if row.feed_id is not None}
    feeds = {
        feed_id: (state, country)
        for feed_id, state, country in session.execute(
            select(Feed.id, Feed.state_affiliated, Feed.country).where(Feed.id.in_(feed_ids))
        )
    } if feed_ids else {}  # fmt: skip
    by_id = {row.id: row for row in rows}
    missing = {row.syndicated_from for row in rows if row.syndicated_from and row.syndicated_from not in by_id}
    originals = {row.id: row.source for row in rows}
    if missing:
        originals.update(session.execute(select(Article.id, Article.source).where(Article.id.in_(missing))).all())
    first = _first_report(session, story_id, head)

    def article(row: Any) -> dict[str, Any]:
        state, country = feeds.get(row.feed_id, (False, None))
        return {
            "id": row.id,
            "published_at": iso(row.published_at),
            "language": row.language,
            "source": row.source,
            "title": row.title,
            "url": row.url,
            "href": http_url(row.url),
            "syndicated_from": row.syndicated_from,
            "copy_of_source": originals.get(row.syndicated_from) if row.syndicated_from else None,
            "copy_in_timeline": bool(row.syndicated_from and row.syndicated_from in by_id),
            "state_affiliated": bool(state),
            "country": country,
            "first_report": first is not None and row.id == first.id,
        }

    sources = story.sources or {}
    copies = story.copy_sources or {}
    independent = sorted(name for name, n in sources.items() if n > copies.get(name, 0))
    state = _state_outlets(session, story_id)
    events = session.execute(
        select(*_EVENT_COLUMNS).where(StoryEvent.story_id == story_id).order_by(StoryEvent.at, StoryEvent.id)
        .limit(EVENTS_MAX + 1)
    ).all()  # fmt: skip
    alerts = session.execute(
        select(*_ALERT_COLUMNS).where(Alert.story_id == story_id).order_by(Alert.created_at, Alert.id)
        .limit(ALERTS_MAX + 1)
    ).all()  # fmt: skip
    # Ordered by merged_into first (a constant here): SQLite's planner, after ANALYZE has seen a column of
    # NULLs, would otherwise scan the table instead of using ix_stories_merged_into.
    absorbed = session.execute(
        select(Story.id, Story.headline, Story.article_count).where(Story.merged_into == story_id)
        .order_by(Story.merged_into, Story.first_seen, Story.id).limit(ABSORBED_MAX)
    ).all()  # fmt: skip
    survivor = None
    if story.merged_into:
        row = session.execute(select(Story.id, Story.headline).where(Story.id == story.merged_into)).first()
        survivor = {"id": story.merged_into, "url": _story_link(story.merged_into),
                    "headline": row.headline if row is not None else None}  # fmt: skip
    return {
        "story": {
            **story_summary(story),
            "sources": dict(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))),
            "copy_sources": dict(sorted(copies.items(), key=lambda kv: (-kv[1], kv[0]))),
            "terms": list(story.terms or []),
        },
        "merged_into": survivor,
        "absorbed": [{"id": sid, "url": _story_link(sid), "headline": headline, "articles": count}
                     for sid, headline, count in absorbed],
        "first_report": {"source": first.source, "at": iso(first.published_at), "article_id": first.id,
                         "title": first.title, "href": http_url(first.url), "in_timeline": first.id in by_id}
        if first is not None else None,
        "independent": {"count": story.source_count or 0, "outlets": independent},
        "syndication": {"outlets": story.syndicated_outlets or 0, "copy_sources": dict(sorted(copies.items())),
                        "copies": sum(1 for row in rows if row.syndicated_from)},
        "state_affiliated": [{"source": name, "country": country or None} for name, country in state.items()],
        "only_state": bool(independent) and set(independent) <= set(state),
        "timeline": [article(row) for row in head],
        "timeline_tail": [article(row) for row in tail],
        "timeline_total": total,
        "timeline_shown": len(rows),
        "timeline_cut": total > len(rows),
        "timeline_max": TIMELINE_MAX,
        "events": [_event(event) for event in events[:EVENTS_MAX]],
        "events_cut": len(events) > EVENTS_MAX,
        "alerts": [_alert(settings, alert) for alert in alerts[:ALERTS_MAX]],
        "alerts_cut": len(alerts) > ALERTS_MAX,
    }


@router.get("/stories/{story_id}", response_class=HTMLResponse, summary="One story (page)")
def story_page(request: Request, story_id: str) -> HTMLResponse:
    started = clock.perf_counter()
    settings = settings_of(request)
    with session_scope(settings) as session:
        data = story_data(session, settings, story_id)
    if data is None:
        return render(request, "story_missing.html", status_code=404, story_id=story_id)
    response = render(request, "story.html", data=data, when=when)
    # the time the server spent on it (queries and rendering), as browsers' developer tools show it
    response.headers["Server-Timing"] = f"app;dur={(clock.perf_counter() - started) * 1000:.1f}"
    return response


@router.get("/api/stories/{story_id}", summary="One story (JSON)")
def story_api(request: Request, story_id: str) -> JSONResponse:
    settings = settings_of(request)
    with session_scope(settings) as session:
        data = story_data(session, settings, story_id)
    if data is None:
        return JSONResponse({"detail": f"no story {story_id}"}, status_code=404)
    return JSONResponse(data)
