"""The run lock: a `flankwatch run --once` runs alone; the Airflow DAG's tasks run beside each other, never beside it.

A lock has a name (`pipeline`, or a stage's: `stage:enrich`) and is held *shared* or *exclusive*:

- `flankwatch run --once` (`flankwatch.pipeline.run_once`) holds `pipeline` exclusive for its whole cycle;
- every task of the DAG holds `pipeline` shared while it runs (mapped shards and batches run at once; what
  keeps them off each other's work is `core.claims`), and a stage that is one ordered task (story assignment,
  index, alert) also holds its own lock exclusive, so that a second DAG run (`airflow dags test` beside the
  scheduler) never runs it twice at once.

So a CLI run and a DAG task never overlap. Between two tasks of a DAG run a CLI cycle may slip in: that is
safe, because every stage works from the state DB and is safe to re-run (a feed just polled is not due, an
enriched article is not pending), so nothing is processed twice.

The lock belongs to a live process and goes with it, so a killed run (`kill -9`) never leaves it behind and
never needs a lease to run out:

- PostgreSQL: a session advisory lock (`pg_try_advisory_lock[_shared]`) on a connection of its own; the
  holders are named by their `application_name` in `pg_stat_activity`.
- SQLite: `flock` on a file beside the database file (`<db>.runlock`); an exclusive holder writes its name
  into it.

A lock not free is waited for up to `wait` seconds (polled, never blocking a connection), `on_wait` told once
with a message naming the holder; then `RunLocked` is raised with that message.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from core.settings import Settings

PIPELINE = "pipeline"
NAMESPACE = 0x466C  # first key of Flankwatch's advisory locks ("Fl"); the second is the lock name's CRC
POLL_SECONDS = 0.5


class RunLocked(RuntimeError):
    """The lock was not free within the wait; the message names who holds it."""


def process_name(what: str) -> str:
    """`what` with this process's pid and host: how a holder is named (on PostgreSQL its first 63 bytes, the
    longest `application_name`)."""
    return f"{what} (pid {os.getpid()} on {socket.gethostname()})"


def _key(name: str) -> int:
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


class _PostgresLock:
    def __init__(self, settings: Settings, name: str, holder: str, shared: bool) -> None:
        self.engine = create_engine(settings.database_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        self.connection: Connection | None = None
        self.key, self.holder, self.shared = _key(name), holder, shared

    def try_acquire(self) -> bool:
        if self.connection is None:
            self.connection = self.engine.connect()
            self.connection.execute(text("SELECT set_config('application_name', :name, false)"),
                                    {"name": self.holder[:63]})
        function = "pg_try_advisory_lock_shared" if self.shared else "pg_try_advisory_lock"
        return bool(self.connection.scalar(text(f"SELECT {function}(:a, :b)"), {"a": NAMESPACE, "b": self.key}))

    def holders(self) -> list[str]:
        assert self.connection is not None
        rows = self.connection.execute(text(
            "SELECT coalesce(nullif(a.application_name, ''), 'pid ' || l.pid), l.mode FROM pg_locks l "
            "LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.pid <> pg_backend_pid() "
            "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND l.classid::bigint = :a AND l.objid::bigint = :b ORDER BY 1"
        ), {"a": NAMESPACE, "b": self.key}).all()
        return [f"{name}{' (shared)' if mode == 'ShareLock' else ''}" for name, mode in rows]

    def release(self) -> None:
        if self.connection is not None:
            self.connection.close()  # the session ends: its advisory locks with it
            self.connection = None
        self.engine.dispose()


class _FileLock:
    def __init__(self, settings: Settings, name: str, holder: str, shared: bool) -> None:
        database = make_url(settings.database_url).database
        base = Path(database) if database and database != ":memory:" else settings.var_dir / "state"
        suffix = "" if name == PIPELINE else "." + "".join(c if c.isalnum() else "-" for c in name)
        self.path = base.with_name(f"{base.name}{suffix}.runlock")
        self.holder, self.shared = holder, shared
        self.fd: int | None = None

    def try_acquire(self) -> bool:
        if self.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, (fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        if not self.shared:  # alone now: say who holds it
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, self.holder.encode("utf-8"), 0)
        return True

    def holders(self) -> list[str]:
        try:
            named = self.path.read_text(encoding="utf-8").strip()
        except OSError:
            named = ""
        pid = named.partition("(pid ")[2].partition(" ")[0]
        if named and pid.isdigit() and _alive(int(pid)) and socket.gethostname() in named:
            return [named]
        return ["tasks of a DAG run (shared)"] if not self.shared else []

    def release(self) -> None:
        if self.fd is not None:
            if not self.shared:
                os.ftruncate(self.fd, 0)
            os.close(self.fd)  # the flock goes with the file's last descriptor
            self.fd = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def busy_message(name: str, holders: list[str]) -> str:
    who = ", ".join(holders) if holders else "another Flankwatch run"
    return f"the {name} lock is held by {who}"


@contextmanager
def run_lock(
    settings: Settings,
    *,
    holder: str,
    name: str = PIPELINE,
    shared: bool = False,
    wait: float = 0.0,
    on_wait: Callable[[str], None] | None = None,
    poll: float = POLL_SECONDS,
) -> Iterator[None]:
    """Hold lock `name` (see the module docstring) for the `with` block, as `holder` (`process_name`).
    Waits up to `wait` seconds for it (calling `on_wait(message)` once), then raises `RunLocked`."""
    kind = _PostgresLock if settings.database_url.startswith("postgresql") else _FileLock
    lock = kind(settings, name, holder, shared)
    deadline = time.monotonic() + max(0.0, wait)
    told = False
    try:
        while not lock.try_acquire():
            message = busy_message(name, lock.holders())
            if time.monotonic() >= deadline:
                raise RunLocked(message)
            if on_wait is not None and not told:
                on_wait(f"{message}: waiting up to {wait:.0f} s")
                told = True
            time.sleep(poll)
        yield
    finally:
        lock.release()
