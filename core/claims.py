"""Claims: a row (a feed, an article) is worked on by one worker at a time, across processes and machines.

A claim is a lease written on the row itself (`claimed_by`, `claimed_until`): a worker takes rows that are
free (never claimed, released, its lease expired, or already its own) and writes its name and the end of
its lease on them in one transaction; when it is done it releases them. A worker that dies keeps its rows
only until the lease ends; then any other worker takes them over.

What makes two concurrent claims disjoint:

- PostgreSQL: `SELECT ... FOR UPDATE SKIP LOCKED` then the UPDATE, in one transaction. Rows another claim is
  writing are skipped, not waited for; a row it has committed meanwhile is re-checked against the WHERE
  clause (read committed), so its new lease excludes it.
- SQLite: one writer at a time. The claim's transaction starts with `BEGIN IMMEDIATE`, which takes the
  database's write lock before the SELECT, so the second claim reads only after the first committed.

Leases are wall-clock time (a process being alive), never the pipeline's simulated clock (`now` of a
stage); `at` is there for tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, or_, select, update

from core.db import get_engine
from core.settings import Settings

# rows per UPDATE ... WHERE id IN (...): well below SQLite's and PostgreSQL's limits on bound parameters
CHUNK = 1000


def lease(settings: Settings) -> timedelta:
    """How long a claim holds (`claim_lease_minutes`, at least 6 seconds)."""
    return timedelta(minutes=max(settings.claim_lease_minutes, 0.1))


def _free(model: Any, owner: str, at: datetime) -> ColumnElement[bool]:
    return or_(model.claimed_until.is_(None), model.claimed_until < at, model.claimed_by == owner)


def _begin(connection: Connection) -> None:
    """Start the claim's transaction: on SQLite with the write lock taken at once (the single-writer rule)."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def claim(
    settings: Settings,
    model: Any,
    where: Sequence[ColumnElement[bool]],
    *,
    owner: str,
    lease: timedelta,
    limit: int | None = None,
    order_by: Sequence[Any] = (),
    at: datetime | None = None,
) -> list[Any]:
    """Claim for `owner` the rows of `model` (a mapped class with `id`, `claimed_by`, `claimed_until`) that
    match `where` and are free, at most `limit` in `order_by` order, for `lease`. Returns their ids; rows
    another worker holds are left out, never waited for."""
    at = at or datetime.now(UTC)
    query = select(model.id).where(*where, _free(model, owner, at)).order_by(*order_by)
    if limit is not None:
        query = query.limit(limit)
    with get_engine(settings).connect() as connection:
        _begin(connection)
        if connection.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True, of=model.__table__)
        ids = list(connection.scalars(query))
        for start in range(0, len(ids), CHUNK):
            connection.execute(
                update(model).where(model.id.in_(ids[start : start + CHUNK]))
                .values(claimed_by=owner, claimed_until=at + lease)
            )
        connection.commit()
    return ids


def release(settings: Settings, model: Any, *, owner: str, ids: Iterable[Any] | None = None) -> int:
    """Give back what `owner` holds (only `ids` of it, when given). Returns the rows released."""
    released = 0
    with get_engine(settings).connect() as connection:
        _begin(connection)
        held = model.claimed_by == owner
        if ids is None:
            released = connection.execute(update(model).where(held).values(claimed_by=None, claimed_until=None)).rowcount
        else:
            chosen = list(ids)
            for start in range(0, len(chosen), CHUNK):
                released += connection.execute(
                    update(model).where(held, model.id.in_(chosen[start : start + CHUNK]))
                    .values(claimed_by=None, claimed_until=None)
                ).rowcount
        connection.commit()
    return released
