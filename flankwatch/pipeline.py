"""The pipeline runner: one cycle of collect -> enrich -> index -> alert.

The CLI (`flankwatch run --once`), the demo and the Airflow DAG all call the same stage functions defined
here; each wraps the stage function of its own layer and returns only counts and ids. The DAG fans out:
collection over feed shards (`plan_collect_stage`, `collect_shard_stage`), embedding over article batches
(`plan_embed_stage`, `embed_batch_stage`), then story assignment (`enrich_stage`) as one ordered task.

Two runs at once (`core.runlock`): `run_once` holds the pipeline lock alone; each DAG task holds it shared
(`task_lock`), and the ordered stages their own lock too.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from core.db import session_scope, upgrade
from core.models import PipelineRun
from core.runlock import PIPELINE, process_name, run_lock
from core.settings import Settings

log = logging.getLogger(__name__)

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


def plan_collect_stage(settings: Settings, *, now: datetime | None = None,
                       origin: str | None = None) -> list[dict[str, int]]:
    """The feeds file synced, then the feed shards with due feeds (one mapped collect task each)."""
    from collectors.shards import plan_shards

    ensure_schema(settings)
    return [shard.to_dict() for shard in plan_shards(settings, now=now, origin=origin)]


def collect_shard_stage(settings: Settings, *, run_id: str, shard: dict[str, int], now: datetime | None = None,
                        origin: str | None = None) -> dict[str, Any]:
    """One shard's due feeds, claimed, polled and released (`collectors.shards.collect_shard`)."""
    from collectors.shards import Shard, collect_shard

    ensure_schema(settings)
    return collect_shard(settings, run_id=run_id, shard=Shard(**shard), now=now, origin=origin).to_dict()


def plan_embed_stage(settings: Settings) -> list[dict[str, int]]:
    """The batches of pending articles without a vector (one mapped embed task each)."""
    from enrichment.batches import plan_batches

    ensure_schema(settings)
    return [batch.to_dict() for batch in plan_batches(settings)]


def embed_batch_stage(settings: Settings, *, run_id: str, batch: dict[str, int]) -> dict[str, Any]:
    """One batch of pending articles claimed and embedded ahead of story assignment
    (`enrichment.batches.embed_batch`). The claim is the run's and the batch's: a retry takes it back."""
    from enrichment.batches import embed_batch

    ensure_schema(settings)
    return embed_batch(settings, owner=f"{run_id}/embed-{batch['batch']}", size=batch["size"]).to_dict()


@contextmanager
def task_lock(settings: Settings, *, run_id: str, task: str, stage: str | None = None) -> Iterator[None]:
    """What a DAG task holds while it runs (`core.runlock`): the pipeline lock, shared with the other tasks;
    with `stage` (a stage that is one task: enrich, index, alert; the digest, which delivers the outbox as the
    alert stage does) also that stage's own lock. Waits up to `run_lock_wait_seconds` (logged), then raises
    `RunLocked`: the task fails and is retried."""
    holder = process_name(f"airflow {task} {run_id}")
    with ExitStack() as stack:
        stack.enter_context(run_lock(settings, holder=holder, shared=True, wait=settings.run_lock_wait_seconds,
                                     on_wait=log.warning))
        if stage:
            stack.enter_context(run_lock(settings, holder=holder, name=f"stage:{stage}",
                                         wait=settings.run_lock_wait_seconds, on_wait=log.warning))
        yield


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
    lock_wait: float | None = None,
    on_lock_wait: Callable[[str], None] | None = None,
) -> RunSummary:
    """Run every stage once. A failing stage is recorded and the later stages still run: alerts already in
    the outbox still go out when the archive is down, and articles stay pending for the next run.

    `origin` restricts collection to feeds of that origin (the demo polls only its own feeds).
    `on_stage(name)` is called as each stage starts and may return a progress callback for it.

    The run holds the pipeline lock alone (`core.runlock`): while another run or a DAG task holds it, it
    waits up to `lock_wait` seconds (default `run_lock_wait_seconds`; `on_lock_wait(message)` is told once),
    then raises `core.runlock.RunLocked` having done nothing.
    """
    run_id = run_id or new_run_id(now)
    wait = settings.run_lock_wait_seconds if lock_wait is None else lock_wait
    with run_lock(settings, holder=process_name(f"flankwatch run {run_id}"), name=PIPELINE, wait=wait,
                  on_wait=on_lock_wait):
        return _run_stages(settings, now=now, run_id=run_id, slack_token=slack_token, origin=origin,
                           on_stage=on_stage)


def _run_stages(settings: Settings, *, now: datetime | None, run_id: str, slack_token: str | None,
                origin: str | None, on_stage: StageHook | None) -> RunSummary:
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
