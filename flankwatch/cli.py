"""The `flankwatch` command line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import func, select

from core.db import session_scope, upgrade
from core.models import Alert, Feed, FetchRecord, Story, StoryEvent
from core.settings import Settings, get_settings
from flankwatch import display, ops_cli
from flankwatch.alerts_cli import alerts_app
from flankwatch.archive_cli import archive_app
from flankwatch.pipeline import STAGES, RunSummary, run_once
from flankwatch.search import MODES, run_search
from flankwatch.watch_cli import watch_app

app = typer.Typer(help="Flankwatch: news about NATO's eastern flank, grouped into stories, searchable, alerted.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="State database.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(archive_app, name="archive")
app.add_typer(watch_app, name="watch")
app.add_typer(alerts_app, name="alerts")
console = Console()


def _settings() -> Settings:
    settings = get_settings()
    upgrade(settings)
    return settings


def _parse_day(value: str | None, end: bool = False) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    if end and len(value) == 10:
        parsed = parsed.replace(hour=23, minute=59, second=59)
    return parsed


def _run_with_progress(settings: Settings, now: datetime | None = None, lock_wait: float | None = None) -> RunSummary:
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        tasks: dict[str, int] = {}

        def on_stage(name: str):  # type: ignore[no-untyped-def]
            for previous in tasks.values():
                bar.update(previous, completed=bar.tasks[previous].total or 1, total=bar.tasks[previous].total or 1)
            tasks[name] = bar.add_task(name, total=None)
            return lambda done, total: bar.update(tasks[name], completed=done, total=total)

        summary = run_once(settings, now=now, on_stage=on_stage, lock_wait=lock_wait,
                           on_lock_wait=lambda message: console.print(f"[yellow]waiting:[/yellow] {escape(message)}"))
        for task_id in tasks.values():
            bar.update(task_id, completed=bar.tasks[task_id].total or 1, total=bar.tasks[task_id].total or 1)
    return summary


def _shown(name: str, value: object) -> str:
    """A summary value for the console; step timings as "language:0.6s embedding:13.9s"."""
    if name.endswith("_seconds") and isinstance(value, dict):
        return " ".join(f"{step}:{seconds:.1f}s" for step, seconds in value.items()) or "-"
    if isinstance(value, dict):  # by_kind, errors of the alert rules
        return " ".join(f"{key}:{item}" for key, item in value.items()) or "-"
    return str(value)


def _print_summary(summary: RunSummary) -> None:
    lines = []
    for name in STAGES:
        if name in summary.stages:
            counts = {k: v for k, v in summary.stages[name].items() if not isinstance(v, list) and k != "run_id"}
            lines.append(f"[bold]{name:<8}[/bold] " + "  ".join(f"{k}={escape(_shown(k, v))}" for k, v in counts.items()))
        if name in summary.errors:
            lines.append(f"[bold red]{name:<8} failed:[/bold red] {escape(summary.errors[name])}")
    console.print(f"run [bold]{summary.run_id}[/bold]")
    console.print("\n".join(lines))


@app.command()
def run(
    once: Annotated[bool, typer.Option("--once", help="One cycle of every stage, then exit.")] = False,
    interval: Annotated[float, typer.Option(help="Seconds between cycles when not --once.")] = 600.0,
    wait: Annotated[Optional[float], typer.Option(
        help="Seconds to wait while another run (the Airflow DAG, another `run`) holds the run lock, then skip "
             "(exit 75). Default: FLANKWATCH_RUN_LOCK_WAIT_SECONDS.")] = None,
) -> None:
    """Run the pipeline: collect -> enrich -> index -> alert."""
    from core.runlock import RunLocked

    settings = _settings()
    while True:
        try:
            summary = _run_with_progress(settings, lock_wait=wait)
        except RunLocked as busy:
            console.print(f"[bold yellow]skipped:[/bold yellow] {escape(str(busy))}; this run did nothing")
            if once:
                raise typer.Exit(75) from None  # EX_TEMPFAIL: try again later
        else:
            _print_summary(summary)
            if once:
                raise typer.Exit(0 if summary.ok else 1)
        time.sleep(interval)


@app.command("enrich")
def enrich_command(
    reembed: Annotated[bool, typer.Option(
        "--reembed", help="First re-embed every article whose vector another model made (after changing "
                          "FLANKWATCH_EMBEDDING_MODEL), and recentre their stories.")] = False,
) -> None:
    """Enrich the pending articles (language, embedding, relevance, stories), as `run` does between collect
    and index."""
    settings = _settings()
    with _alone(settings, "flankwatch enrich", "nothing was enriched"):  # never beside a run's enrichment
        _enrich(settings, reembed)


@contextmanager
def _alone(settings: Settings, what: str, nothing: str) -> Iterator[None]:
    """Hold the pipeline lock alone, as `run --once` does, waiting up to `run_lock_wait_seconds` (said once);
    still held by another: print `skipped: <who holds it>; <nothing>` and exit 75 (EX_TEMPFAIL)."""
    from core.runlock import RunLocked, process_name, run_lock

    try:
        with run_lock(settings, holder=process_name(what), wait=settings.run_lock_wait_seconds,
                      on_wait=lambda message: console.print(f"[yellow]waiting:[/yellow] {escape(message)}")):
            yield
    except RunLocked as busy:
        console.print(f"[bold yellow]skipped:[/bold yellow] {escape(str(busy))}; {nothing}")
        raise typer.Exit(75) from None


def _enrich(settings: Settings, reembed: bool) -> None:
    from enrichment.embeddings import get_embedder
    from enrichment.reembed import reembed as reembed_articles
    from enrichment.relevance import compile_topics
    from flankwatch.pipeline import enrich_stage

    if reembed:
        embedder = get_embedder(settings.embedding_model)
        with Progress(TextColumn("re-embed"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console) as bar:
            task = bar.add_task("re-embed", total=None)
            done = reembed_articles(settings, embedder, compile_topics(settings, embedder),
                                    progress=lambda n, total: bar.update(task, completed=n, total=total))
        replaced = ", ".join(f"{model} {count}" for model, count in sorted(done.previous.items())) or "none"
        console.print(f"re-embedded {done.articles} articles with {escape(done.model)} (replaced: "
                      f"{escape(replaced)}), {done.stories} stories recentred; the next index run sends them "
                      "to the archive")
    with Progress(TextColumn("enrich"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("enrich", total=None)
        summary = enrich_stage(settings, progress=lambda n, total: bar.update(task, completed=n, total=total))
    console.print("enrich   " + "  ".join(f"{k}={_shown(k, v)}" for k, v in summary.items() if not isinstance(v, list)))


@app.command()
def search(
    query: Annotated[str, typer.Argument(help='Words, "a phrase", prefix*, a OR b. Empty: newest first.')] = "",
    mode: Annotated[Optional[str], typer.Option(
        help="words (BM25) | meaning (the multilingual vectors: finds other languages) | hybrid (both, fused by "
             "reciprocal rank). Default: hybrid when the archive holds vectors of the configured model.")] = None,
    since: Annotated[Optional[str], typer.Option(help="Published on or after (YYYY-MM-DD).")] = None,
    until: Annotated[Optional[str], typer.Option(help="Published on or before (YYYY-MM-DD).")] = None,
    source: Annotated[Optional[list[str]], typer.Option(help="Outlet name (repeatable).")] = None,
    language: Annotated[Optional[list[str]], typer.Option(help="Language code (repeatable).")] = None,
    topic: Annotated[Optional[list[str]], typer.Option(help="Topic name (repeatable).")] = None,
    story: Annotated[Optional[list[str]], typer.Option(help="Story id (repeatable).")] = None,
    sort: Annotated[str, typer.Option(help="relevance | newest | oldest (words mode)")] = "relevance",
    page: Annotated[int, typer.Option(min=1)] = 1,
    per_page: Annotated[int, typer.Option(min=1, max=200)] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Search the archive by words, by meaning or both, with highlights (and facet counts for words)."""
    from archive import open_archive
    from archive.base import SearchQuery

    if sort not in ("relevance", "newest", "oldest"):
        raise typer.BadParameter("sort must be relevance, newest or oldest")
    if mode is not None and mode not in MODES:
        raise typer.BadParameter(f"mode must be one of {', '.join(MODES)}")
    settings = _settings()
    request = SearchQuery(
        text=query, date_from=_parse_day(since), date_to=_parse_day(until, end=True),
        sources=tuple(source or ()), languages=tuple(language or ()), topics=tuple(topic or ()),
        story_ids=tuple(story or ()), sort=sort, page=page, per_page=per_page,  # type: ignore[arg-type]
    )
    with open_archive(settings) as backend:
        used, result = run_search(settings, backend, request, mode)
    if as_json:
        print(json.dumps({
            "mode": used, "total": result.total, "total_exact": result.total_exact, "window": result.window,
            "facets": result.facets,
            "hits": [{"id": h.id, "score": h.score, "title": h.doc.title, "url": h.doc.url, "source": h.doc.source,
                      "language": h.doc.language, "published_at": h.doc.published_at.isoformat(),
                      "story_id": h.doc.story_id, "highlights": h.highlights} for h in result.hits],
        }, ensure_ascii=False, indent=2))
        return
    console.print(display.search_table(result, mode=used))
    if result.total and result.facets:
        console.print(display.facets_table(result))


@app.command()
def stories(
    topic: Annotated[Optional[str], typer.Option(help="Only this topic.")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 20,
    min_articles: Annotated[int, typer.Option(help="Hide smaller stories.")] = 1,
    events: Annotated[bool, typer.Option("--events", help="The latest story events: born, growing, development, merged.")] = False,
) -> None:
    """Stories, most recently active first (stories merged into others are left out); with --events, the
    latest story events instead (oldest of them first)."""
    settings = _settings()
    with session_scope(settings) as session:
        if events:
            query = select(StoryEvent, Story.headline).join(Story, Story.id == StoryEvent.story_id).where(
                Story.article_count >= min_articles
            )
            if topic:
                query = query.where(Story.topic == topic)
            found = session.execute(query.order_by(StoryEvent.at.desc(), StoryEvent.id).limit(limit)).all()
            headlines = {event.story_id: headline for event, headline in found}
            console.print(display.events_table([event for event, _ in reversed(found)], headlines))
            return
        query = select(Story).where(Story.article_count >= min_articles, Story.merged_into.is_(None))
        if topic:
            query = query.where(Story.topic == topic)
        rows = session.scalars(query.order_by(Story.last_seen.desc()).limit(limit)).all()
        console.print(display.stories_table(rows))


@app.command()
def feeds() -> None:
    """Feed health (ok, failing, unhealthy), error class, failures in a row, last success, items per day,
    next fetch, silent feeds, new items of the last run."""
    from collectors.schedule import is_silent

    settings = _settings()
    now = datetime.now(timezone.utc)
    with session_scope(settings) as session:
        rows = session.scalars(select(Feed).order_by(Feed.enabled.desc(), Feed.name)).all()
        last_run = session.scalar(select(FetchRecord.run_id).order_by(FetchRecord.started_at.desc()).limit(1))
        new_items: dict[int, int] = {}
        if last_run:
            new_items = dict(session.execute(select(FetchRecord.feed_id, FetchRecord.items_new)
                                             .where(FetchRecord.run_id == last_run)).all())
        silent = {f.id for f in rows if f.enabled and is_silent(f.last_new_item_at, f.items_per_day, now, settings)}
        console.print(display.feeds_table(rows, new_items, silent))
        polled = [f for f in rows if f.last_fetch_at]
        counts = {health: sum(1 for f in polled if f.health == health) for health in ("ok", "failing", "unhealthy")}
        console.print(f"{len(rows)} feeds: {counts['ok']} ok, {counts['failing']} failing, "
                      f"{counts['unhealthy']} unhealthy, {len(silent)} silent, {len(rows) - len(polled)} never polled")


@app.command("import-opml")
def import_opml(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]) -> None:
    """Add the feeds of an OPML file (existing URLs are updated, nothing is deleted)."""
    from collectors.feeds_config import sync_feeds
    from collectors.opml import parse_opml

    settings = _settings()
    specs = parse_opml(file.read_bytes())
    with session_scope(settings) as session:
        count = sync_feeds(session, specs, origin="opml")
    console.print(f"imported {len(specs)} feeds from {escape(str(file))} ({count} new or changed)")


@app.command("export-opml")
def export_opml(file: Annotated[Optional[Path], typer.Argument(help="Output file; default stdout.")] = None) -> None:
    """Write every feed as OPML 2.0."""
    from collectors.opml import to_opml

    settings = _settings()
    with session_scope(settings) as session:
        feeds = session.scalars(select(Feed).where(Feed.origin != "demo").order_by(Feed.name)).all()
        text = to_opml(feeds)
    if file is None:
        print(text)
    else:
        file.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(feeds)} feeds to {escape(str(file))}")


@app.command()
def demo(
    limit: Annotated[int, typer.Option(help="Items to replay (keeps the demo short).")] = 400,
    cycles: Annotated[int, typer.Option(help="Pipeline cycles over the replay.")] = 16,
    data: Annotated[Optional[Path], typer.Option(help="Folder of the shared data (default ../shared/data).")] = None,
) -> None:
    """Replay real news from ../shared/data through the whole pipeline, offline."""
    from flankwatch.demo import DEFAULT_DATA, run_demo

    settings = _settings()
    result = run_demo(settings, data_dir=data or DEFAULT_DATA, limit=limit, cycles=cycles, console=console)
    with session_scope(settings) as session:
        story_rows = session.scalars(select(Story).order_by(Story.article_count.desc(), Story.last_seen.desc())).all()
        if result.story_ids:
            story_rows = [s for s in story_rows if s.id in result.story_ids]
        alert_query = select(Alert).order_by(Alert.created_at)
        if result.alert_ids:
            alert_query = alert_query.where(Alert.id.in_(result.alert_ids))
        alert_rows = session.scalars(alert_query).all()
        headlines = dict(session.execute(select(Story.id, Story.headline)).all())
        n_stories = len(story_rows)
        multi = [s for s in story_rows if s.article_count > 1]
        console.print(display.stories_table((multi or story_rows)[:25],
                                            title=f"stories ({n_stories}; {len(multi)} with 2+ articles)"))
        console.print(display.alerts_table(alert_rows, headlines, title=f"alerts ({len(alert_rows)})"))
        total_alerts = session.scalar(select(func.count()).select_from(Alert))
    console.print(f"demo: {result.items} items, {result.new_articles} new articles, {result.relevant} relevant, "
                  f"{n_stories} stories, {len(alert_rows)} alerts ({total_alerts} in the outbox in all).")
    for error in result.errors[:10]:
        console.print(f"[red]{escape(error)}[/red]")
    console.print("Search the archive now, e.g.: [bold].venv/bin/flankwatch search brigade[/bold]")


@app.command()
def serve(
    host: Annotated[Optional[str], typer.Option(help="Address to listen on; default FLANKWATCH_WEB_HOST (127.0.0.1).")] = None,
    port: Annotated[Optional[int], typer.Option(help="Port; default FLANKWATCH_WEB_PORT (8765).")] = None,
) -> None:
    """The analyst's desk: search, stories, saved searches and feed health in the browser, and /api/."""
    import uvicorn

    from flankwatch.web.app import create_app
    from flankwatch.web.security import UnsafeBind, check_bind

    settings = _settings()
    host = host or settings.web_host
    port = port or settings.web_port
    try:
        check_bind(host, settings)
    except UnsafeBind as exc:
        console.print(f"[bold red]{escape(str(exc))}[/bold red]")
        raise typer.Exit(2) from None
    shown = f"[{host}]" if ":" in host else host
    console.print(f"Flankwatch desk on [bold]http://{shown}:{port}/[/bold] (API: /api/docs); Ctrl-C stops it")
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning", proxy_headers=False)


@app.command("digest")
def digest_command(
    route: Annotated[Optional[str], typer.Option(help="Only this route (its name); default: every route.")] = None,
    since: Annotated[Optional[str], typer.Option(
        help="An ad-hoc digest from this moment to now (YYYY-MM-DD or ISO 8601; UTC unless it names a zone) "
             "instead of the one due at the route's latest digest time.")] = None,
) -> None:
    """Post the digests due now: per route, the alerts it held (quiet hours, budget) and its most active
    stories since its previous digest. Nothing to report, no digest; a digest is never posted twice."""
    from alerts.digest import local_period
    from flankwatch.pipeline import digest_stage

    settings = _settings()
    if route is not None:
        try:
            settings.route_named(route)
        except KeyError as exc:
            raise typer.BadParameter(str(exc.args[0]), param_hint="--route") from None
    now = datetime.now(timezone.utc)
    start = _parse_day(since)
    if start is not None and start >= now:
        raise typer.BadParameter(f"{since!r} is not in the past", param_hint="--since")
    with _alone(settings, "flankwatch digest", "no digest was posted"):  # it delivers the outbox too
        summary = digest_stage(settings, now=now, route=route, since=start)
    with session_scope(settings) as session:
        for digest in summary["digests"]:
            row = session.get(Alert, digest["id"])
            period = local_period(settings.route_named(digest["route"]), datetime.fromisoformat(digest["period_start"]),
                                  datetime.fromisoformat(digest["period_end"]))
            console.print(f"digest [bold]{escape(digest['route'])}[/bold] -> {escape(digest['channel'] or '-')} "
                          f"({escape(period)}): {digest['stories']} stories, {digest['held']} held alerts carried, "
                          f"{escape(row.status if row else 'unknown')}")
    if not summary["digests"]:
        console.print("no digest due (nothing to report, or already posted)")
    console.print(f"outbox   sent={summary['sent']}  failed={summary['failed']}  pending={summary['pending']}")


app.command("maintenance")(ops_cli.maintenance)
app.command("backup")(ops_cli.backup)
app.command("restore")(ops_cli.restore)
app.command("settings")(ops_cli.settings)


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply the Alembic migrations (idempotent)."""
    settings = get_settings()
    upgrade(settings, revision)
    from sqlalchemy.engine import make_url

    shown = make_url(settings.database_url).render_as_string(hide_password=True)
    console.print(f"state database at {revision}: {escape(shown)}")


if __name__ == "__main__":
    app()
