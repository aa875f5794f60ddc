"""Claims (core.claims): disjoint under concurrency (processes, on SQLite and PostgreSQL), a lease that
expires so a dead worker's work is taken over, release, and SQLite's single-writer rule."""

from __future__ import annotations

import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from core.claims import claim, release
from core.db import session_scope, upgrade
from core.models import Feed
from core.settings import Settings
from fanout_support import BOTH, database, finish, release_together, start, worker_env

LEASE = timedelta(minutes=10)
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(params=BOTH)
def claims_db(request, tmp_path):
    with database(request.param, tmp_path) as url:
        settings = Settings(var_dir=tmp_path / "var", database_url=url, feeds_file=tmp_path / "none.yaml")
        upgrade(settings)
        with session_scope(settings) as session:
            session.add_all(Feed(url=f"https://outlet{i}.example/feed.xml", name=f"outlet {i}") for i in range(40))
        yield settings


def _ids(settings: Settings) -> list[int]:
    with session_scope(settings) as session:
        return list(session.scalars(select(Feed.id).order_by(Feed.id)))


def test_two_claims_take_disjoint_rows_and_a_released_row_is_free_again(claims_db):
    every = _ids(claims_db)
    first = claim(claims_db, Feed, [], owner="a", lease=LEASE, limit=15, order_by=(Feed.id,), at=T0)
    second = claim(claims_db, Feed, [], owner="b", lease=LEASE, order_by=(Feed.id,), at=T0)
    assert first == every[:15] and second == every[15:]
    assert claim(claims_db, Feed, [], owner="c", lease=LEASE, at=T0) == []
    # an owner takes back its own rows (a retried task of the same run and shard)
    assert sorted(claim(claims_db, Feed, [Feed.id.in_(first)], owner="a", lease=LEASE, at=T0)) == first
    assert release(claims_db, Feed, owner="a", ids=first[:5]) == 5
    assert sorted(claim(claims_db, Feed, [], owner="c", lease=LEASE, at=T0)) == first[:5]
    assert release(claims_db, Feed, owner="b") == len(second)
    with session_scope(claims_db) as session:
        held = dict(session.execute(select(Feed.id, Feed.claimed_by)).all())
    assert {held[i] for i in second} == {None}


def test_a_dead_workers_claim_expires_and_is_taken_over(claims_db):
    dead = claim(claims_db, Feed, [], owner="dead", lease=LEASE, limit=10, order_by=(Feed.id,), at=T0)
    assert len(dead) == 10
    # within the lease: nobody else takes them
    during = claim(claims_db, Feed, [Feed.id.in_(dead)], owner="next", lease=LEASE, at=T0 + LEASE - timedelta(seconds=1))
    assert during == []
    after = claim(claims_db, Feed, [Feed.id.in_(dead)], owner="next", lease=LEASE, at=T0 + LEASE + timedelta(seconds=1))
    assert sorted(after) == dead
    with session_scope(claims_db) as session:
        rows = session.execute(select(Feed.claimed_by, Feed.claimed_until).where(Feed.id.in_(dead))).all()
    assert {row.claimed_by for row in rows} == {"next"}
    assert {row.claimed_until for row in rows} == {T0 + LEASE + timedelta(seconds=1) + LEASE}
    # the dead worker's release (it came back) gives back nothing that is no longer its own
    assert release(claims_db, Feed, owner="dead") == 0


CLAIMER = """
import json, sys, time
from datetime import timedelta
from pathlib import Path
from sqlalchemy import or_
from core.claims import claim
from core.models import Feed
from core.settings import get_settings
settings, owner, taken = get_settings(), sys.argv[1], []
others = or_(Feed.claimed_by.is_(None), Feed.claimed_by != owner)  # not what this worker took already
barrier = Path(sys.argv[2])
(barrier / owner.replace("/", "_")).touch()  # ready: imported and connected
while not (barrier / "go").exists():
    time.sleep(0.005)
while True:
    got = claim(settings, Feed, [others], owner=owner, lease=timedelta(minutes=5), limit=3, order_by=(Feed.id,))
    if not got:
        break
    taken += got
    time.sleep(0.02)  # the work on them, while the others claim
print(json.dumps(taken))
"""


def test_concurrent_claiming_processes_never_share_a_row(claims_db, tmp_path):
    """Four processes claim three rows at a time, all at once, until nothing is left: every row is taken by
    exactly one of them (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: BEGIN IMMEDIATE)."""
    env = worker_env(claims_db.database_url, tmp_path)
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    workers = [start(CLAIMER, env, f"worker-{n}", str(barrier)) for n in range(4)]
    release_together(barrier, workers)
    taken = [finish(worker, timeout=60) for worker in workers]
    flat = [feed_id for ids in taken for feed_id in ids]
    assert sorted(flat) == _ids(claims_db), "a row was claimed twice or not at all"
    assert sum(1 for ids in taken if ids) >= 2, "the claims did not overlap in time"


def test_sqlite_claim_waits_for_the_writer_and_sees_its_claims(tmp_path):
    """The single-writer rule: a claim starts with the write lock (BEGIN IMMEDIATE), so while another
    connection writes claims it waits, then reads what that writer committed; it never claims from a
    snapshot taken before."""
    settings = Settings(var_dir=tmp_path / "var", feeds_file=tmp_path / "none.yaml")
    upgrade(settings)
    with session_scope(settings) as session:
        session.add_all(Feed(url=f"https://outlet{i}.example/feed.xml", name=f"outlet {i}") for i in range(6))
    every = _ids(settings)
    other = sqlite3.connect(settings.database_url.split("///", 1)[1], isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE feeds SET claimed_by = 'other', claimed_until = '2999-01-01 00:00:00.000000' "
                  "WHERE id <= ?", (every[2],))
    result: dict[str, object] = {}

    def claimer() -> None:
        started = time.monotonic()
        result["ids"] = claim(settings, Feed, [], owner="mine", lease=LEASE, order_by=(Feed.id,))
        result["waited"] = time.monotonic() - started

    thread = threading.Thread(target=claimer)
    thread.start()
    time.sleep(1.0)
    assert "ids" not in result, "the claim did not wait for the other writer"
    other.execute("COMMIT")
    thread.join(timeout=30)
    other.close()
    assert result["ids"] == every[3:]
    assert result["waited"] >= 0.9
