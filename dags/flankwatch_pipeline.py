"""Airflow DAG `flankwatch_pipeline`: collect (mapped over feed shards) -> embed (mapped over article batches)
-> enrich (story assignment, one ordered task) -> index -> alert.

Thin on purpose: each task calls a stage function of `flankwatch.pipeline` (the same ones as
`flankwatch run --once`), imports it inside the task (nothing heavy at parse time: no torch, no model) and
passes only counts and ids through XCom. The mapped tasks claim their work in the state DB
(`core.claims`), so two shards or batches never take the same feeds or articles. Every task holds the run
lock shared while it runs, the ordered ones also their stage's own lock (`core.runlock`): a
`flankwatch run --once` never runs beside a task.
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


def _run_id() -> str:
    return get_current_context()["run_id"]


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
    # An empty expansion (no feed due, no article to embed) skips its mapped task: the stages after it run
    # on any outcome ("all_done"), as index and alert always did: articles enriched before still get indexed,
    # alerts already in the outbox still go out, a failed shard or batch leaves its work to the next run.
    @task
    def plan_collect() -> list[dict]:
        from flankwatch.pipeline import plan_collect_stage, task_lock

        with task_lock(get_settings(), run_id=_run_id(), task="plan_collect"):
            return plan_collect_stage(get_settings())

    @task
    def collect(shard: dict) -> dict:
        from flankwatch.pipeline import collect_shard_stage, task_lock

        with task_lock(get_settings(), run_id=_run_id(), task="collect"):
            return collect_shard_stage(get_settings(), run_id=_run_id(), shard=shard)

    @task(trigger_rule="all_done")
    def plan_embed() -> list[dict]:
        from flankwatch.pipeline import plan_embed_stage, task_lock

        with task_lock(get_settings(), run_id=_run_id(), task="plan_embed"):
            return plan_embed_stage(get_settings())

    @task
    def embed(batch: dict) -> dict:
        from flankwatch.pipeline import embed_batch_stage, task_lock

        with task_lock(get_settings(), run_id=_run_id(), task="embed"):
            return embed_batch_stage(get_settings(), run_id=_run_id(), batch=batch)

    @task(trigger_rule="all_done")
    def enrich() -> dict:
        from flankwatch.pipeline import enrich_stage, task_lock

        with task_lock(get_settings(), run_id=_run_id(), task="enrich", stage="enrich"):
            return enrich_stage(get_settings())

    @task(trigger_rule="all_done")
    def index() -> dict:
        from flankwatch.pipeline import index_stage, task_lock

        with task_lock(get_settings(), run_id=_run_id(), task="index", stage="index"):
            return index_stage(get_settings())

    @task(trigger_rule="all_done")
    def alert() -> dict:
        from flankwatch.pipeline import alert_stage, task_lock

        with task_lock(get_settings(), run_id=_run_id(), task="alert", stage="alert"):
            return alert_stage(get_settings(), slack_token=_slack_token())

    shards = collect.expand(shard=plan_collect())
    batches = plan_embed()
    shards >> batches
    embed.expand(batch=batches) >> enrich() >> index() >> alert()


flankwatch_pipeline()
