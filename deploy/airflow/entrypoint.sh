#!/usr/bin/env bash
# flankwatch-airflow: how the Airflow services of docker-compose.yml start (installed in the Flankwatch
# image as /usr/local/bin/flankwatch-airflow).
#
#   flankwatch-airflow init           check the secrets, migrate Airflow's metadata DB and Flankwatch's state
#                                     DB (both PostgreSQL), then exit (the one-shot airflow-init service)
#   flankwatch-airflow api-server     write the admin login for SimpleAuthManager, then run the api-server
#   flankwatch-airflow scheduler | dag-processor | triggerer
#                                     run that Airflow component
#   flankwatch-airflow CMD...         run anything else as given (e.g. `airflow dags list`)
set -euo pipefail

fail() {
    echo "flankwatch-airflow: $*" >&2
    exit 1
}

# Refuse the placeholders of .env.example and a Fernet key that Airflow could not use: better to stop
# here, with the variable's name, than to run a stack with published default passwords.
check_secrets() {
    local name value
    for name in AIRFLOW__DATABASE__SQL_ALCHEMY_CONN FLANKWATCH_DATABASE_URL AIRFLOW__API_AUTH__JWT_SECRET \
        AIRFLOW__API__SECRET_KEY FLANKWATCH_ELASTICSEARCH_PASSWORD; do
        value=${!name:-}
        [[ -n $value ]] || fail "$name is empty: set the secrets in .env (see .env.example)"
        [[ $value != *change-me* ]] || fail "$name still holds a change-me placeholder: edit .env"
    done
    python - <<'PY' || fail "AIRFLOW_FERNET_KEY in .env is not a Fernet key (see .env.example for how to make one)"
import os
from cryptography.fernet import Fernet

Fernet(os.environ.get("AIRFLOW__CORE__FERNET_KEY", "").encode())
PY
}

# SimpleAuthManager (Airflow 3's default) reads logins from a JSON file {user: password}; the user's role
# comes from AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS. Written at every start, so .env stays the truth.
write_login() {
    [[ -n ${AIRFLOW_ADMIN_USER:-} && -n ${AIRFLOW_ADMIN_PASSWORD:-} ]] \
        || fail "AIRFLOW_ADMIN_USER and AIRFLOW_ADMIN_PASSWORD must be set in .env"
    [[ $AIRFLOW_ADMIN_PASSWORD != *change-me* ]] || fail "AIRFLOW_ADMIN_PASSWORD still holds its placeholder: edit .env"
    local file=${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE:-$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated}
    (umask 077 && python -c '
import json, os, sys
json.dump({os.environ["AIRFLOW_ADMIN_USER"]: os.environ["AIRFLOW_ADMIN_PASSWORD"]}, open(sys.argv[1], "w"))
' "$file")
}

component=${1:-}
case $component in
    init)
        check_secrets
        echo "flankwatch-airflow: migrating Airflow's metadata DB (Airflow $(python -c 'import importlib.metadata as m; print(m.version("apache-airflow"))'))"
        airflow db migrate
        echo "flankwatch-airflow: migrating Flankwatch's state DB"
        flankwatch db upgrade
        echo "flankwatch-airflow: init done"
        ;;
    api-server)
        write_login
        exec airflow api-server
        ;;
    scheduler | dag-processor | triggerer)
        exec airflow "$component"
        ;;
    "")
        fail "usage: flankwatch-airflow init|api-server|scheduler|dag-processor|triggerer|CMD..."
        ;;
    *)
        exec "$@"
        ;;
esac
