"""`flankwatch alerts report`: how useful each alert rule is, from the 👍 / 👎 analysts gave in Slack."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alerts.feedback import PrecisionRow, precision_report
from core.db import session_scope, upgrade
from core.settings import Settings, get_settings

alerts_app = typer.Typer(help="Alerts: feedback from Slack, precision per rule and route.", no_args_is_help=True)
console = Console()

NO_RATING = "–"


def _settings() -> Settings:
    settings = get_settings()
    upgrade(settings)
    return settings


def _since(value: str | None) -> datetime | None:
    """YYYY-MM-DD (or ISO 8601) as a UTC-aware moment; naive values are UTC."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD or ISO 8601)", param_hint="--since") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def _precision(useful: int, rated: int) -> str:
    return f"{useful / rated:.0%} ({useful}/{rated})" if rated else NO_RATING


def report_table(rows: list[PrecisionRow], title: str) -> Table:
    """One line per rule (alert kind) and route, then the totals."""
    table = Table(title=title, show_footer=False)
    for column in ("kind", "route"):
        table.add_column(column)
    for column in ("sent", "rated", "👍", "👎", "precision"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(escape(row.kind), escape(row.route), str(row.sent), str(row.rated), str(row.up), str(row.down),
                      _precision(row.useful, row.rated))  # fmt: skip
    sent, rated = sum(r.sent for r in rows), sum(r.rated for r in rows)
    up, down, useful = sum(r.up for r in rows), sum(r.down for r in rows), sum(r.useful for r in rows)
    table.add_section()
    table.add_row("[bold]total[/bold]", "", str(sent), str(rated), str(up), str(down), _precision(useful, rated))
    return table


@alerts_app.command("report")
def alerts_report(
    since: Annotated[Optional[str], typer.Option(
        "--since", help="Only alerts sent from this day on (YYYY-MM-DD or ISO 8601; UTC unless it names a zone).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the rows as one JSON list.")] = False,
) -> None:
    """Precision per rule (alert kind) and route: alerts sent, rated (a 👍 or 👎 at least), 👍, 👎, and the
    share of rated alerts with more 👍 than 👎. Reactions are read back by the alert stage."""
    start = _since(since)
    settings = _settings()
    with session_scope(settings) as session:
        rows = precision_report(session, since=start)
    if as_json:
        print(json.dumps([row.to_dict() for row in rows], ensure_ascii=False))
        return
    title = "alert precision" + (f" since {start.isoformat()}" if start else "")
    console.print(report_table(rows, title))
    if not rows:
        console.print("no alert sent yet" + (" in this period" if start else ""))
    elif not any(row.rated for row in rows):
        console.print("no 👍 / 👎 yet: reactions are read back by the alert stage, 10 minutes after a message")
