"""Airflow DAG `flankwatch_pipeline`: collect -> enrich -> index -> alert.

Thin on purpose: each task calls the same stage function as `flankwatch run --once`, imports it inside the
task (nothing heavy at parse time: no torch, no model) and passes only counts and ids through XCom.
The Slack token may come from the Airflow connection `flankwatch_slack` (its password), else from the
environment (`FLANKWATCH_SLACK_TOKEN`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from core.settings import get_settings

SLACK_CONNECTION = "flankwatch_slack"

DEFAULT_ARGS = {
    "owner": "flankwatch",
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=10),
}


def _slack_token() -> str | None:
    from airflow.sdk import Connection
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return Connection.get(SLACK_CONNECTION).password or None
    except AirflowNotFoundException:
        return None


@dag(
    dag_id="flankwatch_pipeline",
    schedule=get_settings().schedule,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flankwatch"],
    doc_md=__doc__,
)
def flankwatch_pipeline() -> None:
    @task
    def collect() -> dict:
        from flankwatch.pipeline import collect_stage

        return collect_stage(get_settings(), run_id=get_current_context()["run_id"])

    @task
    def enrich() -> dict:
        from flankwatch.pipeline import enrich_stage

        return enrich_stage(get_settings())

    # Index and alert run even when an earlier stage failed for good: articles enriched before still get
    # indexed, and alerts already in the outbox still go out.
    @task(trigger_rule="all_done")
    def index() -> dict:
        from flankwatch.pipeline import index_stage

        return index_stage(get_settings())

    @task(trigger_rule="all_done")
    def alert() -> dict:
        from flankwatch.pipeline import alert_stage

        return alert_stage(get_settings(), slack_token=_slack_token())

    collect() >> enrich() >> index() >> alert()


flankwatch_pipeline()
