"""`flankwatch backup PATH` / `flankwatch restore PATH` of the embedded default (SQLite state and archive).

A backup is a folder: `flankwatch.db` (the state), `archive.db` (the archive), the archive's ANN segment files
(`archive/ann.py`; without them the index is rebuilt from the vectors on the first search, as for a lost
index), and `manifest.json` (what was copied, counts, integrity checks).

Consistency while a run writes. Each database is copied by SQLite's online backup API in one step
(`Connection.backup(pages=-1)`: one read transaction, so each copy is a snapshot of a committed state). The
two snapshots agree because the archive's write lock is held (`BEGIN IMMEDIATE` on a connection of our own)
from before the archive is copied until the state is copied: the index stage writes the archive before it
marks the state, so every document the state copy calls indexed is in the archive copy at that version, and
the ANN files listed in the archive copy stay on disk while they are copied (they are replaced only by a
writer's commit). An index batch waiting for the lock meanwhile waits (busy timeout 30 s) or fails and stays
pending for the next run. The copies are switched to rollback-journal mode (one self-contained file each) and
must pass `PRAGMA integrity_check`.

Restore copies the backup INTO the live files with the same backup API (never replacing files under open
connections), after checking the backup's integrity; it refuses while a run holds the databases (another
process has them open, a pipeline run started in the last 6 hours is marked running, or a write lock is
taken) unless `force`: stop the DAGs, `flankwatch run` and the desk first. The restored archive's
`vectors_version` is moved past both the live and the backed-up one, so no process reuses a cached matrix.

PostgreSQL and Elasticsearch have their own tools: `pg_dump` / `pg_restore` and Elasticsearch snapshots
(`_snapshot` API); this module refuses them with a message that says so.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from core.settings import Settings, mask_url

STATE_FILE = "flankwatch.db"
ARCHIVE_FILE = "archive.db"
MANIFEST = "manifest.json"
RUNNING_WINDOW = timedelta(hours=6)  # a run marked running that started earlier is taken for a crashed one
LOCK_PROBE_SECONDS = 2.0


class BackupRefused(RuntimeError):
    """The backup or restore cannot (or must not) be done; the message says why and what to do."""


@dataclass
class BackupResult:
    path: str
    files: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    integrity: dict[str, str] = field(default_factory=dict)
    ann_files: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _state_path(settings: Settings) -> Path:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise BackupRefused(
            f"the state DB is {url.get_backend_name()}, not an SQLite file: back it up with pg_dump "
            "(and restore with pg_restore / psql); `flankwatch backup` covers the embedded default only")
    return Path(url.database)


def _archive_path(settings: Settings) -> Path:
    if settings.archive_backend != "sqlite":
        raise BackupRefused(
            "the archive is in Elasticsearch: use Elasticsearch snapshots (PUT _snapshot/<repo>/<name>), or "
            "rebuild it from the state DB with `flankwatch archive reindex`; `flankwatch backup` covers the "
            "embedded default only")
    return Path(settings.archive_path or settings.var_dir / "archive.db")


def _connect(path: Path, timeout: float = 30.0) -> sqlite3.Connection:
    return sqlite3.connect(str(path), timeout=timeout, isolation_level=None)


def _copy(source: Path, target: Path) -> None:
    """`source` into `target` by the online backup API, in one step (one consistent snapshot)."""
    with closing(_connect(source)) as src, closing(_connect(target)) as dst:
        src.execute("PRAGMA busy_timeout=30000")
        src.backup(dst, pages=-1)


def _self_contained(path: Path) -> None:
    with closing(_connect(path)) as db:
        db.execute("PRAGMA journal_mode=DELETE")


def integrity(path: Path) -> str:
    """`PRAGMA integrity_check` of a database file: "ok" or the first problems found."""
    with closing(_connect(path)) as db:
        rows = [row[0] for row in db.execute("PRAGMA integrity_check(20)")]
    return "ok" if rows == ["ok"] else "; ".join(rows)


def table_counts(path: Path, tables: tuple[str, ...]) -> dict[str, int]:
    with closing(_connect(path)) as db:
        present = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        return {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables if t in present}


STATE_TABLES = ("articles", "stories", "story_events", "alerts", "feeds", "fetches", "pipeline_runs", "watches")
ARCHIVE_TABLES = ("articles", "stories", "saved_searches", "ann_segments")


def _ann_files(path: Path) -> list[str]:
    with closing(_connect(path)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ann_segments'").fetchone():
            return []
        return [row[0] for row in db.execute("SELECT file FROM ann_segments ORDER BY id")]


def backup(settings: Settings, target: Path) -> BackupResult:
    """Back the embedded default up into the folder `target` (new or empty); see the module doc."""
    state, archive = _state_path(settings), _archive_path(settings)
    if not state.exists():
        raise BackupRefused(f"no state DB at {state}: nothing to back up (run `flankwatch db upgrade` first)")
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise BackupRefused(f"{target} exists and is not empty: back up into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    result = BackupResult(path=str(target))
    ann_names: list[str] = []
    lock: sqlite3.Connection | None = None
    try:
        if archive.exists():
            lock = _connect(archive)
            lock.execute("PRAGMA busy_timeout=30000")
            lock.execute("BEGIN IMMEDIATE")  # no index batch commits until both snapshots are taken
            _copy(archive, target / ARCHIVE_FILE)
            ann_names = _ann_files(target / ARCHIVE_FILE)
            for name in ann_names:
                shutil.copy2(archive.resolve().parent / name, target / name)
        _copy(state, target / STATE_FILE)
    finally:
        if lock is not None:
            lock.execute("ROLLBACK")
            lock.close()
    for name, tables in ((STATE_FILE, STATE_TABLES), (ARCHIVE_FILE, ARCHIVE_TABLES)):
        if (target / name).exists():
            _self_contained(target / name)
            result.files.append(name)
            result.integrity[name] = integrity(target / name)
            result.counts[name] = table_counts(target / name, tables)
    result.files += ann_names
    result.ann_files = len(ann_names)
    bad = {name: verdict for name, verdict in result.integrity.items() if verdict != "ok"}
    manifest = {"created_at": datetime.now(timezone.utc).isoformat(), "sqlite": sqlite3.sqlite_version,
                **result.to_dict()}
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    if bad:
        raise BackupRefused(f"the backup in {target} failed its integrity check: {bad}")
    return result


def holders(paths: list[Path]) -> dict[int, str]:
    """Other processes of this machine that have one of the files (or its -wal / -shm) open: pid -> command
    line. Linux (/proc); elsewhere, and for processes of other users, nothing is found."""
    wanted = {str(p.resolve()) + suffix for p in paths for suffix in ("", "-wal", "-shm")}
    found: dict[int, str] = {}
    for proc in Path("/proc").glob("[0-9]*"):
        pid = int(proc.name)
        if pid == os.getpid():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    words = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
                    found[pid] = mask_url(" ".join(Path(words[0]).name.split() + words[1:3]))  # no secrets
                    break
        except OSError:  # gone meanwhile, or not ours
            continue
    return found


def _busy(settings: Settings, state: Path, archive: Path) -> str | None:
    """Why a run seems to hold the databases now, or None."""
    held = holders([p for p in (state, archive) if p.exists()])
    if held:
        return "the databases are open in " + "; ".join(f"pid {pid} ({cmd.strip()})" for pid, cmd in sorted(held.items()))
    if state.exists():
        since = (datetime.now(timezone.utc) - RUNNING_WINDOW).replace(tzinfo=None).isoformat(sep=" ")
        with closing(_connect(state, timeout=LOCK_PROBE_SECONDS)) as db:
            try:
                row = db.execute("SELECT id FROM pipeline_runs WHERE status = 'running' AND started_at >= ? "
                                 "ORDER BY started_at DESC LIMIT 1", (since,)).fetchone()
            except sqlite3.OperationalError:  # no such table (an empty DB): no run
                row = None
        if row:
            return f"pipeline run {row[0]} is marked running"
    for path in (state, archive):
        if not path.exists():
            continue
        with closing(_connect(path, timeout=LOCK_PROBE_SECONDS)) as db:
            try:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                return f"{path} is being written ({exc})"
    return None


def restore(settings: Settings, source: Path, *, force: bool = False) -> BackupResult:
    """Restore the backup folder `source` into the embedded default's files; see the module doc."""
    state, archive = _state_path(settings), _archive_path(settings)
    source = Path(source)
    if not (source / STATE_FILE).exists():
        raise BackupRefused(f"{source} holds no {STATE_FILE}: not a flankwatch backup")
    result = BackupResult(path=str(source))
    for name in (STATE_FILE, ARCHIVE_FILE):
        if (source / name).exists():
            verdict = integrity(source / name)
            if verdict != "ok":
                raise BackupRefused(f"{source / name} fails its integrity check ({verdict}): not restored")
    ann_names = _ann_files(source / ARCHIVE_FILE) if (source / ARCHIVE_FILE).exists() else []
    missing = [name for name in ann_names if not (source / name).exists()]
    if not force:
        reason = _busy(settings, state, archive)
        if reason:
            raise BackupRefused(f"{reason}: stop the pipeline (Airflow DAGs, `flankwatch run`) before restoring, "
                                "or pass --force to restore anyway")
    state.parent.mkdir(parents=True, exist_ok=True)
    _copy(source / STATE_FILE, state)
    result.files.append(STATE_FILE)
    if (source / ARCHIVE_FILE).exists():
        archive.parent.mkdir(parents=True, exist_ok=True)
        live_version = _vectors_version(archive) if archive.exists() else 0
        folder = archive.resolve().parent
        for name in ann_names:
            if name not in missing:
                shutil.copy2(source / name, folder / name)
        _copy(source / ARCHIVE_FILE, archive)
        _renumber(archive, live_version, stale=bool(missing))
        listed = set(ann_names)
        for orphan in folder.glob(f"{archive.name}.ann.*.usearch"):  # the replaced archive's segments
            if orphan.name not in listed:
                orphan.unlink(missing_ok=True)
        result.files.append(ARCHIVE_FILE)
        result.files += [name for name in ann_names if name not in missing]
        result.ann_files = len(ann_names) - len(missing)
    for name, path, tables in ((STATE_FILE, state, STATE_TABLES), (ARCHIVE_FILE, archive, ARCHIVE_TABLES)):
        if name in result.files:
            result.integrity[name] = integrity(path)
            result.counts[name] = table_counts(path, tables)
    return result


def _vectors_version(path: Path) -> int:
    with closing(_connect(path)) as db:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'vectors_version'").fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0]) if row else 0


def _renumber(path: Path, live_version: int, stale: bool) -> None:
    """Move the restored archive's `vectors_version` (and its up-to-date ANN stamps) past the live one's, so
    that no running process takes its cached matrix of the replaced archive for this one. `stale`: ANN files
    are missing, so the index is marked stale and rebuilt on the first search."""
    with closing(_connect(path)) as db:
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
            return
        db.execute("BEGIN IMMEDIATE")
        row = db.execute("SELECT value FROM meta WHERE key = 'vectors_version'").fetchone()
        old = int(row[0]) if row else 0
        new = str(max(old, live_version) + 1)
        db.execute("INSERT INTO meta (key, value) VALUES ('vectors_version', ?) "
                   "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (new,))
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'ann_models'").fetchone():
            db.execute("UPDATE ann_models SET version = ? WHERE version = ?", ("stale" if stale else new, str(row[0] if row else "0")))
        db.execute("COMMIT")
