"""`flankwatch watch add | list | rm`: saved searches that alert (see alerts.watches)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from core.db import session_scope, upgrade
from core.settings import Settings, get_settings

watch_app = typer.Typer(help="Saved searches that alert: new articles matching them go to Slack.",
                        no_args_is_help=True)
console = Console()

MODES = ("words", "meaning", "hybrid")


def _settings() -> Settings:
    settings = get_settings()
    upgrade(settings)
    return settings


@watch_app.command("add")
def watch_add(
    query: Annotated[str, typer.Argument(help='Words, "a phrase", prefix*, a OR b; by meaning: any sentence.')],
    route: Annotated[str, typer.Option(help="The alert route its matches go to (`default`: the Slack channel).")],
    mode: Annotated[str, typer.Option(
        help="words (the search syntax) | meaning (the multilingual vectors: finds other languages) | hybrid "
             "(either)")] = "words",
    source: Annotated[Optional[list[str]], typer.Option(help="Outlet name (repeatable).")] = None,
    language: Annotated[Optional[list[str]], typer.Option(help="Language code (repeatable).")] = None,
    topic: Annotated[Optional[list[str]], typer.Option(help="Topic name (repeatable).")] = None,
    name: Annotated[str, typer.Option(help="What the alerts call it (default: the query).")] = "",
) -> None:
    """Add a watch. Only articles indexed from now on alert: once per story, then a thread reply per article."""
    from alerts.watches import add_watch
    from archive.backends import open_archive

    if mode not in MODES:
        raise typer.BadParameter(f"mode must be one of {', '.join(MODES)}", param_hint="--mode")
    settings = _settings()
    try:
        settings.route_named(route)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0]), param_hint="--route") from None
    embedder = None
    if mode != "words":
        from enrichment.embeddings import get_embedder

        embedder = get_embedder(settings.embedding_model)
    with open_archive(settings) as archive, session_scope(settings) as session:
        try:
            watch = add_watch(session, archive, settings, query, mode=mode, sources=tuple(source or ()),
                              languages=tuple(language or ()), topics=tuple(topic or ()), route=route, name=name,
                              embedder=embedder)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="QUERY") from None
        watch_id, threshold = watch.id, watch.min_similarity
    extra = f", min similarity {threshold:.3f}" if threshold is not None else ""
    console.print(f"added watch [bold]{escape(watch_id)}[/bold] ({mode}{extra}) -> route {escape(route)}")


@watch_app.command("list")
def watch_list() -> None:
    """Every watch: id, name, query, mode, filters, route and when it was added."""
    from alerts.watches import filters_text, list_watches

    settings = _settings()
    table = Table(title="watches")
    for column in ("id", "name", "query", "mode", "filters", "route", "created"):
        table.add_column(column, overflow="fold")
    with session_scope(settings) as session:
        watches = list_watches(session)
        for watch in watches:
            table.add_row(escape(watch.id), escape(watch.name or ""), escape(watch.query.get("text") or ""),
                          watch.mode, escape(filters_text(watch) or "-"), escape(watch.route),
                          watch.created_at.strftime("%Y-%m-%d %H:%M UTC"))
    if not watches:
        console.print("no watches: add one with `flankwatch watch add QUERY --route R`")
        return
    console.print(table)


@watch_app.command("rm")
def watch_rm(
    watch_id: Annotated[str, typer.Argument(metavar="ID", help="The watch's id (`flankwatch watch list`).")],
) -> None:
    """Remove a watch (from the archive and the state DB). Alerts it already raised stay."""
    from alerts.watches import remove_watch
    from archive.backends import open_archive

    settings = _settings()
    with open_archive(settings) as archive, session_scope(settings) as session:
        removed = remove_watch(session, archive, watch_id)
    if not removed:
        console.print(f"[bold red]no watch {escape(watch_id)}[/bold red]")
        raise typer.Exit(1)
    console.print(f"removed watch [bold]{escape(watch_id)}[/bold]")
