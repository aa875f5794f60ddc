"""The pipeline runner: one cycle of collect -> enrich -> index -> alert.

The CLI (`flankwatch run --once`), the demo and the Airflow DAG all call the same four stage functions
defined here; each wraps the stage function of its own layer and returns only counts and ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from core.db import session_scope, upgrade
from core.models import PipelineRun
from core.settings import Settings

Progress = Callable[[int, int], None]
STAGES = ("collect", "enrich", "index", "alert")


def new_run_id(now: datetime | None = None) -> str:
    now = now or datetime.now(timezone.utc)
    return f"run-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


_migrated: set[str] = set()


def ensure_schema(settings: Settings) -> None:
    """Migrate the state DB once per process, so a fresh machine (or a fresh Airflow worker) just works."""
    if settings.database_url not in _migrated:
        upgrade(settings)
        _migrated.add(settings.database_url)


def collect_stage(settings: Settings, *, run_id: str, now: datetime | None = None,
                  progress: Progress | None = None, origin: str | None = None) -> dict[str, Any]:
    from collectors.collect import collect

    ensure_schema(settings)
    return collect(settings, run_id=run_id, now=now, progress=progress, origin=origin).to_dict()


def enrich_stage(settings: Settings, *, now: datetime | None = None,
                 progress: Progress | None = None) -> dict[str, Any]:
    from enrichment.enrich import enrich

    ensure_schema(settings)
    return enrich(settings, now=now, progress=progress).to_dict()


def index_stage(settings: Settings, *, progress: Progress | None = None) -> dict[str, Any]:
    from archive.index import index

    ensure_schema(settings)
    return index(settings, progress=progress).to_dict()


def alert_stage(settings: Settings, *, now: datetime | None = None,
                slack_token: str | None = None) -> dict[str, Any]:
    from alerts.run import alert

    ensure_schema(settings)
    return alert(settings, now=now, slack_token=slack_token).to_dict()


@dataclass
class RunSummary:
    run_id: str
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.errors


StageHook = Callable[[str], Progress | None]


def run_once(
    settings: Settings,
    *,
    now: datetime | None = None,
    run_id: str | None = None,
    slack_token: str | None = None,
    origin: str | None = None,
    on_stage: StageHook | None = None,
) -> RunSummary:
    """Run every stage once. A failing stage is recorded and the later stages still run: alerts already in
    the outbox still go out when the archive is down, and articles stay pending for the next run.

    `origin` restricts collection to feeds of that origin (the demo polls only its own feeds).
    `on_stage(name)` is called as each stage starts and may return a progress callback for it.
    """
    run_id = run_id or new_run_id(now)
    summary = RunSummary(run_id=run_id)
    ensure_schema(settings)
    with session_scope(settings) as session:
        session.merge(PipelineRun(id=run_id, started_at=now or datetime.now(timezone.utc), status="running"))

    calls: dict[str, Callable[[Progress | None], dict[str, Any]]] = {
        "collect": lambda p: collect_stage(settings, run_id=run_id, now=now, progress=p, origin=origin),
        "enrich": lambda p: enrich_stage(settings, now=now, progress=p),
        "index": lambda p: index_stage(settings, progress=p),
        "alert": lambda p: alert_stage(settings, now=now, slack_token=slack_token),
    }
    for name in STAGES:
        progress = on_stage(name) if on_stage else None
        try:
            summary.stages[name] = calls[name](progress)
        except Exception as exc:  # noqa: BLE001 - recorded, and the run goes on
            summary.errors[name] = f"{type(exc).__name__}: {exc}"

    with session_scope(settings) as session:
        run = session.get(PipelineRun, run_id)
        assert run is not None
        run.finished_at = datetime.now(timezone.utc)
        run.status = "ok" if summary.ok else "partial"
        run.summary = {"stages": _compact(summary.stages), "errors": summary.errors}
    return summary


def _compact(stages: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Counts only: id lists are left out of the stored run summary."""
    return {name: {k: v for k, v in result.items() if not isinstance(v, list)} for name, result in stages.items()}


def digest_stage(settings: Settings, *, now: datetime | None = None, route: str | None = None,
                 since: datetime | None = None, slack_token: str | None = None) -> dict[str, Any]:
    """The digests due now (held alerts and the period's top stories, per route), then the outbox delivered.
    Run hourly (DAG `flankwatch_digest`): a digest is built once per route and boundary."""
    from alerts.digest import run_digest

    ensure_schema(settings)
    return run_digest(settings, now=now, route=route, since=since, slack_token=slack_token)
