"""Airflow DAG `flankwatch_maintenance`: daily retention (`flankwatch.retention.maintenance_stage`).

Deletes articles older than FLANKWATCH_RETENTION_ARTICLE_DAYS from the state and the archive, recounts the
stories they leave, and drops stories left empty and alerts older than FLANKWATCH_RETENTION_STORY_DAYS. Both
unset (the default): nothing is deleted. Thin like the other DAGs: one task, the stage imported inside it.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from core.settings import get_settings

SCHEDULE = "30 3 * * *"  # daily, at a quiet hour (UTC)

DEFAULT_ARGS = {
    "owner": "flankwatch",
    "retries": 2,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=30),
}


@dag(
    dag_id="flankwatch_maintenance",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flankwatch"],
    doc_md=__doc__,
)
def flankwatch_maintenance() -> None:
    @task
    def retention() -> dict:
        from flankwatch.retention import maintenance_stage

        return maintenance_stage(get_settings())

    retention()


flankwatch_maintenance()
