"""The desk's own pages: saved searches that alert (`/watches`: list, add, delete; the same watches as
`flankwatch watch add|list|rm`) and feed health (`/feeds`: the `flankwatch feeds` table). JSON twins under
/api/.

A watch lives in the archive (its query, for the percolator) and in the state DB (mode, route, vector):
`alerts.watches.add_watch` / `remove_watch` write both. Every form that changes something carries the CSRF
token (`verify_csrf`).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import select

from alerts.watches import (
    MODES,
    add_watch,
    filters_text,
    list_watches,
    remove_watch,
    watch_label,
)
from core.db import session_scope
from core.models import Feed, FetchRecord, Watch
from core.settings import Settings
from flankwatch.web.app import archive_of, render, settings_of, verify_csrf
from flankwatch.web.story_pages import iso, when

router = APIRouter()

MODE_NAMES = {
    "words": "words (the search syntax)",
    "meaning": "meaning (finds other languages too)",
    "hybrid": "words or meaning",
}
IGNORED = {"story": "story filter", "dates": "dates"}  # filters of the search page a watch does not keep
QUERY_MAX = 1000
NAME_MAX = 200
VALUES_MAX = 50  # outlets, languages or topics in one watch


# --- saved searches ------------------------------------------------------------------------------------


def search_link(text: str, mode: str, sources: list[str], languages: list[str], topics: list[str]) -> str:
    """The search page with this saved search filled in (the URL holds the whole search)."""
    params: list[tuple[str, str]] = [("q", text), ("mode", mode)]
    params += [("source", value) for value in sources]
    params += [("language", value) for value in languages]
    params += [("topic", value) for value in topics]
    return "/?" + urlencode(params)


def watch_view(watch: Watch) -> dict[str, Any]:
    query = watch.query or {}
    sources = [str(v) for v in query.get("sources") or []]
    languages = [str(v) for v in query.get("languages") or []]
    topics = [str(v) for v in query.get("topics") or []]
    text = str(query.get("text") or "")
    return {
        "id": watch.id,
        "name": watch.name or "",
        "label": watch_label(watch),
        "query": text,
        "mode": watch.mode,
        "sources": sources,
        "languages": languages,
        "topics": topics,
        "filters": filters_text(watch),
        "route": watch.route,
        "min_similarity": watch.min_similarity,
        "created_at": iso(watch.created_at),
        "checked_until": iso(watch.checked_until),
        "search_url": search_link(text, watch.mode, sources, languages, topics),
        "delete_url": f"/watches/{quote(watch.id, safe='')}/delete",
    }


def _routes(settings: Settings) -> list[dict[str, str]]:
    return [{"name": route.name, "channel": route.channel} for route in settings.routes()]


def _default_route(settings: Settings) -> str:
    names = [route["name"] for route in _routes(settings)]
    return "default" if "default" in names or not names else names[0]


def watches_data(session: Any, settings: Settings) -> dict[str, Any]:
    return {
        "watches": [watch_view(watch) for watch in list_watches(session)],
        "routes": _routes(settings),
        "modes": list(MODES),
    }


def _blank_form(settings: Settings) -> dict[str, str]:
    return {"q": "", "mode": "words", "source": "", "language": "", "topic": "", "route": _default_route(settings),
            "name": ""}  # fmt: skip


def _watches_page(
    request: Request, *, status_code: int = 200, error: str | None = None, form: dict[str, str] | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    settings = settings_of(request)
    with session_scope(settings) as session:
        data = watches_data(session, settings)
    return render(
        request, "watches.html", status_code=status_code, data=data, error=error, notice=notice,
        form=form or _blank_form(settings), mode_names=MODE_NAMES, when=when,
    )  # fmt: skip


def _values(fields: list[str]) -> list[str]:
    """Repeated form fields and comma-separated lists alike: ["LRT, Delfi", "ERR"] -> LRT, Delfi, ERR."""
    values: list[str] = []
    for field in fields:
        for value in field.split(","):
            value = " ".join(value.split())
            if value and value not in values:
                values.append(value)
    return values


@router.get("/watches", response_class=HTMLResponse, summary="Saved searches that alert (page)")
def watches_page(
    request: Request, added: str = "", removed: str = "", ignored: list[str] = Query([]),
) -> HTMLResponse:
    notice = None
    if added or removed:  # only what is true of the watches now: a crafted link cannot claim otherwise
        with session_scope(settings_of(request)) as session:
            if added and session.get(Watch, added) is not None:
                notice = f"Saved search {added} added: articles indexed from now on that match it alert."
                left_out = [IGNORED[label] for label in IGNORED if label in ignored]
                if left_out:
                    notice += f" It leaves out the search's {' and '.join(left_out)}: it alerts on new articles of any."
            elif removed and not added and session.get(Watch, removed) is None:
                notice = f"Saved search {removed} deleted. The alerts it raised stay."
    return _watches_page(request, notice=notice)


@router.get("/api/watches", summary="Saved searches that alert (JSON)")
def watches_api(request: Request) -> JSONResponse:
    settings = settings_of(request)
    with session_scope(settings) as session:
        return JSONResponse(watches_data(session, settings))


@router.post("/watches", summary="Add a saved search (form)", dependencies=[Depends(verify_csrf)])
def watches_add(
    request: Request,
    q: str = Form(""),
    mode: str = Form("words"),
    source: list[str] = Form([]),
    language: list[str] = Form([]),
    topic: list[str] = Form([]),
    route: str = Form(""),
    name: str = Form(""),
    story: list[str] = Form([]),
    since: str = Form(""),
    until: str = Form(""),
) -> Response:
    """Fields: q, mode (words | meaning | hybrid), source, language, topic (repeated, or comma-separated),
    route (a configured route's name; empty: the default), name. Success: 303 to /watches.

    The search page's form also sends its story and date filters: a saved search alerts on new articles of
    any story and date, so they are left out, and the page that follows says so."""
    settings = settings_of(request)
    sources, languages, topics = _values(source), _values(language), _values(topic)
    route = route.strip() or _default_route(settings)
    text, name = q.strip(), " ".join(name.split())
    form = {"q": q, "mode": mode, "source": ", ".join(sources), "language": ", ".join(languages),
            "topic": ", ".join(topics), "route": route, "name": name}  # fmt: skip

    def refused(message: str, status_code: int = 400) -> HTMLResponse:
        return _watches_page(request, status_code=status_code, error=message, form=form)

    if mode not in MODES:
        return refused(f"Mode must be one of {', '.join(MODES)}.")
    names = [item["name"] for item in _routes(settings)]
    if route not in names:
        return refused(f"Unknown route {route!r}: choose one of {', '.join(names)}.")
    if mode != "words" and not text:
        return refused(f"A search by {mode} needs words to compare: the query is empty.")
    if len(text) > QUERY_MAX or len(name) > NAME_MAX:
        return refused(f"The query may have at most {QUERY_MAX} characters and the name {NAME_MAX}.")
    if max(len(sources), len(languages), len(topics)) > VALUES_MAX:
        return refused(f"At most {VALUES_MAX} outlets, languages or topics in one saved search.")
    embedder = None
    if mode != "words":
        from enrichment.embeddings import get_embedder

        try:
            embedder = get_embedder(settings.embedding_model)
        except (OSError, RuntimeError, ValueError) as exc:
            return refused(f"Search by meaning is not available here: {exc}", status_code=503)
    try:
        with archive_of(request) as archive, session_scope(settings) as session:
            watch = add_watch(session, archive, settings, text, mode=mode, sources=sources, languages=languages,
                              topics=topics, route=route, name=name, embedder=embedder)  # fmt: skip
            watch_id = watch.id
    except ValueError as exc:
        return refused(f"This search cannot be saved: {exc}")
    ignored = [label for label, given in (("story", any(v.strip() for v in story)),
                                          ("dates", bool(since.strip() or until.strip()))) if given]  # fmt: skip
    extra = "".join(f"&ignored={label}" for label in ignored)
    return RedirectResponse(f"/watches?added={quote(watch_id, safe='')}{extra}", status_code=303)


@router.post("/watches/{watch_id}/delete", summary="Delete a saved search (form)",
             dependencies=[Depends(verify_csrf)])  # fmt: skip
def watches_delete(request: Request, watch_id: str) -> Response:
    settings = settings_of(request)
    with archive_of(request) as archive, session_scope(settings) as session:
        removed = remove_watch(session, archive, watch_id)
    if not removed:
        return _watches_page(request, status_code=404, error=f"There is no saved search {watch_id!r}.")
    return RedirectResponse(f"/watches?removed={quote(watch_id, safe='')}", status_code=303)


# --- feed health ---------------------------------------------------------------------------------------


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or url
    except ValueError:
        return url


def feeds_data(session: Any, settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """`flankwatch feeds` as data: each feed's health and schedule, and the totals."""
    from collectors.schedule import is_silent

    now = now or datetime.now(timezone.utc)
    rows = session.scalars(select(Feed).order_by(Feed.enabled.desc(), Feed.name, Feed.id)).all()
    last_run = session.scalar(select(FetchRecord.run_id).order_by(FetchRecord.started_at.desc()).limit(1))
    new_items: dict[int, int] = {}
    if last_run:
        new_items = dict(session.execute(
            select(FetchRecord.feed_id, FetchRecord.items_new).where(FetchRecord.run_id == last_run)
        ).all())  # fmt: skip
    feeds = []
    for feed in rows:
        silent = bool(feed.enabled and is_silent(feed.last_new_item_at, feed.items_per_day, now, settings))
        feeds.append({
            "id": feed.id,
            "name": feed.name,
            "url": feed.url,
            "host": _host(feed.url),
            "language": feed.language,
            "country": feed.country,
            "state_affiliated": bool(feed.state_affiliated),
            "key": bool(feed.key_outlet),
            "enabled": bool(feed.enabled),
            "origin": feed.origin,
            "health": feed.health if feed.last_fetch_at else "never",
            "last_status": feed.last_status,
            "last_error_class": feed.last_error_class,
            "last_error": feed.last_error,
            "failures_in_a_row": feed.consecutive_failures or 0,
            "last_fetch_at": iso(feed.last_fetch_at),
            "last_success_at": iso(feed.last_success_at),
            "items_per_day": round(feed.items_per_day, 2) if feed.items_per_day is not None else None,
            "next_fetch_at": iso(feed.next_fetch_at),
            "schedule_reason": feed.schedule_reason,
            "silent": silent,
            "new_last_run": new_items.get(feed.id),
            "items_total": feed.items_total or 0,
        })  # fmt: skip
    polled = [feed for feed in feeds if feed["health"] != "never"]
    summary = {health: sum(1 for feed in polled if feed["health"] == health) for health in ("ok", "failing", "unhealthy")}
    summary.update(feeds=len(feeds), silent=sum(1 for feed in feeds if feed["silent"]),
                   never_polled=len(feeds) - len(polled))  # fmt: skip
    return {"feeds": feeds, "summary": summary, "last_run": last_run, "now": iso(now)}


@router.get("/feeds", response_class=HTMLResponse, summary="Feed health (page)")
def feeds_page(request: Request) -> HTMLResponse:
    settings = settings_of(request)
    with session_scope(settings) as session:
        data = feeds_data(session, settings)
    return render(request, "feeds.html", data=data, when=when)


@router.get("/api/feeds", summary="Feed health (JSON)")
def feeds_api(request: Request) -> JSONResponse:
    settings = settings_of(request)
    with session_scope(settings) as session:
        return JSONResponse(feeds_data(session, settings))
