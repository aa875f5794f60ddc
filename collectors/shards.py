"""Collection in shards: the due feeds split by host into `collect_shards` shards, each polled by one worker
(an Airflow mapped task, `dags/flankwatch_pipeline.py`; `flankwatch run --once` polls one shard of one).

A host's feeds are always in the same shard (`shard_of`: a stable hash of the politeness key), so the
per-host limits of `collectors.politeness`, which hold within one process, still hold with shards. A
worker claims the due feeds of its shard (`core.claims`: on PostgreSQL `FOR UPDATE SKIP LOCKED`, on SQLite
the single-writer rule, with a lease) before it polls them and releases them once their outcomes are
written: a feed is polled by one worker at a time even when two runs overlap (a retried task whose first
attempt still runs, the CLI beside Airflow); a worker that dies holds its feeds until its lease ends, then
the next run takes them over. Claiming re-checks that a feed is still due, so a feed another worker has
just polled is left alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from collectors.collect import CollectSummary, collect, due, due_feeds, sync_config
from collectors.politeness import host_key
from core.claims import CHUNK, claim, lease, release
from core.db import session_scope
from core.models import Feed
from core.settings import Settings

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Shard:
    """Shard `shard` of `shards` (what a mapped task gets: `to_dict`)."""

    shard: int = 0
    shards: int = 1

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def shard_of(url: str, shards: int) -> int:
    """The shard of a feed's URL: by host name (any port, as the politeness limits count), stable across
    processes and runs."""
    digest = hashlib.blake2b(host_key(url).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % max(1, shards)


def plan_shards(settings: Settings, *, now: datetime | None = None, origin: str | None = None,
                shards: int | None = None) -> list[Shard]:
    """Sync the feeds file, then the shards that have due feeds (none: nothing to poll)."""
    now = now or datetime.now(UTC)
    count = max(1, shards or settings.collect_shards)
    sync_config(settings, origin)
    with session_scope(settings) as session:
        due = due_feeds(session, now, origin)
    return [Shard(index, count) for index in sorted({shard_of(feed.url, count) for feed in due})]


def claim_shard(settings: Settings, shard: Shard, *, owner: str, now: datetime | None = None,
                origin: str | None = None, at: datetime | None = None) -> list[int]:
    """Claim for `owner` the due feeds of `shard` that no other worker holds; their ids."""
    now = now or datetime.now(UTC)
    with session_scope(settings) as session:
        mine = [feed.id for feed in due_feeds(session, now, origin) if shard_of(feed.url, shard.shards) == shard.shard]
    claimed: list[int] = []
    for start in range(0, len(mine), CHUNK):
        chunk = mine[start : start + CHUNK]
        claimed += claim(settings, Feed, [Feed.id.in_(chunk), *due(now)], owner=owner, lease=lease(settings), at=at)
    return claimed


def collect_shard(
    settings: Settings,
    *,
    run_id: str,
    shard: Shard = Shard(),
    now: datetime | None = None,
    progress: Progress | None = None,
    origin: str | None = None,
    owner: str | None = None,
) -> CollectSummary:
    """Claim the due feeds of `shard`, poll them (`collectors.collect.collect`), release them. The feeds file
    is not synced here (`plan_shards`, through `collectors.collect.sync_config`, does it once per run).
    `owner` (default: the run and the shard) names the claim: a retry of the same shard in the same run takes
    back its own feeds."""
    now = now or datetime.now(UTC)
    owner = owner or f"{run_id}/collect-{shard.shard}-of-{shard.shards}"
    claimed = claim_shard(settings, shard, owner=owner, now=now, origin=origin)
    try:
        if not claimed:
            if progress:
                progress(0, 0)
            return CollectSummary(run_id=run_id)
        return collect(settings, run_id=run_id, now=now, progress=progress, origin=origin, feed_ids=claimed)
    finally:
        if claimed:
            release(settings, Feed, owner=owner, ids=claimed)
