"""Retention (`flankwatch.retention`): expired articles leave the state DB and the archive with every reference
to them, their stories are recounted and re-sent, empty old stories go with their alerts, and nothing that is
still inside its retention is touched. The SQLite archive's delete keeps the ANN consistent; the ES backend's
delete runs against a live cluster when ELASTICSEARCH_URL is set. Also: `flankwatch maintenance` and the DAG
`flankwatch_maintenance` (`airflow dags test` on a fresh AIRFLOW_HOME, in a subprocess, as test_dag_digest)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest
from alerts_support import T0, add_articles, add_story
from sqlalchemy import select

import archive.sqlite as sqlite_archive
from archive import ann
from archive.backends import open_archive
from archive.base import ArticleDoc, SearchQuery
from archive.index import index
from archive.sqlite import SQLiteArchive
from core.db import session_scope
from core.ids import stable_id
from core.models import Alert, Article, IndexFailure, SpikeEpisode, Story, StoryEvent
from core.settings import Settings
from flankwatch.retention import apply_retention, maintenance_stage

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAGS = PROJECT_ROOT / "dags"
AIRFLOW = Path(sys.executable).with_name("airflow")
NOW = T0 + timedelta(days=100)
DAY = timedelta(days=1)

# the state tests run on both state DBs (PostgreSQL through scripts/with-postgres.sh)
BOTH = pytest.mark.parametrize(
    "state_db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
)


def alert(story_id: str | None, kind: str, created: datetime, status: str = "sent", *,
          thread_key: str | None = "", **extra: str) -> Alert:
    key = story_id if thread_key == "" else thread_key
    return Alert(id=stable_id("alert", kind, story_id or "", str(created), str(key)), kind=kind, story_id=story_id,
                 topic="t", route="default", channel="C1", payload={"text": kind, "blocks": []}, status=status,
                 thread_key=key, created_at=created, **extra)


def build(settings: Settings) -> dict[str, list[str]]:
    """Stories across the retention edges (articles kept 30 days, stories and alerts 60), indexed."""
    old, recent = NOW - 40 * DAY, NOW - 5 * DAY
    ids: dict[str, list[str]] = {}
    with session_scope(settings) as session:
        # "mixed": two expired members (the representative among them) and two kept ones, one a copy
        mixed = add_story(session, "mixed", [{"source": "LRT", "published_at": old, "enriched_at": old},
                                             {"source": "BNS", "published_at": old, "enriched_at": old, "language": "lt"}])
        add_articles(session, mixed, [{"source": "Delfi", "published_at": recent, "enriched_at": recent},
                                      {"source": "ERR", "published_at": recent, "enriched_at": recent}])
        members = list(session.scalars(select(Article).where(Article.story_id == "mixed")
                                       .order_by(Article.published_at, Article.id)))
        expired = [a.id for a in members if a.published_at == old]
        kept = [a.id for a in members if a.published_at == recent]
        mixed.representative_article_id = expired[0]
        session.get(Article, kept[1]).syndicated_from = expired[1]  # a copy of an expired article
        session.add(StoryEvent(id="ev-mixed", story_id="mixed", kind="development", at=old, article_id=expired[0]))
        session.add(IndexFailure(kind="article", doc_id=expired[1], error="boom"))
        # "ancient": every member expired, last seen 70 days ago (beyond the story retention): it goes
        ancient_at = NOW - 70 * DAY
        add_story(session, "ancient", [{"source": "LRT", "published_at": ancient_at, "enriched_at": ancient_at}])
        session.get(Story, "ancient").last_seen = ancient_at
        session.add(StoryEvent(id="ev-ancient", story_id="ancient", kind="born", at=ancient_at))
        # "absorbed" was merged into "ancient": member-less, it goes with it
        session.add(Story(id="absorbed", topic="t", headline="absorbed", first_seen=ancient_at, last_seen=ancient_at,
                          centroid=b"\0" * 16, merged_into="ancient", created_at=ancient_at, updated_at=ancient_at))
        # "emptied": every member expired, but last seen 45 days ago (within the story retention): kept, empty
        emptied_at = NOW - 45 * DAY
        add_story(session, "emptied", [{"source": "BNS", "published_at": emptied_at, "enriched_at": emptied_at}])
        session.get(Story, "emptied").last_seen = emptied_at
        parent = alert("ancient", "new_story", ancient_at)
        reply = alert("ancient", "story_update", ancient_at + DAY, parent_id=parent.id)
        emptied_alert = alert("emptied", "new_story", emptied_at)
        old_spike = alert(None, "spike", NOW - 90 * DAY, thread_key="spike:t")
        spike_pending = alert(None, "spike", NOW - 90 * DAY, status="pending", thread_key="spike:pending")
        old_digest = alert(None, "digest", NOW - 80 * DAY, thread_key=None)
        held = alert(None, "coverage", NOW - 10 * DAY, status="digested", thread_key=None, digest_id=old_digest.id)
        session.add_all([parent, reply, emptied_alert, old_spike, spike_pending, old_digest, held])
        session.add(SpikeEpisode(id="ep1", key="topic:t", started_hour=NOW - 90 * DAY, last_hour=NOW - 90 * DAY,
                                 alert_id=old_spike.id))
        ids = {"expired": expired, "kept": kept,
               "alerts_gone": [parent.id, reply.id, old_spike.id],
               "alerts_kept": [emptied_alert.id, spike_pending.id, old_digest.id, held.id]}
        ids["ancient_article"] = [a.id for a in session.scalars(select(Article).where(Article.story_id == "ancient"))]
        ids["emptied_article"] = [a.id for a in session.scalars(select(Article).where(Article.story_id == "emptied"))]
    assert index(settings).failed == {}
    return ids


def retained(settings: Settings, **days: float) -> Settings:
    return settings.model_copy(update={f"retention_{k}_days": v for k, v in days.items()})


@BOTH
def test_retention_off_deletes_nothing(settings: Settings) -> None:
    build(settings)
    before = _rows(settings)
    summary = maintenance_stage(settings, now=NOW)
    assert summary["enabled"] is False and summary["articles_deleted"] == 0
    assert _rows(settings) == before


def _rows(settings: Settings) -> dict[str, list[str]]:
    with session_scope(settings) as session:
        return {model.__tablename__: sorted(map(str, session.scalars(select(model.id))))
                for model in (Article, Story, StoryEvent, Alert)}


@BOTH
def test_expired_articles_stories_and_alerts_go_and_nothing_dangles(settings: Settings) -> None:
    ids = build(settings)
    settings = retained(settings, article=30, story=60)
    summary = apply_retention(settings, now=NOW)
    gone_articles = ids["expired"] + ids["ancient_article"] + ids["emptied_article"]
    assert summary.articles_deleted == summary.archive_articles_deleted == len(gone_articles) == 4
    assert (summary.stories_deleted, summary.archive_stories_deleted) == (2, 1)  # "absorbed" was never indexed
    assert summary.alerts_deleted == 3

    with session_scope(settings) as session:
        assert sorted(session.scalars(select(Article.id))) == sorted(ids["kept"])
        assert sorted(session.scalars(select(Story.id))) == ["emptied", "mixed"]
        mixed = session.get(Story, "mixed")
        assert (mixed.article_count, mixed.sources, mixed.source_count) == (2, {"Delfi": 1, "ERR": 1}, 2)
        assert mixed.language_counts == {"en": 2} and mixed.copy_sources == {}
        assert mixed.representative_article_id in ids["kept"]
        assert mixed.indexed_at != mixed.updated_at  # pending: the archive gets the recounted story
        emptied = session.get(Story, "emptied")
        assert (emptied.article_count, emptied.sources, emptied.representative_article_id) == (0, {}, None)
        assert session.get(Article, ids["kept"][1]).syndicated_from is None
        assert session.get(StoryEvent, "ev-mixed").article_id is None
        assert session.get(StoryEvent, "ev-ancient") is None
        assert session.scalars(select(IndexFailure)).all() == []
        assert sorted(session.scalars(select(Alert.id))) == sorted(ids["alerts_kept"])
        assert session.get(SpikeEpisode, "ep1") is None
        # no foreign key or membership points at a missing row
        story_ids = set(session.scalars(select(Story.id)))
        assert set(session.scalars(select(Article.story_id).where(Article.story_id.is_not(None)))) <= story_ids
        assert set(session.scalars(select(Alert.story_id).where(Alert.story_id.is_not(None)))) <= story_ids
        alert_ids = set(session.scalars(select(Alert.id)))
        assert set(session.scalars(select(Alert.parent_id).where(Alert.parent_id.is_not(None)))) <= alert_ids
        assert set(session.scalars(select(Alert.digest_id).where(Alert.digest_id.is_not(None)))) <= alert_ids

    with open_archive(settings) as archive:
        assert all(archive.get_article(i) is None for i in gone_articles)
        assert all(archive.get_article(i) is not None for i in ids["kept"])
        assert archive.get_story("ancient") is None
        assert archive.search(SearchQuery(per_page=50)).total == 2
    assert index(settings).stories_indexed == 2  # the recounted ones go out again
    with open_archive(settings) as archive:
        assert archive.get_story("mixed").article_count == 2

    again = apply_retention(settings, now=NOW)  # idempotent
    assert (again.articles_deleted, again.stories_deleted, again.alerts_deleted) == (0, 0, 0)


@BOTH
def test_articles_only_keeps_every_story_and_alert(settings: Settings) -> None:
    ids = build(settings)
    summary = apply_retention(retained(settings, article=30), now=NOW)
    assert summary.articles_deleted == 4 and summary.stories_deleted == 0 and summary.alerts_deleted == 0
    with session_scope(settings) as session:
        assert sorted(session.scalars(select(Story.id))) == ["absorbed", "ancient", "emptied", "mixed"]
        assert len(session.scalars(select(Alert.id)).all()) == len(ids["alerts_gone"] + ids["alerts_kept"])


@BOTH
def test_an_unreachable_archive_leaves_the_state_untouched(settings: Settings) -> None:
    build(settings)
    before = _rows(settings)
    broken = retained(settings, article=30, story=60).model_copy(
        update={"archive_backend": "elasticsearch", "elasticsearch_url": "http://127.0.0.1:9",
                "elasticsearch_max_retries": 0, "elasticsearch_timeout": 1.0})
    from archive.base import ArchiveUnavailable

    with pytest.raises(ArchiveUnavailable):
        apply_retention(broken, now=NOW)
    assert _rows(settings) == before


@BOTH
def test_flankwatch_maintenance_command(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from core.settings import get_settings
    from flankwatch.cli import app

    build(settings)
    now_days = (datetime.now(timezone.utc) - (NOW - 30 * DAY)).total_seconds() / 86400  # the same cutoff today
    monkeypatch.setenv("FLANKWATCH_VAR_DIR", str(settings.var_dir))
    monkeypatch.setenv("FLANKWATCH_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("FLANKWATCH_FEEDS_FILE", str(settings.feeds_file))
    monkeypatch.setenv("FLANKWATCH_RETENTION_ARTICLE_DAYS", str(now_days))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["maintenance"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "articles_deleted=4" in result.output


# --- the archive backends' delete ------------------------------------------------------------------

DIM = 32


def _docs(n: int, seed: int = 7) -> list[ArticleDoc]:
    rng = np.random.default_rng(seed)
    matrix = rng.standard_normal((n, DIM)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return [ArticleDoc(id=f"d{i:05d}", url=f"https://example.org/{i}", title=f"brigade report {i}", summary="",
                       content="", source="LRT", language=("en", "lt")[i % 2], published_at=T0 + timedelta(hours=i),
                       embedding=matrix[i], embedding_model="m") for i in range(n)]


@pytest.fixture
def small_ann(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ann, "ANN_MIN", 300)
    monkeypatch.setattr(ann, "DELTAS_MAX", 3)
    monkeypatch.setattr(ann, "SEGMENT_MAX", 400)
    monkeypatch.setattr(sqlite_archive, "EXACT_MAX", 50)


def _exact(docs: list[ArticleDoc], query: np.ndarray, k: int) -> list[str]:
    matrix = np.stack([d.embedding for d in docs])
    return [docs[i].id for i in np.argsort(-(matrix @ query))[:k]]


@pytest.mark.usefixtures("small_ann")
def test_sqlite_delete_keeps_fts_vectors_and_the_ann_consistent(tmp_path: Path) -> None:
    path = tmp_path / "archive.db"
    docs = _docs(1000)
    with SQLiteArchive(path) as archive:
        archive.ensure_ready()
        for start in range(0, len(docs), 100):
            assert archive.index_articles(docs[start : start + 100]).failed == {}
        assert ann.state(archive.db, "m") is not None
        gone = {d.id for d in docs[:300]}
        assert archive.delete_articles(sorted(gone) + ["missing"]) == 300
        assert archive.delete_articles(sorted(gone)) == 0  # idempotent
        live = [d for d in docs if d.id not in gone]
        assert archive.count()["articles"] == 700
        assert archive.search(SearchQuery(text="brigade", per_page=200)).total == 700
        assert archive.db.execute("SELECT count(*) FROM articles_fts").fetchone()[0] == 700
        assert archive.db.execute("SELECT count(*) FROM article_topics WHERE seq NOT IN "
                                  "(SELECT seq FROM articles)").fetchone()[0] == 0
        for query in [d.embedding for d in docs[:20]]:  # queries near deleted vectors: the ANN path
            hits = archive.nearest(query, k=10, model="m")
            assert not {h.id for h in hits} & gone
            assert len(set(h.id for h in hits) & set(_exact(live, query, 10))) >= 9
        # garbage: 1000 held for 700 live is under 1.5x; deleting down to 400 live rebuilds the index
        assert archive.db.execute("SELECT sum(vectors) FROM ann_segments").fetchone()[0] == 1000
        assert archive.delete_articles([d.id for d in docs[300:600]]) == 300
        assert archive.db.execute("SELECT sum(vectors) FROM ann_segments").fetchone()[0] == 400
        files = {p.name for p in tmp_path.glob("archive.db.ann.*.usearch")}
        assert files == {row[0] for row in archive.db.execute("SELECT file FROM ann_segments")}
        # below ANN_MIN the index goes (exact search takes over) and its files with it
        assert archive.delete_articles([d.id for d in docs[600:800]]) == 200
        assert ann.state(archive.db, "m") is None
        assert list(tmp_path.glob("archive.db.ann.*.usearch")) == []
        rest = docs[800:]
        assert [h.id for h in archive.nearest(rest[0].embedding, k=5, model="m")] == _exact(rest, rest[0].embedding, 5)
    with SQLiteArchive(path) as reopened:  # another process sees the same
        reopened.ensure_ready()
        assert reopened.count()["articles"] == 200


@pytest.mark.skipif(not os.environ.get("ELASTICSEARCH_URL"), reason="needs a live cluster (ELASTICSEARCH_URL)")
def test_elasticsearch_delete_articles(tmp_path: Path) -> None:
    from archive.elastic import ElasticsearchArchive

    archive = ElasticsearchArchive(os.environ["ELASTICSEARCH_URL"], prefix=f"fwtest-{uuid4().hex[:8]}", vector_dims=DIM)
    try:
        archive.ensure_ready()
        docs = _docs(50)
        assert archive.index_articles(docs).failed == {}
        archive.refresh()
        assert archive.delete_articles([d.id for d in docs[:20]] + ["missing"]) == 20
        archive.refresh()
        assert archive.delete_articles([d.id for d in docs[:20]]) == 0
        assert archive.count()["articles"] == 30
        assert archive.get_article(docs[0].id) is None
        hits = archive.nearest(docs[0].embedding, k=10, model="m")
        assert not {h.id for h in hits} & {d.id for d in docs[:20]}
    finally:
        archive.drop_all()
        archive.close()


# --- the DAG ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    home = tmp_path_factory.mktemp("airflow-home-maintenance")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLANKWATCH_", "AIRFLOW"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    subprocess.run([str(AIRFLOW), "db", "migrate"], check=True, capture_output=True, env=env, timeout=300)
    return env


@pytest.mark.slow
def test_airflow_dags_test_flankwatch_maintenance(airflow_env: dict[str, str], settings: Settings,
                                                  tmp_path: Path) -> None:
    build(settings)
    probe = ("import json\nfrom airflow.dag_processing.dagbag import DagBag\n"
             f"bag = DagBag(dag_folder={str(DAGS / 'flankwatch_maintenance.py')!r})\n"
             "dag = bag.dags['flankwatch_maintenance']\n"
             "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},"
             " 'catchup': dag.catchup, 'max_active_runs': dag.max_active_runs,"
             " 'tasks': [t.task_id for t in dag.topological_sort()], 'schedule': dag.timetable.expression}))\n")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                         env=airflow_env, timeout=300)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "errors": {}, "catchup": False, "max_active_runs": 1, "tasks": ["retention"], "schedule": "30 3 * * *"}
    days = (datetime.now(timezone.utc) - (NOW - 30 * DAY)).total_seconds() / 86400
    env = {**airflow_env, "FLANKWATCH_VAR_DIR": str(settings.var_dir), "FLANKWATCH_DATABASE_URL": settings.database_url,
           "FLANKWATCH_FEEDS_FILE": str(settings.feeds_file), "FLANKWATCH_RETENTION_ARTICLE_DAYS": str(days)}
    done = subprocess.run([str(AIRFLOW), "dags", "test", "flankwatch_maintenance"], check=False, capture_output=True,
                          text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with session_scope(settings) as session:
        assert len(session.scalars(select(Article.id)).all()) == 2
