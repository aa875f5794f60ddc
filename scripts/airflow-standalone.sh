#!/usr/bin/env bash
# Start Airflow standalone on the embedded default: SQLite metadata DB under var/airflow, the Flankwatch DAGs
# unpaused, small parallelism; and beside it the analyst's desk (`flankwatch serve`, 127.0.0.1 only). Ctrl-C
# stops both (they share the terminal's process group).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BIN="$ROOT/.venv/bin"
export PATH="$BIN:$PATH"  # standalone starts its components as `airflow ...` subprocesses

export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-2}"
export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-1}"
export AIRFLOW__SCHEDULER__PARSING_PROCESSES="${AIRFLOW__SCHEDULER__PARSING_PROCESSES:-1}"
export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="${AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES:-1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
mkdir -p "$AIRFLOW_HOME"

"$BIN/airflow" db migrate >/dev/null
PASSWORDS="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
cat <<MSG

  Flankwatch on Airflow standalone (embedded default: SQLite state and archive, console alerts unless
  FLANKWATCH_SLACK_TOKEN is set). DAGs: flankwatch_pipeline and flankwatch_digest, unpaused, schedule $("$BIN/python" -c 'from core.settings import get_settings; print(get_settings().schedule)').

  Airflow  http://localhost:${AIRFLOW__API__PORT}
           login admin / password in $PASSWORDS (written at first start)
  Desk     http://127.0.0.1:${FLANKWATCH_WEB_PORT:-8765}/  (search, stories, saved searches, feeds; API: /api/docs)

MSG
"$BIN/flankwatch" serve --host 127.0.0.1 --port "${FLANKWATCH_WEB_PORT:-8765}" &
exec "$BIN/airflow" standalone
