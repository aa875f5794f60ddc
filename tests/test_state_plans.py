"""The state queries of every stage search indexes, never scan a whole table, on SQLite and PostgreSQL.

A populated state DB (bench/state_bench.py's fill: articles over days, stories, events, sent alerts, fetch
records) gets one round of the real stage functions on new articles (collect's writer, enrich, index, alert),
as the benchmark runs them; every statement they send is EXPLAINed with the parameters it ran with: SQLite's
`EXPLAIN QUERY PLAN` must show no `SCAN` of a big table, PostgreSQL's `EXPLAIN` (with `enable_seqscan` off:
the table is small here, so a sequential scan is what the planner would rightly pick without that) no
`Seq Scan`. A full scan made a stage's cost per article grow with the history kept (see migration 0008).
The PostgreSQL variants run under scripts/with-postgres.sh and are skipped otherwise.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from core.db import get_engine, upgrade
from core.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SIZE = 3000  # articles in the filled history (4 days at 700 a day)

BOTH = pytest.mark.parametrize(
    "state_db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)


def _bench() -> Any:
    name = "state_bench_for_tests"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, PROJECT_ROOT / "bench" / "state_bench.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan of `statement`; on PostgreSQL with sequential scans priced out (an index is used if one can be)."""
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        else:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = [row[0].strip() for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)]
        connection.rollback()
    return plan


@pytest.fixture
def stage_plans(tmp_path: Path, state_db: str | None, shared_data: Path) -> dict[tuple[str, str], list[str]]:
    """(stage, statement) -> plan for every query one round of the stages sent on a populated state DB."""
    bench = _bench()
    database = {"database_url": state_db} if state_db else {}
    settings = Settings(var_dir=tmp_path / "var", feeds_file=tmp_path / "no-feeds.yaml", embedding_model=bench.MODEL,
                        embedding_screen="full", **database)
    upgrade(settings)
    texts = bench.wsj_items(shared_data)
    filled = bench.fill(settings, SIZE, 700, texts, settings.topics[0].name if settings.topics else "bench")
    import enrichment.enrich

    engine = get_engine(settings)
    recorder = bench.Recorder()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(enrichment.enrich, "get_embedder", lambda model: bench.HashEmbedder())
        with recorder.listening(engine):
            for round_no in range(2):  # the second round: stories and alerts of the first exist
                bench.run_round(settings, recorder, round_no, SIZE, 60, texts, filled["recent"])
    plans = {}
    for (stage, statement), parameters in recorder.samples.items():
        if statement.lstrip().split(None, 1)[0].upper() in ("SELECT", "UPDATE", "DELETE", "WITH"):
            plans[(stage, " ".join(statement.split()))] = explain(engine, statement, parameters)
    return plans


@BOTH
def test_no_stage_query_scans_a_big_table(stage_plans: dict[tuple[str, str], list[str]]) -> None:
    bench = _bench()
    assert len(stage_plans) > 30  # the stages' queries were seen: each stage's reads and writes
    assert {stage for stage, _ in stage_plans} == set(bench.STAGES)
    scanning = {key: bench.full_scans(plan) for key, plan in stage_plans.items() if bench.full_scans(plan)}
    assert not scanning, "\n".join(f"[{stage}] {statement[:300]}\n    {steps}"
                                   for (stage, statement), steps in scanning.items())


# A hot query (a fragment of its SQL, the stage that sends it) and the index its plan must name (one of them).
HOT = [
    ("WHERE (articles.indexed_at IS NULL OR articles.indexed_at != articles.updated_at) AND articles.enriched_at",
     "index", "ix_articles_unindexed"),
    ("FROM stories WHERE stories.indexed_at IS NULL OR stories.indexed_at != stories.updated_at",
     "index", "ix_stories_unindexed"),
    ("SELECT min(articles.published_at) AS min_1 FROM articles WHERE articles.relevant", "alert",
     "ix_articles_topic_relevant"),
    ("count(*) AS count_1 FROM articles WHERE articles.relevant", "alert", "ix_articles_topic_relevant"),
    ("coalesce_1 FROM articles WHERE articles.feed_id =", "alert", "ix_articles_feed_fetched"),
    ("FROM story_events WHERE story_events.kind =", "alert", "ix_story_events_at"),
    # the newest story, the active ones: PostgreSQL also reads ix_stories_last_seen backwards (or its range)
    ("SELECT max(stories.last_seen)", "enrich", "ix_stories_active|ix_stories_last_seen"),
    ("SELECT max(stories.last_seen)", "alert", "ix_stories_active|ix_stories_last_seen"),
    ("WHERE alerts.story_id IN (SELECT stories.id", "alert", "ix_stories_active|ix_stories_last_seen"),
    ("FROM alerts WHERE alerts.stale", "alert", "ix_alerts_stale"),
    ("articles.id IN", "collect", "ix_articles_guid"),
    ("articles.id IN", "collect", "ix_articles_title"),
    ("FROM articles WHERE articles.enriched_at IS NULL ORDER BY", "enrich", "ix_articles_pending_enrich"),
    # a batch's articles by their ids, not the pending ones tested against the ids (see enrichment.batches.
    # pending_only: with 970,000 pending, 0.6 s a read)
    ("FROM articles WHERE articles.id IN", "enrich", "sqlite_autoindex_articles_1|articles_pkey"),
]


@BOTH
def test_each_hot_query_searches_its_index(stage_plans: dict[tuple[str, str], list[str]]) -> None:
    problems = []
    for fragment, stage, index in HOT:
        found = {statement: plan for (seen_in, statement), plan in stage_plans.items()
                 if seen_in == stage and fragment in statement}
        if not found:
            problems.append(f"no {stage} statement containing {fragment!r}")
        problems += [f"[{stage}] {statement[:300]}\n    not {index}: {plan}" for statement, plan in found.items()
                     if not any(name in step for step in plan for name in index.split("|"))]
    assert not problems, "\n".join(problems)
