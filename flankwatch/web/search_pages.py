"""The search page (`GET /`) and its JSON twin and downloads (`/api/search`, `/api/search.csv`, `/api/search.json`).

One GET form holds the whole search, so its URL can be shared: `q` (words, "a phrase", prefix*, a OR b; empty:
the newest articles), `mode` (words | meaning | hybrid; default `flankwatch.search.default_mode`), `since` and
`until` (YYYY-MM-DD, UTC days, inclusive), `source`, `language`, `topic`, `story` (each repeatable), `sort`
(relevance | newest | oldest), `page`, `per_page`; the downloads also take `all=1` (up to `EXPORT_LIMIT`
results instead of the current page). `search_form` parses them, for the page and its twins alike; a bad value
is a 400 with a message, never a 500.

Feed text is hostile: the templates autoescape everything, and the only markup made here is highlights (the
text escaped first, then the archive's markers turned into <mark>: `archive.base.render_highlight`) and the
server-drawn SVG of `flankwatch.web.chart` (its text escaped too). Only http(s) URLs become links.

Cost per page, whatever the archive's size: one archive search (hits, facets over the match set), one state DB
query for the story headlines of the page (hits, story facet, story filters), and the archive's default mode
(`ArchiveBackend.has_vectors`: one index lookup).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time as day_time, timezone
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from markupsafe import Markup, escape
from sqlalchemy import select

from archive.base import (
    FACET_FIELDS,
    HL_END,
    HL_START,
    MAX_PER_PAGE,
    SORTS,
    ArchiveBackend,
    ArchiveUnavailable,
    Hit,
    SearchQuery,
    SearchResult,
    render_highlight,
    strip_highlight,
)
from core.db import session_scope
from core.models import Story
from core.settings import Settings
from flankwatch.search import MODES, default_mode, run_search
from flankwatch.web.app import archive_of, render, settings_of
from flankwatch.web.chart import day_chart, day_series

router = APIRouter()

PER_PAGE = 20
PER_PAGE_CHOICES = (10, 20, 50, 100, 200)
MAX_PAGE = 1000
MAX_RANKED = 1000  # meaning and hybrid rank the best page x per_page articles: at most this many
EXPORT_LIMIT = 1000  # results a download with all=1 holds
MAX_QUERY_CHARS = 500
MAX_VALUE_CHARS = 200
MAX_VALUES = 50  # values of one repeatable filter
FACET_SIZE = 60  # values per facet from the archive (and days of the chart)
FACET_SHOWN = 10  # values per facet listed on the page (the rest behind "more")
SNIPPET_CHARS = 280
CSV_COLUMNS = ("id", "published_at", "source", "language", "title", "url", "story_id", "story_headline")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FACET_NAMES = {"source": "Outlet", "language": "Language", "topic": "Topic", "story_id": "Story"}
FACET_PARAMS = {"source": "source", "language": "language", "topic": "topic", "story_id": "story"}
MODE_LABELS = {"words": "Words", "meaning": "Meaning (any language)", "hybrid": "Both (hybrid)"}
SORT_LABELS = {"relevance": "Relevance", "newest": "Newest first", "oldest": "Oldest first"}
LANGUAGE_NAMES = {
    "be": "Belarusian", "cs": "Czech", "da": "Danish", "de": "German", "en": "English", "es": "Spanish",
    "et": "Estonian", "fi": "Finnish", "fr": "French", "hu": "Hungarian", "it": "Italian", "lt": "Lithuanian",
    "lv": "Latvian", "nl": "Dutch", "no": "Norwegian", "pl": "Polish", "ro": "Romanian", "ru": "Russian",
    "sk": "Slovak", "sv": "Swedish", "tr": "Turkish", "uk": "Ukrainian",
}  # fmt: skip
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_TRUE = ("1", "true", "yes", "on")


# --- the parameters: parsed in one place ---------------------------------------------------------------------


@dataclass
class SearchForm:
    """The search a URL asks for: its values (dates as given, to fill the form again also when wrong), what is
    wrong with them (`errors`), and the archive query they make (`query`, None when there are errors)."""

    q: str = ""
    mode: str | None = None  # None: the archive's default
    since: str = ""
    until: str = ""
    sources: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()
    stories: tuple[str, ...] = ()
    sort: str = "relevance"
    page: int = 1
    per_page: int = PER_PAGE
    export_all: bool = False
    errors: list[str] = field(default_factory=list)
    query: SearchQuery | None = None

    @property
    def filtered(self) -> bool:
        return bool(self.since or self.until or self.sources or self.languages or self.topics or self.stories)

    def params(self, *, page: int | None = None, drop: tuple[str, str] | None = None,
               add: tuple[str, str] | None = None, export_all: bool = False) -> list[tuple[str, str]]:
        """The query string of this search as (name, value) pairs, defaults left out: `page` instead of the
        current one (1: left out), without the value `drop` or with the value `add` ((name, value), for a
        filter's links; either goes back to page 1)."""
        pairs: list[tuple[str, str]] = []
        if self.q:
            pairs.append(("q", self.q))
        if self.mode:
            pairs.append(("mode", self.mode))
        for name in ("since", "until"):
            if getattr(self, name):
                pairs.append((name, getattr(self, name)))
        for name, values in (("source", self.sources), ("language", self.languages), ("topic", self.topics),
                             ("story", self.stories)):
            pairs.extend((name, value) for value in values)
        if drop is not None:
            pairs = [pair for pair in pairs if pair != drop]
        if add is not None and add not in pairs:
            pairs.append(add)
        if self.sort != "relevance":
            pairs.append(("sort", self.sort))
        if page is None:
            page = 1 if drop is not None or add is not None else self.page
        if page != 1:
            pairs.append(("page", str(page)))
        if self.per_page != PER_PAGE:
            pairs.append(("per_page", str(self.per_page)))
        if export_all:
            pairs.append(("all", "1"))
        return pairs

    def url(self, path: str = "/", **changes: Any) -> str:
        pairs = self.params(**changes)
        return f"{path}?{urlencode(pairs)}" if pairs else path

    def to_dict(self) -> dict[str, Any]:
        return {
            "q": self.q, "mode": self.mode, "since": self.since or None, "until": self.until or None,
            "source": list(self.sources), "language": list(self.languages), "topic": list(self.topics),
            "story": list(self.stories), "sort": self.sort, "page": self.page, "per_page": self.per_page,
        }  # fmt: skip


def _values(given: Iterable[str], name: str, errors: list[str]) -> tuple[str, ...]:
    out: list[str] = []
    for value in given:
        value = (value or "").strip()
        if not value or value in out:
            continue
        if len(value) > MAX_VALUE_CHARS:
            errors.append(f"{name}: a value longer than {MAX_VALUE_CHARS} characters")
            continue
        out.append(value)
    if len(out) > MAX_VALUES:
        errors.append(f"{name}: at most {MAX_VALUES} values")
        out = out[:MAX_VALUES]
    return tuple(out)


def _day(value: str, name: str, errors: list[str]) -> date | None:
    if not value:
        return None
    try:
        if not _DAY.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"{name}: {value!r} is not a date (YYYY-MM-DD)")
        return None


def _number(value: str, name: str, default: int, low: int, high: int, errors: list[str]) -> int:
    if not value.strip():
        return default
    try:
        number = int(value.strip())
    except ValueError:
        errors.append(f"{name}: {value!r} is not a whole number")
        return default
    if not low <= number <= high:
        errors.append(f"{name} must be within {low}..{high}, not {number}")
        return min(max(number, low), high)
    return number


def search_form(
    q: str = Query("", description='Words, "a phrase", prefix*, a OR b. Empty: the newest articles.'),
    mode: str = Query("", description="words | meaning | hybrid. Default: hybrid when the archive holds vectors "
                                      "of the configured model, else words."),
    since: str = Query("", description="Published on or after this UTC day (YYYY-MM-DD)."),
    until: str = Query("", description="Published on or before this UTC day (YYYY-MM-DD)."),
    source: list[str] = Query([], description="Outlet name (repeatable)."),
    language: list[str] = Query([], description="Language code (repeatable)."),
    topic: list[str] = Query([], description="Topic name (repeatable)."),
    story: list[str] = Query([], description="Story id (repeatable)."),
    sort: str = Query("relevance", description="relevance | newest | oldest (words mode)."),
    page: str = Query("1", description=f"Page, from 1 (at most {MAX_PAGE})."),
    per_page: str = Query(str(PER_PAGE), description=f"Results per page, 1..{MAX_PER_PAGE}."),
    export_all: str = Query("", alias="all", description=f"Downloads: 1 for up to {EXPORT_LIMIT} results."),
) -> SearchForm:
    """The search of the request's query string (FastAPI dependency of the page and its twins). Every value
    is taken as a string and checked here, so that a wrong one is a message on the page (400), not a 422."""
    errors: list[str] = []
    q = " ".join(q.split()) if q.strip() else ""
    if len(q) > MAX_QUERY_CHARS:
        errors.append(f"the query is longer than {MAX_QUERY_CHARS} characters")
    chosen = mode.strip().lower() or None
    if chosen is not None and chosen not in MODES:
        errors.append(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    sort_key = sort.strip().lower() or "relevance"
    if sort_key not in SORTS:
        errors.append(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    form = SearchForm(
        q=q,
        mode=chosen if chosen in MODES else None,
        since=since.strip(),
        until=until.strip(),
        sources=_values(source, "source", errors),
        languages=_values(language, "language", errors),
        topics=_values(topic, "topic", errors),
        stories=_values(story, "story", errors),
        sort=sort_key if sort_key in SORTS else "relevance",
        page=_number(page, "page", 1, 1, MAX_PAGE, errors),
        per_page=_number(per_page, "per_page", PER_PAGE, 1, MAX_PER_PAGE, errors),
        export_all=export_all.strip().lower() in _TRUE,
        errors=errors,
    )
    first = _day(form.since, "since", errors)
    last = _day(form.until, "until", errors)
    if first and last and first > last:
        errors.append(f"since ({form.since}) is after until ({form.until})")
    if form.mode in ("meaning", "hybrid") and form.page * form.per_page > MAX_RANKED:
        errors.append(f"{form.mode} ranks the best {MAX_RANKED} articles: page x per_page must not exceed it")
    if errors:
        return form
    try:
        form.query = SearchQuery(
            text=form.q,
            date_from=datetime.combine(first, day_time.min, timezone.utc) if first else None,
            date_to=datetime.combine(last, day_time.max, timezone.utc) if last else None,
            sources=form.sources, languages=form.languages, topics=form.topics, story_ids=form.stories,
            sort=form.sort,  # type: ignore[arg-type]
            page=form.page, per_page=form.per_page, facets=FACET_FIELDS, facet_size=FACET_SIZE,
        )  # fmt: skip
    except ValueError as exc:
        errors.append(str(exc))
    return form


# --- running it ------------------------------------------------------------------------------------------------

def execute(settings: Settings, backend: ArchiveBackend, form: SearchForm,
            query: SearchQuery | None = None) -> tuple[str, SearchResult]:
    """(the mode used, the result) of the form's search (or `query`, a variant of it). Raises ValueError."""
    query = query or form.query
    assert query is not None, "execute() needs a form without errors"
    mode = form.mode or (default_mode(settings, backend) if query.text.strip() else "words")
    return run_search(settings, backend, query, mode)


def export_hits(settings: Settings, backend: ArchiveBackend, form: SearchForm) -> tuple[str, int, list[Hit]]:
    """(mode, total, hits) of a download: the current page, or with `all=1` the first `EXPORT_LIMIT` results
    (fetched `MAX_PER_PAGE` at a time, without facets)."""
    assert form.query is not None
    if not form.export_all:
        used, result = execute(settings, backend, form, replace(form.query, facets=()))
        return used, result.total, result.hits
    hits: list[Hit] = []
    used, total, page = "words", 0, 1
    while len(hits) < EXPORT_LIMIT:
        query = replace(form.query, page=page, per_page=MAX_PER_PAGE, facets=())
        used, result = execute(settings, backend, form, query)
        total = result.total
        hits.extend(result.hits)
        if len(result.hits) < MAX_PER_PAGE or len(hits) >= total:
            break
        page += 1
    return used, total, hits[:EXPORT_LIMIT]


def story_headlines(settings: Settings, story_ids: Iterable[str | None]) -> dict[str, str]:
    """Story id -> headline from the state DB, in one query; ids it does not know are left out."""
    wanted = sorted({story_id for story_id in story_ids if story_id})
    if not wanted:
        return {}
    with session_scope(settings) as session:
        rows = session.execute(select(Story.id, Story.headline).where(Story.id.in_(wanted))).all()
    return {story_id: headline for story_id, headline in rows if headline}


def _page_story_ids(form: SearchForm, result: SearchResult | None) -> list[str | None]:
    ids: list[str | None] = list(form.stories)
    if result is not None:
        ids.extend(hit.doc.story_id for hit in result.hits)
        ids.extend(result.facets.get("story_id", {}))
    return ids


# --- views -----------------------------------------------------------------------------------------------------


def is_web_link(url: str | None) -> bool:
    """Only http(s) URLs with a host become links (`javascript:`, `data:` and the rest stay text)."""
    if not url:
        return False
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.netloc)


def highlighted(fragment: str) -> Markup:
    """A fragment as HTML: its text escaped, then the archive's markers turned into <mark>."""
    return Markup(render_highlight(fragment, "<mark>", "</mark>"))


def _plain(text: str, limit: int) -> str:
    text = " ".join(strip_highlight(text or "").split())
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit)
    return text[: cut if cut > limit // 2 else limit] + " …"


def utc_text(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def language_label(code: str | None) -> str:
    if not code:
        return "unknown"
    name = LANGUAGE_NAMES.get(code.lower())
    return f"{name} ({code})" if name else code


@dataclass
class HitView:
    id: str
    title: Markup
    url: str
    link: bool
    source: str
    language: str
    published_iso: str
    published: str
    story_id: str | None
    story_headline: str | None
    story_url: str | None
    snippets: list[Markup]


def hit_view(hit: Hit, headlines: dict[str, str]) -> HitView:
    doc = hit.doc
    titles = hit.highlights.get("title") or []
    title = highlighted(titles[0]) if titles else Markup(escape(_plain(doc.title, 400) or "(no title)"))
    fragments = [f for name in ("summary", "content") for f in hit.highlights.get(name, [])]
    snippets = [highlighted(f) for f in fragments[:2]]
    if not snippets and doc.summary:
        snippets = [Markup(escape(_plain(doc.summary, SNIPPET_CHARS)))]
    story = doc.story_id
    return HitView(
        id=doc.id, title=title, url=doc.url, link=is_web_link(doc.url), source=doc.source,
        language=language_label(doc.language), published_iso=doc.published_at.isoformat(),
        published=utc_text(doc.published_at), story_id=story,
        story_headline=headlines.get(story, story) if story else None,
        story_url=f"/stories/{quote(story, safe='')}" if story else None, snippets=snippets,
    )  # fmt: skip


@dataclass
class FacetValue:
    value: str
    label: str
    count: int
    url: str  # adds the filter, or removes it when `active`
    active: bool


@dataclass
class FacetView:
    name: str
    title: str
    values: list[FacetValue]


def facet_views(form: SearchForm, result: SearchResult, headlines: dict[str, str]) -> list[FacetView]:
    active = {"source": form.sources, "language": form.languages, "topic": form.topics, "story_id": form.stories}
    views = []
    for name, title in FACET_NAMES.items():
        counts = result.facets.get(name) or {}
        param = FACET_PARAMS[name]
        values = []
        for value, count in counts.items():
            on = value in active[name]
            label = headlines.get(value, value) if name == "story_id" else (
                language_label(value) if name == "language" else value)
            url = form.url(drop=(param, value)) if on else form.url(add=(param, value))
            values.append(FacetValue(value, label, count, url, on))
        if values:
            views.append(FacetView(name, title, values))
    return views


@dataclass
class ActiveFilter:
    param: str
    value: str
    label: str
    remove_url: str


def active_filters(form: SearchForm, headlines: dict[str, str]) -> list[ActiveFilter]:
    out = []
    for param, title, values in (("source", "Outlet", form.sources), ("language", "Language", form.languages),
                                 ("topic", "Topic", form.topics), ("story", "Story", form.stories)):
        for value in values:
            shown = headlines.get(value, value) if param == "story" else (
                language_label(value) if param == "language" else value)
            out.append(ActiveFilter(param, value, f"{title}: {shown}", form.url(drop=(param, value))))
    for param, title in (("since", "From"), ("until", "Until")):
        value = getattr(form, param)
        if value:
            rest = replace(form, **{param: ""})
            out.append(ActiveFilter(param, value, f"{title}: {value}", rest.url(page=1)))
    return out


def _routes(settings: Settings) -> list[str]:
    names = [route.name for route in settings.routes()]
    return names or ["default"]


def _has_more(mode: str, result: SearchResult) -> bool:
    if mode == "words":
        return result.page < result.pages
    # meaning and hybrid rank the best page x per_page: a full ranking may go on
    return result.total >= result.page * result.per_page and result.page * result.per_page < MAX_RANKED


# --- routes ----------------------------------------------------------------------------------------------------


@router.get("/", response_class=HTMLResponse, summary="Search the archive (page)")
def search_page(request: Request, form: SearchForm = Depends(search_form)) -> HTMLResponse:
    settings = settings_of(request)
    result: SearchResult | None = None
    used = form.mode or "words"
    error = "; ".join(form.errors) or None
    status = 400 if error else 200
    if not error:
        try:
            with archive_of(request) as backend:
                used, result = execute(settings, backend, form)
                # a query with words ran in the default mode already; an empty one browses by words, and the
                # form still offers the default
                assert form.query is not None
                shown_mode = form.mode or (used if form.query.text.strip() else default_mode(settings, backend))
        except ArchiveUnavailable as exc:
            error, status = f"The archive cannot be reached: {exc}", 503
        except ValueError as exc:
            error, status = str(exc), 400
    if result is None:
        shown_mode = form.mode or "words"
    headlines = story_headlines(settings, _page_story_ids(form, result))
    context: dict[str, Any] = {
        "form": form, "error": error, "result": result, "used_mode": used, "shown_mode": shown_mode,
        "modes": [(mode, MODE_LABELS[mode]) for mode in MODES], "sorts": [(s, SORT_LABELS[s]) for s in SORTS],
        "per_page_choices": sorted(set(PER_PAGE_CHOICES) | {form.per_page}), "filters": active_filters(form, headlines),
        "routes": _routes(settings), "export_limit": EXPORT_LIMIT, "facet_shown": FACET_SHOWN,
        "filters_open": bool(form.since or form.until or form.sort != "relevance" or form.per_page != PER_PAGE),
    }  # fmt: skip
    if result is not None:
        days = result.facets.get("day") or {}
        first = (result.page - 1) * result.per_page + 1
        context.update(
            hits=[hit_view(hit, headlines) for hit in result.hits],
            facets=facet_views(form, result, headlines),
            chart=day_chart(days, "Matching articles per day" if form.q else "Articles per day"),
            chart_rows=[(day, count, replace(form, since=day, until=day).url(page=1))
                        for day, count in day_series(days) if count],
            first=first, last=first + len(result.hits) - 1,
            prev_url=form.url(page=result.page - 1) if result.page > 1 else None,
            next_url=form.url(page=result.page + 1) if _has_more(used, result) else None,
            csv_url=form.url("/api/search.csv"), json_url=form.url("/api/search.json"),
            csv_all_url=form.url("/api/search.csv", page=1, export_all=True),
            json_all_url=form.url("/api/search.json", page=1, export_all=True),
            api_url=form.url("/api/search"),
        )  # fmt: skip
    return render(request, "search.html", status_code=status, **context)


def _hit_json(hit: Hit, headlines: dict[str, str]) -> dict[str, Any]:
    doc = hit.doc
    return {
        "id": doc.id, "title": doc.title, "url": doc.url, "source": doc.source, "language": doc.language,
        "published_at": doc.published_at.isoformat(), "story_id": doc.story_id,
        "story_headline": headlines.get(doc.story_id) if doc.story_id else None,
        "score": hit.score, "highlights": hit.highlights,
    }  # fmt: skip


def _bad(message: str, status: int = 400) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


@router.get("/api/search", summary="Search the archive (JSON twin of the search page)")
def search_api(request: Request, form: SearchForm = Depends(search_form)) -> Response:
    """The page's search as JSON. `highlights`: field -> fragments, the matches between the markers U+E000 and
    U+E001 (plain text otherwise: escape it before showing it as HTML). `facets`: field -> value -> count (`day`:
    articles per UTC day). `story_headlines`: story id -> headline for the ids of the hits and the story facet."""
    if form.errors:
        return _bad("; ".join(form.errors))
    settings = settings_of(request)
    try:
        with archive_of(request) as backend:
            used, result = execute(settings, backend, form)
    except ArchiveUnavailable as exc:
        return _bad(f"the archive cannot be reached: {exc}", 503)
    except ValueError as exc:
        return _bad(str(exc))
    headlines = story_headlines(settings, _page_story_ids(form, result))
    return JSONResponse({
        "mode": used, "total": result.total, "total_exact": result.total_exact, "window": result.window,
        "page": result.page, "per_page": result.per_page, "pages": result.pages, "query": form.to_dict(),
        "hits": [_hit_json(hit, headlines) for hit in result.hits],
        "facets": result.facets, "story_headlines": headlines,
        "markers": {"start": HL_START, "end": HL_END},
    })  # fmt: skip


def _download(request: Request, form: SearchForm) -> tuple[str, int, list[Hit], dict[str, str]] | JSONResponse:
    if form.errors:
        return _bad("; ".join(form.errors))
    settings = settings_of(request)
    try:
        with archive_of(request) as backend:
            used, total, hits = export_hits(settings, backend, form)
    except ArchiveUnavailable as exc:
        return _bad(f"the archive cannot be reached: {exc}", 503)
    except ValueError as exc:
        return _bad(str(exc))
    return used, total, hits, story_headlines(settings, (hit.doc.story_id for hit in hits))


def _filename(extension: str) -> str:
    return f"flankwatch-search-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.{extension}"


def csv_cell(value: Any) -> str:
    """A CSV cell that a spreadsheet will not run: text starting with = + - @ (or a tab or carriage return)
    gets a leading single quote (OWASP's guard against formula injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_text(hits: Sequence[Hit], headlines: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for hit in hits:
        doc = hit.doc
        row = (doc.id, doc.published_at.isoformat(), doc.source, doc.language, doc.title, doc.url, doc.story_id,
               headlines.get(doc.story_id) if doc.story_id else None)
        writer.writerow([csv_cell(value) for value in row])
    return out.getvalue()


@router.get("/api/search.csv", summary="Download a search as CSV")
def search_csv(request: Request, form: SearchForm = Depends(search_form)) -> Response:
    """The current page of the search, or with `all=1` its first results (up to the export limit), as CSV
    (UTF-8 with a byte order mark, for spreadsheets): id, published_at, source, language, title, url, story_id,
    story_headline. Cells that a spreadsheet would take for a formula start with a single quote."""
    done = _download(request, form)
    if isinstance(done, JSONResponse):
        return done
    _, _, hits, headlines = done
    return Response(
        "\ufeff" + csv_text(hits, headlines), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{_filename("csv")}"'},
    )  # fmt: skip


@router.get("/api/search.json", summary="Download a search as JSON")
def search_json(request: Request, form: SearchForm = Depends(search_form)) -> Response:
    """The current page of the search, or with `all=1` its first results (up to the export limit), as a JSON
    file: the hits of `/api/search` without its facets."""
    done = _download(request, form)
    if isinstance(done, JSONResponse):
        return done
    used, total, hits, headlines = done
    body = {
        "mode": used, "total": total, "exported": len(hits), "all": form.export_all, "limit": EXPORT_LIMIT,
        "query": form.to_dict(), "hits": [_hit_json(hit, headlines) for hit in hits],
        "story_headlines": headlines,
    }  # fmt: skip
    return Response(
        json.dumps(body, ensure_ascii=False, indent=1), media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{_filename("json")}"'},
    )  # fmt: skip
