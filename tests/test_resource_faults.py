"""Resource faults (issue 20, item 3): a full disk under the archive or the state DB, the state DB locked by
another process, PostgreSQL restarted mid-run, the archive unreachable for a whole day of runs. Each ends
with a clear error, loses nothing and drains on recovery. Real components throughout: a small tmpfs
(mounted here, as root), a second process holding SQLite's write lock, the suite's PostgreSQL server
restarted with pg_ctl, feeds over HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from archive import open_archive
from core.db import session_scope, upgrade
from core.models import Alert, Article
from flankwatch.pipeline import run_once
from flankwatch.replay_server import ReplayServer
from scenario import BASE, ITEMS, write_feeds_file

pytestmark = pytest.mark.slow

NOW = BASE.replace(hour=12)


@pytest.fixture
def served(settings, tmp_path, embedder):
    with ReplayServer(ITEMS) as server:
        feeds = write_feeds_file(tmp_path / "feeds.yaml", server)
        local = {"allow_private_addresses": True, "fetch_host_delay_seconds": 0.0}
        yield settings.model_copy(update={"feeds_file": feeds, **local})


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MiB tmpfs, unmounted afterwards."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("a full-disk test mounts a small tmpfs: needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill `disk` to the last byte with one file (deleted to recover)."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as out:
        for size in (65536, 4096, 1):
            try:
                while out.write(b"\0" * size):
                    pass
            except OSError:
                pass
    return filler


def counts(settings) -> dict[str, int]:
    with session_scope(settings) as session:
        def count(*where) -> int:
            return session.scalar(select(func.count()).select_from(Article).where(*where)) or 0

        return {
            "articles": count(),
            "enriched": count(Article.enriched_at.is_not(None)),
            "indexed": count(Article.indexed_at.is_not(None)),
            "alerts_sent": session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "sent")) or 0,
            "alerts": session.scalar(select(func.count()).select_from(Alert)) or 0,
        }


def assert_drained(settings) -> None:
    """Every item stored once, enriched and in the archive; every alert sent."""
    state = counts(settings)
    assert state["articles"] == len(ITEMS)
    assert state["enriched"] == state["indexed"] == len(ITEMS)
    assert state["alerts"] >= 1 and state["alerts_sent"] == state["alerts"]
    with open_archive(settings) as archive:
        assert archive.count()["articles"] == len(ITEMS)


def test_a_full_disk_under_the_archive_stops_indexing_only_and_drains_after(served, small_disk):
    settings = served.model_copy(update={"archive_path": small_disk / "archive.db"})
    filler = fill(small_disk)
    summary = run_once(settings, now=NOW)
    assert set(summary.errors) == {"index"}, summary.errors
    assert "full" in summary.errors["index"].lower()  # sqlite3: "database or disk is full"
    state = counts(settings)
    assert state["articles"] == state["enriched"] == len(ITEMS) and state["indexed"] == 0
    assert state["alerts"] >= 1 and state["alerts_sent"] == state["alerts"]  # alerts do not wait for the archive

    filler.unlink()
    recovered = run_once(settings, now=NOW + timedelta(minutes=10))
    assert recovered.ok, recovered.errors
    assert recovered.stages["index"]["articles_indexed"] == len(ITEMS)
    assert_drained(settings)
    with sqlite3.connect(settings.archive_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_full_disk_under_the_state_db_fails_clearly_and_loses_nothing(served, small_disk, state_db):
    if state_db is not None:
        pytest.skip("the embedded state DB's disk (PostgreSQL has its own)")
    settings = served.model_copy(update={"database_url": f"sqlite:///{small_disk / 'flankwatch.db'}"})
    upgrade(settings)
    filler = fill(small_disk)
    failures = []
    for minute in range(3):  # runs keep failing while the disk is full, without corrupting anything
        try:
            summary = run_once(settings, now=NOW + timedelta(minutes=minute))
        except Exception as exc:  # noqa: BLE001 - what the CLI / Airflow would show
            failures.append(f"{type(exc).__name__}: {exc}")
        else:
            failures.extend(summary.errors.values())
    # sqlite3's "database or disk is full", or the OS's ENOSPC where a file is created
    assert failures and all("full" in f.lower() or "no space left" in f.lower() for f in failures), failures

    filler.unlink()
    recovered = run_once(settings, now=NOW + timedelta(minutes=10))
    assert recovered.ok, recovered.errors
    assert_drained(settings)
    with sqlite3.connect(small_disk / "flankwatch.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # nothing doubled: one row per item, whatever the failed runs began
        assert db.execute("SELECT count(*), count(DISTINCT canonical_url) FROM articles").fetchone() == (8, 8)


_HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")  # SQLite's write lock: every other writer waits, then fails
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("ROLLBACK")
""")


def test_a_state_db_locked_by_another_process_fails_clearly_then_drains(served, state_db, tmp_path):
    if state_db is not None:
        pytest.skip("SQLite's file lock (PostgreSQL locks rows)")
    settings = served.model_copy(update={"sqlite_busy_timeout_seconds": 1.0})
    database = settings.database_url.split("///", 1)[1]
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, database, "8"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        failures = []
        try:
            summary = run_once(settings, now=NOW)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{type(exc).__name__}: {exc}")
        else:
            failures.extend(summary.errors.values())
        assert failures and all("database is locked" in failure for failure in failures), failures
        assert counts(settings)["articles"] == 0
    finally:
        holder.wait(timeout=30)
    recovered = run_once(settings, now=NOW + timedelta(minutes=10))
    assert recovered.ok, recovered.errors
    assert_drained(settings)


def _restart_command(url: str) -> list[str] | None:
    """pg_ctl's restart of the server of `url` (the suite's own, from scripts/with-postgres.sh: its data
    directory sits beside its socket), run as the cluster's owner: every open connection is cut. None: not
    such a server."""
    socket_dir = parse_qs(urlsplit(url).query).get("host", [""])[0]
    data = Path(socket_dir) / "data"
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not socket_dir or not data.is_dir() or not bindirs:
        return None
    log = data.parent / "restart.log"  # (its output must not hold our pipes open: the server outlives pg_ctl)
    command = [str(bindirs[-1]), "-D", str(data), "-l", str(log), "-m", "fast", "-w", "-t", "30", "restart"]
    owner = data.owner()
    return ["runuser", "-u", owner, "--", *command] if owner != "root" and os.geteuid() == 0 else command


def test_postgresql_restarted_mid_run_loses_nothing(served, state_db):
    if state_db is None:
        pytest.skip("PostgreSQL only: the SQLite variant is the locked-database test above")
    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    # A watcher on its own connection restarts the server as soon as the run has stored its first article:
    # whatever the run does then (storing more, enriching, indexing) loses its connection.
    restart = _restart_command(os.environ.get("FLANKWATCH_TEST_POSTGRES_URL", ""))
    if restart is None:
        pytest.skip("the PostgreSQL server is not the one scripts/with-postgres.sh started (no pg_ctl restart)")
    restarted = threading.Event()
    watcher_engine = create_engine(state_db, poolclass=NullPool)

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                with watcher_engine.connect() as connection:
                    if connection.execute(text("SELECT count(*) FROM articles")).scalar():
                        subprocess.run(restart, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       timeout=60)
                        restarted.set()
                        return
            except Exception:  # noqa: BLE001 - the server is starting up
                pass
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    outcome = "finished"
    try:
        summary = run_once(served, now=NOW)
        if summary.errors:
            outcome = "; ".join(summary.errors.values())
    except Exception as exc:  # noqa: BLE001 - a run may die with the server; the next one must recover
        outcome = f"{type(exc).__name__}: {exc}"
    watcher.join(timeout=150)
    watcher_engine.dispose()
    assert restarted.is_set()
    for minute in (10, 20):  # re-runs drain whatever the restart interrupted
        recovered = run_once(served, now=NOW + timedelta(minutes=minute))
    assert recovered.ok, (recovered.errors, outcome)
    assert_drained(served)


def test_an_archive_unreachable_for_a_day_of_runs_drains_when_it_returns(served, tmp_path, state_db):
    """144 runs (a day at the DAG's 10 minutes) with the archive's directory unusable: every index stage fails
    with the reason, collection, enrichment and alerts go on, nothing is lost; then one run indexes it all."""
    blocked = tmp_path / "archive-mount"
    blocked.write_text("not a directory: the archive volume is gone")
    settings = served.model_copy(update={"archive_path": blocked / "archive.db"})
    errors = set()
    for tick in range(144):
        summary = run_once(settings, now=NOW + timedelta(minutes=10 * tick))
        assert set(summary.errors) <= {"index"}
        errors.update(summary.errors.values())
    assert len(errors) >= 1 and all("archive" in e.lower() or "directory" in e.lower() for e in errors), errors
    state = counts(settings)
    assert state["articles"] == state["enriched"] == len(ITEMS) and state["indexed"] == 0
    assert state["alerts_sent"] == state["alerts"] >= 1

    blocked.unlink()
    blocked.mkdir()
    recovered = run_once(settings, now=NOW + timedelta(days=1))
    assert recovered.ok, recovered.errors
    assert recovered.stages["index"]["articles_indexed"] == len(ITEMS)
    assert_drained(settings)
