"""`flankwatch archive status | reindex`: the archive's pending queue, and rebuilding it from the state DB."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.db import upgrade
from core.settings import Settings, get_settings

archive_app = typer.Typer(help="The searchable archive (SQLite or Elasticsearch).", no_args_is_help=True)
console = Console()


def _settings() -> Settings:
    settings = get_settings()
    upgrade(settings)
    return settings


def target(settings: Settings) -> str:
    """Where the archive lives, safe to print: a file path, or the Elasticsearch URL without credentials."""
    if settings.archive_backend == "sqlite":
        return f"sqlite {settings.archive_path}"
    from archive.es_requests import split_url

    try:
        return f"elasticsearch {split_url(settings.elasticsearch_url)[0]}"
    except ValueError:
        return "elasticsearch (invalid FLANKWATCH_ELASTICSEARCH_URL)"


@archive_app.command("status")
def archive_status(
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Pending documents (not yet in the archive, or changed since), recent failures, and what the archive
    holds. The queue is read from the state DB, so this works while the archive is down."""
    from archive.backends import open_archive
    from archive.base import ArchiveUnavailable
    from archive.index import status

    from enrichment.embeddings import STATIC_MODEL
    from enrichment.reembed import pending_count

    settings = _settings()
    queue = status(settings)
    held: dict[str, int] | None = None
    models: dict[str, int] | None = None
    problem = ""
    try:
        with open_archive(settings) as backend:
            held = backend.count()
            models = backend.vector_models()
    except ArchiveUnavailable as exc:
        problem = str(exc)
    configured = settings.embedding_model
    stale = pending_count(settings, configured)  # in the state DB: vectors of another model
    # the static screen's vectors (enrichment.screen) are meant to stay: meaning search reads them with it
    foreign = {model: n for model, n in (models or {}).items() if model not in (configured, STATIC_MODEL)}
    if as_json:
        print(json.dumps({"archive": target(settings), "reachable": held is not None, "error": problem or None,
                          "held": held, "embedding_model": configured, "vector_models": models,
                          "state_vectors_of_other_models": stale, **queue.to_dict()}, indent=2))
        return
    console.print(f"archive [bold]{escape(target(settings))}[/bold]")
    if held is None:
        console.print(f"[bold red]unreachable:[/bold red] {escape(problem)}")
    else:
        console.print(f"holds {held['articles']} articles, {held['stories']} stories")
        shown = ", ".join(f"{model} {n}" for model, n in sorted((models or {}).items(), key=lambda kv: -kv[1]))
        console.print(f"vectors by model: {escape(shown or 'none')} (configured: {escape(configured)})")
    if foreign or stale:
        console.print(f"[bold yellow]{sum(foreign.values())} archived and {stale} stored vectors are of another "
                      f"model than {escape(configured)}[/bold yellow]: meaning search leaves them out; run "
                      "`flankwatch enrich --reembed`, then the index stage (`flankwatch run --once`)")
    console.print(f"pending: [bold]{queue.pending_articles}[/bold] articles, "
                  f"[bold]{queue.pending_stories}[/bold] stories "
                  f"({queue.awaiting_enrichment} articles still awaiting enrichment)")
    if queue.failure_count:
        table = Table(title=f"last index failures ({queue.failure_count} documents failing)")
        for column in ("kind", "id", "attempts", "last failed", "error"):
            table.add_column(column)
        for row in queue.failures:
            table.add_row(row["kind"], row["doc_id"], str(row["attempts"]), row["last_failed_at"][:19],
                          escape(row["error"][:120]))
        console.print(table)


@archive_app.command("reindex")
def archive_reindex() -> None:
    """Rebuild the archive from the state DB into a fresh generation that replaces the old one when done."""
    from archive.index import reindex

    settings = _settings()
    console.print(f"rebuilding [bold]{escape(target(settings))}[/bold] from the state DB")
    with Progress(TextColumn("reindex"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as bar:
        task = bar.add_task("reindex", total=None)
        summary = reindex(settings, progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"indexed {summary.articles_indexed} articles, {summary.stories_indexed} stories")
    if summary.failed:
        console.print(f"[bold red]{len(summary.failed)} failed[/bold red]; the old archive stays in use and they "
                      "stay pending: see `flankwatch archive status`, then run reindex again")
        raise typer.Exit(1)
