"""Database engine, sessions and migrations (SQLite by default, PostgreSQL via `FLANKWATCH_DATABASE_URL`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from threading import Lock

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_pragmas(busy_ms: int, dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the CLI read while an Airflow task writes; busy_timeout waits for a lock instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL is durable in WAL mode except for the last commits before a power cut (never corrupting); every
    # stage is safe to re-run, and FULL's fsync per commit cost a third of the clustering step's time.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# One engine (and connection pool) per URL (and SQLite lock wait), shared by every session of this process. Bounded: a process that
# opens many state DBs one after another (the test suite) disposes the least recently used engine's pool.
_ENGINES: OrderedDict[tuple[str, float], Engine] = OrderedDict()
_ENGINES_LOCK = Lock()
_MAX_ENGINES = 8


def _create_engine(url: str, busy_seconds: float) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": busy_seconds})
        event.listen(engine, "connect", partial(_sqlite_pragmas, busy_seconds * 1000))
        return engine
    return create_engine(url, pool_pre_ping=True)


def _engine(url: str, busy_seconds: float) -> Engine:
    key = (url, busy_seconds if url.startswith("sqlite") else 0.0)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is not None:
            _ENGINES.move_to_end(key)
            return engine
        engine = _ENGINES[key] = _create_engine(url, busy_seconds)
        while len(_ENGINES) > _MAX_ENGINES:
            # Connections still checked out keep working and are closed when they are returned.
            _ENGINES.popitem(last=False)[1].dispose()
        return engine


def dispose_engine(url: str) -> None:
    """Close the pooled connections to `url` and forget its engine (before dropping that database, say)."""
    with _ENGINES_LOCK:
        engines = [_ENGINES.pop(key) for key in [key for key in _ENGINES if key[0] == url]]
    for engine in engines:
        engine.dispose()


def get_engine(settings: Settings) -> Engine:
    return _engine(settings.database_url, settings.sqlite_busy_timeout_seconds)


@contextmanager
def session_scope(settings: Settings) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    session = sessionmaker(get_engine(settings), expire_on_commit=False)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(settings: Settings):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", settings.database_url.replace("%", "%%"))
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the state DB to `revision` (idempotent)."""
    from alembic import command

    settings.var_dir.mkdir(parents=True, exist_ok=True)
    with get_engine(settings).begin() as connection:
        config = alembic_config(settings)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def downgrade(settings: Settings, revision: str) -> None:
    """Take the state DB back to `revision` ("base": no tables but Alembic's own)."""
    from alembic import command

    with get_engine(settings).begin() as connection:
        config = alembic_config(settings)
        config.attributes["connection"] = connection
        command.downgrade(config, revision)
