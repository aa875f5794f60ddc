"""The digest DAG, run the way the issue asks: `airflow dags test flankwatch_digest` on a fresh AIRFLOW_HOME
(migrated first), in a subprocess of its own, so that this module never imports airflow (tests/test_dag.py
sets AIRFLOW_HOME for the whole session before airflow's first import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alerts_support import add_story
from sqlalchemy import select

from alerts import outbox
from alerts.digest import digest_id
from alerts.routing import digest_boundaries
from core.db import session_scope, upgrade
from core.ids import stable_id
from core.models import Alert
from core.settings import AlertRoute, Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DAGS = PROJECT_ROOT / "dags"
AIRFLOW = Path(sys.executable).with_name("airflow")
ROUTE = AlertRoute(name="flank", channel="#flank-digest", digest_at="00:00")  # UTC: a boundary every day


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a fresh AIRFLOW_HOME with a migrated metadata DB (for subprocesses only)."""
    home = tmp_path_factory.mktemp("airflow-home-digest")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLANKWATCH_", "AIRFLOW"))}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    })
    subprocess.run([str(AIRFLOW), "db", "migrate"], check=True, capture_output=True, env=env, timeout=300)
    return env


def test_digest_dag_shape(airflow_env):
    probe = (
        "import json\n"
        "from airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS / 'flankwatch_digest.py')!r})\n"
        "dag = bag.dags['flankwatch_digest']\n"
        "print(json.dumps({'errors': {k: str(v) for k, v in bag.import_errors.items()},"
        " 'catchup': dag.catchup, 'max_active_runs': dag.max_active_runs,"
        " 'tasks': [t.task_id for t in dag.topological_sort()], 'schedule': dag.timetable.expression,"
        " 'retries': [t.retries for t in dag.tasks]}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True,
                         env=airflow_env, timeout=300)
    shape = json.loads(out.stdout.strip().splitlines()[-1])
    assert shape == {"errors": {}, "catchup": False, "max_active_runs": 1, "tasks": ["digest"],
                     "schedule": "5 * * * *", "retries": [3]}


@pytest.mark.slow
def test_airflow_dags_test_flankwatch_digest_on_a_fresh_home(airflow_env, tmp_path):
    """No Slack token anywhere: the digest goes to the console (and var/alerts.jsonl)."""
    var = tmp_path / "var"
    config = tmp_path / "flankwatch.yaml"
    config.write_text(json.dumps({"alert_routes": [ROUTE.model_dump()]}))  # JSON is YAML
    settings = Settings(var_dir=var, feeds_file=tmp_path / "no-feeds.yaml", alert_routes=[ROUTE])
    upgrade(settings)
    boundary = digest_boundaries(ROUTE, datetime.now(UTC))[0]
    held_at = boundary - timedelta(hours=2)
    with session_scope(settings) as session:
        add_story(session, "d1", [{"source": s, "published_at": held_at, "enriched_at": held_at}
                                  for s in ("LRT", "Delfi", "BNS")])
        held = Alert(id=stable_id("alert", "new_story", "d1"), kind="new_story", story_id="d1", topic="t",
                     route="flank", channel="#flank-digest", payload={"text": "held at night", "blocks": []},
                     status="held", held_reason="quiet_hours", thread_key="d1", attempts=0, created_at=held_at)
        assert outbox.add(session, held)

    env = {**airflow_env, "FLANKWATCH_VAR_DIR": str(var), "FLANKWATCH_CONFIG": str(config),
           "FLANKWATCH_FEEDS_FILE": str(tmp_path / "no-feeds.yaml")}
    done = subprocess.run([str(AIRFLOW), "dags", "test", "flankwatch_digest"], check=False, capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    with session_scope(settings) as session:
        rows = {a.id: a for a in session.scalars(select(Alert))}
    [digest] = [a for a in rows.values() if a.kind == "digest"]
    assert (digest.status, digest.delivery, digest.channel) == ("sent", "console", "#flank-digest")
    assert digest.id == digest_id("flank", datetime.fromisoformat(digest.detail["period_end"]))
    assert datetime.fromisoformat(digest.detail["period_end"]) >= boundary  # the latest boundary of the run
    assert digest.detail["held"] == [held.id]
    assert (rows[held.id].status, rows[held.id].digest_id) == ("digested", digest.id)
    logged = [json.loads(line) for line in (var / "alerts.jsonl").read_text().splitlines()]
    assert [(r["id"], r["kind"], r["channel"]) for r in logged] == [(digest.id, "digest", "#flank-digest")]
