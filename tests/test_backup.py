"""`flankwatch backup` / `restore` (flankwatch/backup.py): a backup taken while a real run process writes (the
demo, in a subprocess) is one consistent snapshot of both databases, passes its integrity check, and restores
to exactly what it holds; restore refuses while the run holds the databases; PostgreSQL / Elasticsearch are
refused with a pointer to their own tools."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from core.settings import Settings
from flankwatch.backup import ARCHIVE_FILE, STATE_FILE, BackupRefused, backup, integrity, restore

FLANKWATCH = Path(sys.executable).with_name("flankwatch")


def _ids(path: Path, table: str, where: str = "") -> set[str]:
    with closing(sqlite3.connect(path)) as db:
        return {row[0] for row in db.execute(f"SELECT id FROM {table} {where}")}


def _snapshot(folder: Path, state: str = STATE_FILE, archive: str = ARCHIVE_FILE) -> dict[str, set[str]]:
    return {"articles": _ids(folder / state, "articles"), "stories": _ids(folder / state, "stories"),
            "alerts": _ids(folder / state, "alerts"), "runs": _ids(folder / state, "pipeline_runs"),
            "indexed": _ids(folder / state, "articles", "WHERE indexed_at IS NOT NULL AND indexed_at = updated_at"),
            "archive_articles": _ids(folder / archive, "articles")}


@pytest.mark.slow
def test_backup_while_a_run_writes_restores_a_consistent_snapshot(tmp_path: Path, shared_data: Path) -> None:
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLANKWATCH_")}
    env.update({"FLANKWATCH_VAR_DIR": str(var), "FLANKWATCH_FEEDS_FILE": str(tmp_path / "no-feeds.yaml")})
    settings = Settings(var_dir=var, feeds_file=tmp_path / "no-feeds.yaml")
    writer = subprocess.Popen([str(FLANKWATCH), "demo", "--limit", "150", "--cycles", "6"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # until the run has indexed something
            try:
                if _ids(var / ARCHIVE_FILE, "articles"):
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.5)
        assert writer.poll() is None, "the demo ended before the backup"
        result = backup(settings, tmp_path / "backup")
        with pytest.raises(BackupRefused, match="open in pid"):
            restore(settings, tmp_path / "backup")
        assert writer.poll() is None, "the backup must be taken while the run writes"
    finally:
        _, err = writer.communicate(timeout=600)
    assert writer.returncode == 0, err[-2000:]

    assert result.integrity == {STATE_FILE: "ok", ARCHIVE_FILE: "ok"}
    taken = _snapshot(tmp_path / "backup")
    final = _snapshot(var, STATE_FILE, ARCHIVE_FILE)
    assert taken["articles"] and taken["articles"] <= final["articles"]
    assert taken["runs"] < final["runs"]  # mid-run: the demo went on after it
    # one snapshot of both: what the state copy calls indexed is in the archive copy, nothing else is there
    assert taken["indexed"] <= taken["archive_articles"] <= taken["articles"]
    assert result.counts[STATE_FILE]["articles"] == len(taken["articles"])
    assert not (tmp_path / "backup" / f"{STATE_FILE}-wal").exists()  # self-contained files

    restored = restore(settings, tmp_path / "backup")  # the run is over: no --force needed
    assert restored.integrity == {STATE_FILE: "ok", ARCHIVE_FILE: "ok"}
    assert _snapshot(var, STATE_FILE, ARCHIVE_FILE) == taken
    assert integrity(var / STATE_FILE) == "ok"
    # the restored embedded default works: the CLI searches it
    done = subprocess.run([str(FLANKWATCH), "search", "", "--json"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def test_backup_refuses_other_backends_and_a_full_folder(tmp_path: Path) -> None:
    pg = Settings(var_dir=tmp_path, database_url="postgresql+psycopg://u:pw@localhost/db")
    with pytest.raises(BackupRefused, match="pg_dump"):
        backup(pg, tmp_path / "b")
    es = Settings(var_dir=tmp_path, archive_backend="elasticsearch")
    with pytest.raises(BackupRefused, match="snapshot"):
        backup(es, tmp_path / "b")
    with pytest.raises(BackupRefused, match="pg_dump"):
        restore(pg, tmp_path / "b")
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    (tmp_path / "flankwatch.db").touch()
    with pytest.raises(BackupRefused, match="not empty"):
        backup(Settings(var_dir=tmp_path), full)
