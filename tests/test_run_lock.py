"""Two runs at once (issue 20 item 2), with real processes on SQLite and PostgreSQL: `flankwatch run --once`
beside another one or beside a DAG task waits or skips with a message naming the holder; two CLI runs started
together process every feed and article once; a killed holder leaves no lock behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from core.db import session_scope, upgrade
from core.models import Article, FetchRecord, Story
from core.runlock import RunLocked, run_lock
from core.settings import Settings
from fanout_support import BOTH, PROJECT_ROOT, database, start, worker_env
from flankwatch.pipeline import task_lock
from flankwatch.replay_server import ReplayServer
from scenario import ITEMS, write_feeds_file

FLANKWATCH = [sys.executable, "-m", "flankwatch.cli"]

# Holds a lock until killed: exclusive as a CLI run would (argv: holder), or shared as a DAG task (argv: task).
HOLDER = """
import sys, time
from core.runlock import process_name, run_lock
from core.settings import get_settings
from flankwatch.pipeline import task_lock
kind, name = sys.argv[1], sys.argv[2]
lock = (task_lock(get_settings(), run_id="manual__2026", task=name) if kind == "task"
        else run_lock(get_settings(), holder=process_name(name)))
with lock:
    print("held", flush=True)
    time.sleep(600)
"""


@pytest.fixture(params=BOTH)
def lock_db(request, tmp_path):
    with database(request.param, tmp_path) as url:
        settings = Settings(var_dir=tmp_path / "var", database_url=url, feeds_file=tmp_path / "none.yaml")
        upgrade(settings)
        yield settings


def _hold(settings: Settings, tmp_path, kind: str, name: str) -> subprocess.Popen[str]:
    holder = start(HOLDER, worker_env(settings.database_url, tmp_path), kind, name)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held", holder.communicate()[1]
    return holder


def _cli(settings: Settings, tmp_path, *args: str, feeds=None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = worker_env(settings.database_url, tmp_path, COLUMNS="200")
    if feeds is not None:
        env["FLANKWATCH_FEEDS_FILE"] = str(feeds)
    return subprocess.run([*FLANKWATCH, *args], cwd=PROJECT_ROOT, env=env, text=True, capture_output=True,
                          timeout=timeout)


def test_run_once_skips_while_another_run_holds_the_lock_and_runs_once_it_is_gone(lock_db, tmp_path):
    holder = _hold(lock_db, tmp_path, "cli", "flankwatch run run-first")
    try:
        busy = _cli(lock_db, tmp_path, "run", "--once", "--wait", "1")
        assert busy.returncode == 75, busy.stdout + busy.stderr
        out = " ".join(busy.stdout.split())
        assert "waiting: the pipeline lock is held by flankwatch run run-first (pid" in out
        assert "skipped: the pipeline lock is held by flankwatch run run-first" in out
        assert "this run did nothing" in out
        with session_scope(lock_db) as session:  # it did nothing: no pipeline run recorded
            assert session.scalar(select(func.count()).select_from(FetchRecord)) == 0
    finally:
        holder.send_signal(signal.SIGKILL)  # as a crash would: the lock goes with the process
        holder.wait()
    free = _cli(lock_db, tmp_path, "run", "--once", "--wait", "0")
    assert free.returncode == 0, free.stdout + free.stderr
    assert "skipped" not in free.stdout


def test_run_once_waits_for_a_dag_task_and_a_dag_task_waits_for_run_once(lock_db, tmp_path):
    task = _hold(lock_db, tmp_path, "task", "collect")
    try:
        busy = _cli(lock_db, tmp_path, "run", "--once", "--wait", "0")
        assert busy.returncode == 75
        out = " ".join(busy.stdout.split())
        assert "skipped: the pipeline lock is held by" in out
        if lock_db.database_url.startswith("postgresql"):  # PostgreSQL names every holder
            assert "airflow collect manual__2026" in out and "(shared)" in out
        else:
            assert "tasks of a DAG run (shared)" in out
        # tasks share the lock: a second one runs beside it
        with task_lock(lock_db, run_id="manual__2026", task="embed"):
            pass
    finally:
        task.send_signal(signal.SIGKILL)
        task.wait()
    cli = _hold(lock_db, tmp_path, "cli", "flankwatch run run-by-hand")
    try:
        waited: list[str] = []
        with pytest.raises(RunLocked, match="held by flankwatch run run-by-hand"):
            with run_lock(lock_db, holder="a dag task", shared=True, wait=1.0, on_wait=waited.append, poll=0.1):
                pass
        assert len(waited) == 1 and "waiting up to 1 s" in waited[0]
    finally:
        cli.send_signal(signal.SIGKILL)
        cli.wait()


def test_ordered_stage_runs_once_at_a_time_across_dag_runs(lock_db, tmp_path):
    """Two DAG runs (the scheduler's and `airflow dags test`) share the pipeline lock, never a stage's."""
    holder = _hold(lock_db, tmp_path, "task", "enrich")  # shared only: this holder's task is not ordered
    try:
        with task_lock(lock_db, run_id="run-2", task="enrich", stage="enrich"):
            with pytest.raises(RunLocked, match="stage:enrich"):
                with task_lock(lock_db.model_copy(update={"run_lock_wait_seconds": 0.0}),
                               run_id="run-3", task="enrich", stage="enrich"):
                    pass
        # the digest delivers the outbox: never beside a run's alert task
        with task_lock(lock_db, run_id="run-2", task="alert", stage="alert"):
            with pytest.raises(RunLocked, match="stage:alert"):
                with task_lock(lock_db.model_copy(update={"run_lock_wait_seconds": 0.0}),
                               run_id="scheduled__digest", task="digest", stage="alert"):
                    pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


def test_two_run_once_started_together_process_every_article_once(lock_db, tmp_path):
    with ReplayServer(ITEMS) as server:
        feeds = write_feeds_file(tmp_path / "feeds.yaml", server)
        env = worker_env(lock_db.database_url, tmp_path, FLANKWATCH_FEEDS_FILE=str(feeds), COLUMNS="200")
        runs = [subprocess.Popen([*FLANKWATCH, "run", "--once", "--wait", "240"], cwd=PROJECT_ROOT, env=env,
                                 text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outputs = [run.communicate(timeout=300) for run in runs]
        assert [run.returncode for run in runs] == [0, 0], outputs
        assert server.requests == len(server.outlets), "a feed was polled by both runs"
    texts = [" ".join(out.split()) for out, _ in outputs]
    assert sum("waiting: the pipeline lock is held by flankwatch run" in text for text in texts) == 1, texts
    new = [int(text.split("new_articles=")[1].split()[0]) for text in texts]
    assert sorted(new) == [0, len(ITEMS)]
    enriched = [int(text.split("enriched=")[1].split()[0]) for text in texts]
    assert sorted(enriched) == [0, len(ITEMS)]
    with session_scope(lock_db) as session:
        assert session.scalar(select(func.count()).select_from(Article)) == len(ITEMS)
        assert session.scalar(select(func.count()).select_from(FetchRecord)) == len(server.outlets)
        members = Counter(session.scalars(select(Article.story_id).where(Article.story_id.is_not(None))))
        counts = dict(session.execute(select(Story.id, Story.article_count).where(Story.merged_into.is_(None))).all())
    assert members and all(counts[story] == n for story, n in members.items()), (members, counts)
    alerts = [json.loads(line)["id"] for line in (tmp_path / "var" / "alerts.jsonl").read_text().splitlines()
              if line.strip()] if (tmp_path / "var" / "alerts.jsonl").exists() else []
    assert len(alerts) == len(set(alerts)), "an alert was sent twice"


def test_lock_is_free_again_after_its_holder_is_killed(lock_db, tmp_path):
    holder = _hold(lock_db, tmp_path, "cli", "flankwatch run run-killed")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    started = time.monotonic()
    with run_lock(lock_db, holder="next", wait=5.0):
        pass
    assert time.monotonic() - started < 5.0
