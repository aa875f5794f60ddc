"""Airflow DAG `flankwatch_digest`: the digests due this hour, then the outbox delivered.

Hourly: each route's digest is due at its `digest_at` and when its quiet hours end (on its own clock); a
run finds the latest of those moments, builds that digest once (a re-run, or the next hour, finds it and
builds nothing) and carries the alerts the route held. Thin like `flankwatch_pipeline`: one task calling
`flankwatch.pipeline.digest_stage`, imported inside the task, holding the alert stage's lock (the digest
delivers the outbox as the alert stage does: never beside it, nor beside `flankwatch run --once`). The Slack token may come from the Airflow
connection `flankwatch_slack` (its password), else from the environment (`FLANKWATCH_SLACK_TOKEN`).
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, get_current_context, task

from core.settings import get_settings

SLACK_CONNECTION = "flankwatch_slack"
SCHEDULE = "5 * * * *"  # just after the hour: digest times are on the hour or minute of a route's clock

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
    dag_id="flankwatch_digest",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["flankwatch"],
    doc_md=__doc__,
)
def flankwatch_digest() -> None:
    @task
    def digest() -> dict:
        from flankwatch.pipeline import digest_stage, task_lock

        settings = get_settings()
        with task_lock(settings, run_id=get_current_context()["run_id"], task="digest", stage="alert"):
            return digest_stage(settings, slack_token=_slack_token())

    digest()


flankwatch_digest()
