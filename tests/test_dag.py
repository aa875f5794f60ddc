"""The Airflow DAG: parses fast with nothing heavy imported, and `dag.test()` runs green end to end on SQLite
(real feeds on 127.0.0.1, the real model, the Slack token taken from an Airflow connection)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.db import session_scope
from core.models import Article, Story
from core.settings import Settings, get_settings
from fakeslack import TOKEN, FakeSlack
from flankwatch.replay_server import ReplayServer
from scenario import ITEMS, write_feeds_file

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAGS = PROJECT_ROOT / "dags"
DAG_FILE = DAGS / "flankwatch_pipeline.py"
AIRFLOW = Path(sys.executable).with_name("airflow")


@pytest.fixture(scope="session")
def airflow_db(tmp_path_factory):
    """A fresh AIRFLOW_HOME with a migrated SQLite metadata DB, set before airflow is first imported."""
    assert "airflow" not in sys.modules, "airflow was imported before AIRFLOW_HOME was set"
    home = tmp_path_factory.mktemp("airflow-home")
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    subprocess.run([str(AIRFLOW), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return home


def test_dag_file_imports_fast_without_heavy_modules(tmp_path):
    probe = (
        "import json, sys, time, runpy\n"
        "t0 = time.perf_counter()\n"
        "import airflow.sdk\n"
        "t1 = time.perf_counter()\n"
        f"runpy.run_path({str(DAG_FILE)!r})\n"
        "t2 = time.perf_counter()\n"
        "print(json.dumps({'airflow': t1 - t0, 'dag': t2 - t1,"
        " 'heavy': sorted(m for m in ('torch', 'sentence_transformers', 'transformers') if m in sys.modules)}))\n"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True, env=env)
    timing = json.loads(out.stdout.strip().splitlines()[-1])
    assert timing["heavy"] == []
    assert timing["dag"] < 2.0, timing


def test_dag_shape(airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    dag = bag.dags["flankwatch_pipeline"]
    assert dag.catchup is False and dag.max_active_runs == 1
    assert [t.task_id for t in dag.topological_sort()] == [
        "plan_collect", "collect", "plan_embed", "embed", "enrich", "index", "alert"]
    mapped = {t.task_id for t in dag.tasks if t.is_mapped}
    assert mapped == {"collect", "embed"}  # fan-out; story assignment (enrich) stays one task
    assert {t.task_id for t in dag.tasks if t.trigger_rule == "all_done"} == {"plan_embed", "enrich", "index", "alert"}
    for task in dag.tasks:
        assert task.retries >= 1 and task.retry_exponential_backoff
    assert dag.timetable.expression == get_settings().schedule == "*/10 * * * *"


@pytest.mark.slow
def test_dag_test_runs_green_end_to_end(airflow_db, tmp_path, monkeypatch, embedder):
    """On a fresh var dir: the tasks migrate the state DB themselves, as on a fresh Airflow worker."""
    from airflow.dag_processing.dagbag import DagBag

    settings = Settings(var_dir=tmp_path / "fresh-var")

    with ReplayServer(ITEMS) as server, FakeSlack() as slack:
        feeds = write_feeds_file(tmp_path / "feeds.yaml", server)
        monkeypatch.setenv("FLANKWATCH_VAR_DIR", str(settings.var_dir))
        monkeypatch.setenv("FLANKWATCH_FEEDS_FILE", str(feeds))
        monkeypatch.setenv("FLANKWATCH_ALLOW_PRIVATE_ADDRESSES", "true")  # the feed server is on 127.0.0.1
        monkeypatch.setenv("FLANKWATCH_SLACK_API_URL", slack.url)
        monkeypatch.setenv("FLANKWATCH_SLACK_CHANNEL", "#flank")
        monkeypatch.setenv("FLANKWATCH_COLLECT_SHARDS", "4")
        monkeypatch.setenv("FLANKWATCH_EMBED_BATCH_ARTICLES", "3")  # 8 articles: three mapped embed tasks
        connections = tmp_path / "connections.json"
        connections.write_text(json.dumps({"flankwatch_slack": {"conn_type": "generic", "password": TOKEN}}))
        get_settings.cache_clear()
        try:
            dag = DagBag(dag_folder=str(DAGS)).dags["flankwatch_pipeline"]
            run = dag.test(conn_file_path=str(connections))
        finally:
            get_settings.cache_clear()

        assert str(run.state) in ("success", "DagRunState.SUCCESS")
        instances = run.get_task_instances()
        states = {(ti.task_id, ti.map_index): str(ti.state) for ti in instances}
        assert all(s in ("success", "TaskInstanceState.SUCCESS") for s in states.values()), states
        maps = Counter(ti.task_id for ti in instances)
        assert maps["embed"] == 3 and maps["enrich"] == 1, maps
        assert maps["collect"] >= 1  # one per shard with due feeds (the feeds share the host 127.0.0.1)
        embedded = [ti.xcom_pull(task_ids="embed", map_indexes=ti.map_index) for ti in instances
                    if ti.task_id == "embed"]
        ids = [article_id for result in embedded for article_id in result["article_ids"]]
        assert len(ids) == len(set(ids)) == len(ITEMS), embedded  # each article embedded by one batch
        with session_scope(settings) as session:
            assert session.scalar(select(func.count()).select_from(Article)) == len(ITEMS)
            assert session.scalar(select(func.count()).select_from(Story)) >= 2
        # The token came from the Airflow connection: the fake Slack server checks it on every call.
        assert slack.messages, "no alert reached Slack"
        assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in slack.requests)
