"""`flankwatch maintenance`, `backup PATH`, `restore PATH` and `settings`: running the embedded default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from core.settings import get_settings

console = Console()


def maintenance() -> None:
    """Apply retention (FLANKWATCH_RETENTION_ARTICLE_DAYS, FLANKWATCH_RETENTION_STORY_DAYS): delete expired
    articles from the state and the archive, recount their stories, drop empty old stories and old alerts."""
    from flankwatch.retention import maintenance_stage

    summary = maintenance_stage(get_settings())
    if not summary["enabled"]:
        console.print("retention is off (FLANKWATCH_RETENTION_ARTICLE_DAYS / _STORY_DAYS unset): nothing deleted")
        return
    console.print("maintenance  " + "  ".join(f"{k}={escape(str(v))}" for k, v in summary.items() if k != "enabled"))


def backup(path: Annotated[Path, typer.Argument(help="A new (or empty) folder for the backup.")]) -> None:
    """Back up the embedded default (SQLite state and archive, ANN files) while it runs (online backup API)."""
    from flankwatch.backup import BackupRefused, backup as run_backup

    try:
        result = run_backup(get_settings(), path)
    except BackupRefused as exc:
        console.print(f"[bold red]backup refused:[/bold red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    _report("backed up to", result.path, result.to_dict())


def restore(
    path: Annotated[Path, typer.Argument(help="A folder written by `flankwatch backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Restore even while a run seems to hold the DBs.")] = False,
) -> None:
    """Restore a backup into the embedded default's files (after checking its integrity)."""
    from flankwatch.backup import BackupRefused, restore as run_restore

    try:
        result = run_restore(get_settings(), path, force=force)
    except BackupRefused as exc:
        console.print(f"[bold red]restore refused:[/bold red] {escape(str(exc))}")
        raise typer.Exit(2) from None
    _report("restored from", result.path, result.to_dict())


def _report(what: str, path: str, data: dict) -> None:  # type: ignore[type-arg]
    console.print(f"{what} [bold]{escape(path)}[/bold]: {', '.join(data['files'][:2])} "
                  f"(+{data['ann_files']} ANN files), integrity {escape(json.dumps(data['integrity']))}")
    for name, tables in data["counts"].items():
        console.print(f"  {escape(name)}: " + "  ".join(f"{t}={n}" for t, n in tables.items()))


def settings(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The settings in force (environment, config file, defaults), secrets and URL passwords masked."""
    masked = get_settings().masked()
    if as_json:
        print(json.dumps(masked, ensure_ascii=False, indent=2))
        return
    for name, value in masked.items():
        console.print(f"{name:<34} {escape(json.dumps(value, ensure_ascii=False))}")
