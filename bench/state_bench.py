"""Does a stage's per-article cost grow with the state DB? `python bench/state_bench.py [--sizes 10000,100000,1000000]
[--batch 200] [--rounds 3] [--database-url postgresql+psycopg://...] [--work-dir DIR]`.

For each size N a fresh state DB (SQLite in a temporary folder, or with `--database-url` a new database on that
PostgreSQL server, dropped afterwards; under `bash scripts/with-postgres.sh` the URL may be given as
`--database-url env`, read from FLANKWATCH_TEST_POSTGRES_URL) is migrated (`core.db.upgrade`) and filled with
bulk inserts with N synthetic but realistically shaped articles: real WSJ titles and summaries, `--per-day`
articles a day (default 700, so that even 10,000 articles cover the longest window a stage reads, the 14 days of
the spike baseline: the DBs differ in history, not in what a window holds), 500 feeds, about 10 % relevant
articles in stories of 5, two story events per story, one or two sent alerts per story (new story, update), a
fetch record per two articles and the runs they belong to. Everything is enriched and indexed already, so only
the new batch is pending. SQLite is left without ANALYZE (the state DB never runs it); PostgreSQL is analysed
(what autovacuum does).

Then `--rounds` rounds (plus one warm-up round, not counted) of the real stage functions on `--batch` new
articles (real WSJ items, 10 % naming the topic), ten minutes apart:

- collect: `due_feeds` and `write_outcomes` (dedup lookups by URL, GUID and title hash, inserts, the fetch
  records and feed states of 10 feeds) on outcomes built in memory (no HTTP: the poll is not state);
- enrich: `enrichment.enrich.enrich`, with a fixed 32-dimensional hash embedding in place of the model (no model
  is loaded; half the relevant articles come with a stored vector near a recent story, as if embedded ahead by
  an embedding batch, so that they join it, the others start stories);
- index: `archive.index.index` into the SQLite archive (which only ever holds the new batches: the archive's own
  scaling is `bench/archive_bench.py`);
- alert: `alerts.run.alert` (rules, spikes, coverage, the outbox delivered to the console).

Per stage it prints the median over rounds of seconds per article, of the SQL time per article (cursor execute
time, from SQLAlchemy's cursor events) and the statements per round, and the ratio of the largest size to the
smallest; then the statements whose SQL time grew most, and the plan check: every distinct statement the stages
ran at the largest size is EXPLAINed (SQLite `EXPLAIN QUERY PLAN`, PostgreSQL `EXPLAIN`) and those that scan a
big table (`SCAN articles`, `Seq Scan on articles`, ...) are listed. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from sqlalchemy import create_engine, event, insert, make_url, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

from core.db import dispose_engine, get_engine, session_scope, upgrade
from core.ids import article_id, stable_id
from core.models import Alert, Article, Feed, FetchRecord, PipelineRun, Story, StoryEvent
from core.settings import PROJECT_ROOT, Settings
from core.vectors import to_bytes
from enrichment.embeddings import Conventions, Embedder

DATA = PROJECT_ROOT.parent / "shared" / "data"
STAGES = ("collect", "enrich", "index", "alert")
BIG_TABLES = ("articles", "stories", "story_events", "alerts", "fetches", "pipeline_runs")
FEEDS = 500
BATCH_FEEDS = 10  # feeds of the collect batch
DIM = 32
MODEL = "bench-hash-32"
FILL_CHUNK = 5000
START = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # the fill ends here; the rounds follow
TOPIC_WORDS = "German brigade in Lithuania"
POSTGRES_ENV = "FLANKWATCH_TEST_POSTGRES_URL"


class HashEmbedder(Embedder):
    """A fixed embedding: each text's vector is seeded by its hash (the same text, the same vector). It stands
    in for the model so that the bench times the stage's state work, not a transformer."""

    name = MODEL
    dim = DIM
    conventions = Conventions()

    def _vectors(self, texts: list[str], query: bool, batch_size: int) -> Any:
        rows = [np.random.default_rng(int.from_bytes(hashlib.md5(t.encode()).digest()[:8], "little")).normal(size=DIM)
                for t in texts]
        return np.asarray(rows, dtype=np.float32)


_EMBEDDER = HashEmbedder()


def _unit(rng: np.random.Generator) -> np.ndarray:
    vector = rng.normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def _md5(value: str) -> str:
    return hashlib.md5(value.encode()).hexdigest()


def wsj_items(data: Path) -> list[tuple[str, str]]:
    items = json.loads((data / "replay" / "wsj-world-items.json").read_text(encoding="utf-8"))
    return [(x["title"], x.get("description") or "") for x in items if x.get("title")]


# ---------------------------------------------------------------------------------------------------- fill


def _insert(engine: Engine, table: Any, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(table), rows)


def _fill_engine(settings: Settings) -> Engine:
    """The engine of the bulk fill: on SQLite its own connections with a big page cache and no syncing (the
    stages' connections keep the settings of `core.db`), on PostgreSQL the stages' own."""
    if not settings.database_url.startswith("sqlite"):
        return get_engine(settings)
    engine = create_engine(settings.database_url, pool_size=1)  # one connection: its cache lasts the fill

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
        for pragma in ("journal_mode=WAL", "synchronous=OFF", "cache_size=-1000000", "foreign_keys=ON"):
            connection.execute(f"PRAGMA {pragma}")

    return engine


def fill(settings: Settings, size: int, per_day: int, texts: list[tuple[str, str]], topic: str) -> dict[str, Any]:
    """N articles and what goes with them (see the module docstring); returns counts and the recent stories."""
    engine = _fill_engine(settings)
    try:
        return _fill(engine, size, per_day, texts, topic)
    finally:
        if engine is not get_engine(settings):
            engine.dispose()


def _fill(engine: Engine, size: int, per_day: int, texts: list[tuple[str, str]], topic: str) -> dict[str, Any]:
    rng = np.random.default_rng(size)
    started = time.perf_counter()
    step = timedelta(days=1) / per_day
    first = START - step * size

    feeds = [{"id": k + 1, "url": f"https://outlet{k}.example/feed.xml", "name": f"Outlet {k}",
              "language": ("en", "de", "ru", "lt", "lv", "et", "pl")[k % 7], "country": None, "fulltext": False,
              "state_affiliated": k % 50 == 0, "key_outlet": k % 25 == 0, "enabled": True, "origin": "config",
              "etag": f'"{k}"', "last_fetch_at": START - timedelta(minutes=5), "last_success_at": START,
              "last_status": "ok", "consecutive_failures": 0, "items_total": size // FEEDS, "created_at": first,
              "next_fetch_at": START - timedelta(minutes=1) if k < BATCH_FEEDS else START + timedelta(hours=1 + k % 5),
              "interval_seconds": 3600, "schedule_reason": "interval", "health": "ok",
              "last_new_item_at": START, "items_per_day": per_day / FEEDS} for k in range(FEEDS)]
    _insert(engine, Feed.__table__, feeds)

    # stories: every 10th article is relevant, 5 relevant articles in a row make one story
    relevant_count = (size + 9) // 10
    story_count = (relevant_count + 4) // 5
    centroids = rng.normal(size=(story_count, DIM)).astype(np.float32)
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    story_ids = [stable_id("bench-story", str(s)) for s in range(story_count)]

    # stories first (the articles' foreign keys): story s holds the relevant articles 10 * (5s .. 5s + 4)
    story_rows, event_rows, alert_rows = [], [], []
    for s, story_id in enumerate(story_ids):
        indexes = [10 * (5 * s + m) for m in range(5) if 10 * (5 * s + m) < size]
        first_seen, last_seen = first + step * indexes[0], first + step * indexes[-1]
        sources = {f"Outlet {i % FEEDS}": 1 for i in indexes}
        story_rows.append({
            "id": story_id, "topic": topic, "headline": texts[indexes[0] % len(texts)][0],
            "representative_article_id": None, "first_seen": first_seen, "last_seen": last_seen,
            "article_count": len(indexes), "source_count": len(sources), "sources": sources, "copy_sources": {},
            "syndicated_outlets": 0, "language_counts": {"en": len(indexes)}, "terms": ["lithuania", "brigade"],
            "centroid": to_bytes(centroids[s]), "centroid_model": MODEL,
            "born_at": first_seen + (last_seen - first_seen) / 2 if len(indexes) >= 3 else None,
            "merged_into": story_ids[s - 1] if s % 100 == 99 else None, "created_at": first_seen,
            "updated_at": last_seen, "indexed_at": last_seen,
        })
        event_rows.append({"id": stable_id("born", story_id), "story_id": story_id, "kind": "born", "at": first_seen,
                           "article_id": None, "facts": [], "detail": {}, "created_at": first_seen})
        event_rows.append({"id": stable_id("growing", story_id), "story_id": story_id, "kind": "growing",
                           "at": last_seen, "article_id": None, "facts": ["4800"], "detail": {}, "created_at": last_seen})
        opener = stable_id("alert", story_id)
        alert = {"kind": "new_story", "story_id": story_id, "topic": topic, "route": "alerts", "severity": "normal",
                 "channel": "#flankwatch-alerts", "story_article_count": 3, "payload": {"text": "bench"},
                 "detail": {}, "status": "sent", "held_reason": None, "digest_id": None, "thread_key": story_id,
                 "parent_id": None, "broadcast": False, "watch_id": None, "attempts": 1, "last_error": None,
                 "in_doubt": False, "delivery": "console", "remote_id": f"{s}.0001", "remote_channel": "C1",
                 "thread_ts": None, "stale": False, "reactions_up": 0, "reactions_down": 0,
                 "reactions_checked_at": last_seen, "created_at": first_seen, "sent_at": first_seen}
        alert_rows.append({**alert, "id": opener})
        if s % 2 == 0:
            alert_rows.append({**alert, "id": stable_id("update", story_id), "kind": "story_update",
                               "parent_id": opener, "thread_ts": f"{s}.0001", "created_at": last_seen,
                               "sent_at": last_seen})
    for rows, table in ((story_rows, Story.__table__), (event_rows, StoryEvent.__table__),
                        (alert_rows, Alert.__table__)):
        for start in range(0, len(rows), FILL_CHUNK):
            _insert(engine, table, rows[start : start + FILL_CHUNK])

    article_rows: list[dict[str, Any]] = []
    for i in range(size):
        title, summary = texts[i % len(texts)]
        at = first + step * i
        url = f"https://outlet{i % FEEDS}.example/{at:%Y/%m/%d}/article-{i}"
        relevant = i % 10 == 0
        story = (i // 10) // 5 if relevant else None
        vector = centroids[story] + 0.05 * rng.normal(size=DIM).astype(np.float32) if story is not None else _unit(rng)
        article_rows.append({
            "id": article_id(url), "feed_id": i % FEEDS + 1, "source": f"Outlet {i % FEEDS}", "url": url,
            "canonical_url": url, "guid": url, "guid_hash": _md5("guid" + url), "title": title,
            "title_hash": _md5(f"title {i}"), "summary": summary, "content": None,
            "language": feeds[i % FEEDS]["language"], "published_at": at, "fetched_at": at + timedelta(minutes=3),
            "updated_at": at + timedelta(minutes=10), "content_hash": _md5(f"content {i}"), "text_source": "summary",
            "text_length": len(summary), "paywall_suspected": False, "embedding": to_bytes(vector),
            "embedding_model": MODEL, "enriched_at": at + timedelta(minutes=10), "topic": topic,
            "relevance": 0.8 if relevant else 0.1, "relevance_reason": "bench", "relevant": relevant,
            "story_id": story_ids[story] if story is not None else None, "novel_terms": None, "minhash": None,
            "syndicated_from": None, "indexed_at": at + timedelta(minutes=10),
        })
        if len(article_rows) == FILL_CHUNK:
            _insert(engine, Article.__table__, article_rows)
            article_rows = []
    if article_rows:
        _insert(engine, Article.__table__, article_rows)

    # one fetch record per two articles: runs of all feeds, 10 minutes apart
    fetches = size // 2
    runs = max(1, fetches // FEEDS)
    run_rows = [{"id": f"run-{r:07d}", "started_at": first + timedelta(minutes=10 * r),
                 "finished_at": first + timedelta(minutes=10 * r + 1), "status": "ok", "summary": {}}
                for r in range(runs)]
    for start in range(0, len(run_rows), FILL_CHUNK):
        _insert(engine, PipelineRun.__table__, run_rows[start : start + FILL_CHUNK])
    fetch_rows: list[dict[str, Any]] = []
    for j in range(fetches):
        r = j // FEEDS
        fetch_rows.append({"run_id": f"run-{r:07d}", "feed_id": j % FEEDS + 1,
                           "started_at": first + timedelta(minutes=10 * r), "duration_ms": 120, "status": "ok",
                           "http_status": 200, "items_seen": 30, "items_new": 1})
        if len(fetch_rows) == FILL_CHUNK:
            _insert(engine, FetchRecord.__table__, fetch_rows)
            fetch_rows = []
    if fetch_rows:
        _insert(engine, FetchRecord.__table__, fetch_rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("VACUUM ANALYZE")  # what autovacuum does after a bulk load
        else:
            connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")  # the fill's WAL, not the stages' cost
    recent = [(story_ids[s], centroids[s]) for s in range(max(0, story_count - 40), story_count)]
    return {"articles": size, "stories": story_count, "story_events": len(event_rows), "alerts": len(alert_rows),
            "fetches": fetches, "runs": runs, "fill_seconds": round(time.perf_counter() - started, 1),
            "recent": recent}


# ------------------------------------------------------------------------------------------------- rounds


class Recorder:
    """SQL time and statements per stage, from the engine's cursor events."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.seconds: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.by_statement: dict[tuple[str, str], float] = defaultdict(float)
        self.samples: dict[tuple[str, str], Any] = {}  # (stage, statement) -> parameters of one execution

    def before(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        conn.info["bench_started"] = time.perf_counter()

    def after(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if self.stage is None:
            return
        seconds = time.perf_counter() - conn.info.pop("bench_started", time.perf_counter())
        self.seconds[self.stage] += seconds
        self.count[self.stage] += 1
        self.by_statement[(self.stage, statement)] += seconds
        if (self.stage, statement) not in self.samples and not executemany:
            self.samples[(self.stage, statement)] = parameters

    @contextmanager
    def listening(self, engine: Engine) -> Iterator[None]:
        event.listen(engine, "before_cursor_execute", self.before)
        event.listen(engine, "after_cursor_execute", self.after)
        try:
            yield
        finally:
            event.remove(engine, "before_cursor_execute", self.before)
            event.remove(engine, "after_cursor_execute", self.after)


def new_outcomes(round_no: int, size: int, batch: int, texts: list[tuple[str, str]], now: datetime) -> list[Any]:
    """`batch` new entries of the first BATCH_FEEDS feeds, as a poll would hand them to the writer."""
    from collectors.http import FetchResult
    from collectors.normalise import NormalisedArticle
    from collectors.outcome import FeedOutcome

    rng = random.Random(round_no * 1000003 + size)
    per_feed: dict[int, list[NormalisedArticle]] = defaultdict(list)
    for k in range(batch):
        title, summary = rng.choice(texts)
        if k % 10 == 0:
            title = f"{TOPIC_WORDS}: {title}"
        feed = k % BATCH_FEEDS
        url = f"https://outlet{feed}.example/new/{size}/{round_no}/{k}"
        per_feed[feed].append(NormalisedArticle(
            id=article_id(url), url=url, canonical_url=url, guid=url, title=f"{title} ({round_no}.{k})",
            summary=summary, language="en", published_at=now - timedelta(minutes=k % 30),
            content_hash=_md5(f"{url} {title}"), source=f"Outlet {feed}", feed_id=feed + 1, fetched_at=now))
    return [FeedOutcome(articles=articles, items_seen=len(articles), feed_id=feed + 1,
                        fetch=FetchResult(status="ok", url=f"https://outlet{feed}.example/feed.xml", http_status=200,
                                          etag=f'"{round_no}"', duration_ms=100))
            for feed, articles in per_feed.items()]


def _embed_ahead(settings: Settings, ids: list[str], recent: list[tuple[str, np.ndarray]], round_no: int) -> None:
    """Half of the batch's relevant articles come with a vector near a recent story (an embedding batch's)."""
    rng = np.random.default_rng(round_no)
    with session_scope(settings) as session:
        rows = session.execute(
            Article.__table__.select().with_only_columns(Article.id, Article.title).where(Article.id.in_(ids))
        ).all()
        chosen = [row.id for row in rows if row.title.startswith(TOPIC_WORDS)][::2]
        for n, identifier in enumerate(chosen):
            vector = recent[(round_no * 7 + n) % len(recent)][1] + 0.05 * rng.normal(size=DIM).astype(np.float32)
            session.execute(update(Article).where(Article.id == identifier).values(
                embedding=to_bytes(vector / np.linalg.norm(vector)), embedding_model=MODEL))


def run_round(settings: Settings, recorder: Recorder, round_no: int, size: int, batch: int,
              texts: list[tuple[str, str]], recent: list[tuple[str, np.ndarray]]) -> dict[str, float]:
    from alerts.run import alert
    from archive.index import index
    from collectors.batch import write_outcomes
    from collectors.collect import due_feeds
    from enrichment.enrich import enrich

    now = START + timedelta(minutes=10 * (round_no + 1))
    outcomes = new_outcomes(round_no, size, batch, texts, now)
    run_id = f"bench-{round_no}-{uuid.uuid4().hex[:6]}"
    seconds: dict[str, float] = {}

    def timed(stage: str, call: Any) -> Any:
        recorder.stage = stage
        started = time.perf_counter()
        try:
            return call()
        finally:
            seconds[stage] = time.perf_counter() - started
            recorder.stage = None

    def collect() -> Any:
        with session_scope(settings) as session:
            due_feeds(session, now)
        return write_outcomes(settings, run_id, outcomes, now)

    written = timed("collect", collect)
    new_ids = [i for ids in written.new.values() for i in ids]
    assert len(new_ids) == batch, f"collect stored {len(new_ids)} of {batch} new articles"
    _embed_ahead(settings, new_ids, recent, round_no)  # an embedding batch's work, not timed
    summary = timed("enrich", lambda: enrich(settings, now=now))
    assert summary.enriched == batch, summary
    indexed = timed("index", lambda: index(settings))
    assert indexed.articles_indexed >= batch, indexed
    with contextlib.redirect_stdout(io.StringIO()):  # the console sender's panels
        timed("alert", lambda: alert(settings, now=now))
    return seconds


# ------------------------------------------------------------------------------------------------- plans


def explain(engine: Engine, statement: str, parameters: Any) -> list[str]:
    """The plan of `statement` with the parameters of one of its executions ([] for what is not a query)."""
    head = statement.lstrip().split(None, 1)[0].upper()
    if head not in ("SELECT", "UPDATE", "DELETE", "WITH"):
        return []
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
        else:
            plan = [row[0].strip() for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters)]
        connection.rollback()
    return plan


def _partial_indexes() -> set[str]:
    from core.models import Base

    return {index.name for table in Base.metadata.tables.values() for index in table.indexes
            if index.dialect_options["sqlite"].get("where") is not None and index.name}


def full_scans(plan: list[str]) -> list[str]:
    """The steps of a plan that read a whole big table (SQLite `SCAN t`, PostgreSQL `Seq Scan on t`). A scan
    of a partial index reads only the rows of its condition (the pending queue), not the table."""
    partial = _partial_indexes()
    return [step for step in plan
            if any(step.startswith(f"SCAN {table}") or f"Seq Scan on {table} " in step + " " for table in BIG_TABLES)
            and not any(step.endswith(f"USING INDEX {name}") for name in partial)]


# --------------------------------------------------------------------------------------------------- main


def drop_indexes(settings: Settings, names: list[str]) -> None:
    """Drop these indexes after the migrations (`--drop 0008`: those of migration 0008), to measure without them."""
    if names == ["0008"]:
        from importlib import import_module

        names = [name for name, *_ in import_module("core.migrations.versions.0008_state_indexes").INDEXES]
    with get_engine(settings).begin() as connection:
        for name in names:
            connection.exec_driver_sql(f"DROP INDEX {name}")


@contextmanager
def state_database(url: str | None, work: Path, size: int, drop: list[str]) -> Iterator[Settings]:
    """Settings on a fresh, migrated state DB of this size: SQLite in `work`, or a new PostgreSQL database."""
    var = work / f"var-{size}"
    if url is None:
        settings = Settings(var_dir=var, feeds_file=work / "no-feeds.yaml", embedding_model=MODEL, embedding_screen="full")
        upgrade(settings)
        drop_indexes(settings, drop)
        yield settings
        dispose_engine(settings.database_url)
        return
    name = f"flankwatch_state_bench_{size}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = make_url(url).set(database=name).render_as_string(hide_password=False)
    try:
        settings = Settings(var_dir=var, feeds_file=work / "no-feeds.yaml", database_url=database_url,
                            embedding_model=MODEL, embedding_screen="full")
        upgrade(settings)
        drop_indexes(settings, drop)
        yield settings
    finally:
        dispose_engine(database_url)
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure(size: int, args: argparse.Namespace, texts: list[tuple[str, str]], work: Path) -> dict[str, Any]:
    import enrichment.enrich

    enrichment.enrich.get_embedder = lambda model: _EMBEDDER  # the fixed embedding, not a model
    with state_database(args.database_url, work, size, args.drop) as settings:
        topic = settings.topics[0].name if settings.topics else "bench"
        print(f"  filling {size:,} articles ...", file=sys.stderr, flush=True)
        filled = fill(settings, size, args.per_day, texts, topic)
        print(f"  filled in {filled['fill_seconds']} s; {args.rounds} rounds of {args.batch}", file=sys.stderr,
              flush=True)
        engine = get_engine(settings)
        if args.pragma and engine.dialect.name == "sqlite":  # beside core.db's own, on every new connection
            event.listen(engine, "connect", lambda connection, _record: [
                connection.execute(f"PRAGMA {pragma}") for pragma in args.pragma])
            engine.dispose()
        per_round: list[dict[str, dict[str, float]]] = []
        recorder = Recorder()
        with recorder.listening(engine):
            for round_no in range(args.rounds + 1):
                recorder.seconds.clear()
                recorder.count.clear()
                seconds = run_round(settings, recorder, round_no, size, args.batch, texts, filled["recent"])
                if round_no == 0:  # warm-up: caches, the first compile of every statement
                    recorder.by_statement.clear()
                    continue
                per_round.append({stage: {"seconds": seconds[stage], "sql": recorder.seconds[stage],
                                          "statements": recorder.count[stage]} for stage in STAGES})
        plans: dict[str, dict[str, Any]] = {}
        for (stage, statement), parameters in recorder.samples.items():
            try:
                plan = explain(engine, statement, parameters)
            except Exception as exc:  # noqa: BLE001 - a statement that cannot be EXPLAINed alone
                plan = [f"(not explained: {type(exc).__name__}: {str(exc)[:80]})"]
            if plan:
                plans[f"[{stage}] " + " ".join(statement.split())[:300]] = {"stage": stage, "plan": plan,
                                                                             "scans": full_scans(plan)}
        stages = {}
        for stage in STAGES:
            stages[stage] = {
                "ms_per_article": round(1000 * statistics.median(r[stage]["seconds"] for r in per_round) / args.batch, 3),
                "sql_ms_per_article": round(1000 * statistics.median(r[stage]["sql"] for r in per_round) / args.batch, 3),
                "statements": int(statistics.median(r[stage]["statements"] for r in per_round)),
            }
        statements = {f"[{stage}] " + " ".join(k.split())[:300]: v / args.rounds
                      for (stage, k), v in recorder.by_statement.items()}
        filled.pop("recent")
        return {"size": size, "filled": filled, "stages": stages, "statements": statements, "plans": plans}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000", help="articles in the state DB, comma-separated")
    parser.add_argument("--batch", type=int, default=200, help="new articles per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per size (plus one warm-up)")
    parser.add_argument("--per-day", type=int, default=700, help="articles a day in the filled history")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server's maintenance URL (a database per size is created and dropped); "
                             f"`env`: ${POSTGRES_ENV}")
    parser.add_argument("--work-dir", type=Path, default=None, help="where SQLite DBs and archives go")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--drop", default="", help="indexes to drop after migrating, comma-separated "
                        "(`0008`: those of migration 0008): the figures without them")
    parser.add_argument("--pragma", action="append", default=[],
                        help="a PRAGMA for the stages' SQLite connections, e.g. cache_size=-65536 (repeatable)")
    parser.add_argument("--plans", action="store_true", help="print the plan of each statement that grew most")
    args = parser.parse_args(argv)
    if args.database_url == "env":
        args.database_url = os.environ.get(POSTGRES_ENV) or parser.error(f"{POSTGRES_ENV} is not set")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.drop = [name for name in args.drop.split(",") if name]
    texts = wsj_items(args.data)
    backend = "postgresql" if args.database_url else "sqlite"

    results = []
    with tempfile.TemporaryDirectory(prefix="state-bench-", dir=args.work_dir) as tmp:
        for size in sizes:
            print(f"{backend}: {size:,} articles", file=sys.stderr, flush=True)
            results.append(measure(size, args, texts, Path(tmp)))

    smallest, largest = results[0], results[-1]
    print(f"\nstate DB {backend}: ms per article (median of {args.rounds} rounds of {args.batch} new articles); "
          "sql = cursor execute time; n = statements per round")
    header = f"{'stage':<8}" + "".join(f"{r['size']:>24,}" for r in results) + f"{'ratio':>8}{'sql ratio':>10}"
    print(header)
    ratios: dict[str, dict[str, float]] = {}
    for stage in STAGES:
        cells = "".join(
            f"{r['stages'][stage]['ms_per_article']:>9.3f} (sql {r['stages'][stage]['sql_ms_per_article']:.3f}, "
            f"n {r['stages'][stage]['statements']:>3})".rjust(24) for r in results)
        ratio = largest["stages"][stage]["ms_per_article"] / max(smallest["stages"][stage]["ms_per_article"], 1e-9)
        sql_ratio = (largest["stages"][stage]["sql_ms_per_article"]
                     / max(smallest["stages"][stage]["sql_ms_per_article"], 1e-9))
        ratios[stage] = {"ratio": round(ratio, 2), "sql_ratio": round(sql_ratio, 2)}
        print(f"{stage:<8}{cells}{ratio:>8.2f}{sql_ratio:>10.2f}")
    print("fill: " + ", ".join(f"{r['size']:,} in {r['filled']['fill_seconds']} s" for r in results))

    growth = sorted(((largest["statements"].get(k, 0.0) - smallest["statements"].get(k, 0.0), k)
                     for k in largest["statements"]), reverse=True)[:8]
    print(f"\nstatements whose SQL time per round grew most ({smallest['size']:,} -> {largest['size']:,}):")
    for grown, statement in growth:
        print(f"  {1000 * smallest['statements'].get(statement, 0.0):8.1f} -> {1000 * largest['statements'][statement]:8.1f} ms  "
              f"{statement[:240]}")
        if args.plans and statement in largest["plans"]:
            print(f"      plan: {largest['plans'][statement]['plan']}")
    scanning = {k: v for k, v in largest["plans"].items() if v["scans"]}
    print(f"\nplan check at {largest['size']:,}: statements that scan a big table: {len(scanning)}")
    for statement, found in scanning.items():
        print(f"  {statement[:200]}\n      {found['scans']}")

    result = {
        "backend": backend, "dropped": args.drop, "pragmas": args.pragma, "batch": args.batch, "rounds": args.rounds, "per_day": args.per_day,
        "sizes": [r["size"] for r in results],
        "ms_per_article": {stage: [r["stages"][stage]["ms_per_article"] for r in results] for stage in STAGES},
        "sql_ms_per_article": {stage: [r["stages"][stage]["sql_ms_per_article"] for r in results] for stage in STAGES},
        "ratio_largest_smallest": ratios,
        "max_ratio": max(v["ratio"] for v in ratios.values()),
        "fill_seconds": [r["filled"]["fill_seconds"] for r in results],
        "scans_at_largest": len(scanning),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
