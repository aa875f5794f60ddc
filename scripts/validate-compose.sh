#!/usr/bin/env bash
# Validate docker-compose.yml without a Docker engine: Debian's docker-compose (v1.29) resolves and checks
# the file against the Compose schema with the variables of .env.example, then a few invariants of the stack
# are checked on the resolved file. Exits non-zero on any failure. Installs docker-compose with apt-get
# when it is missing and this runs as root. Used by CI and tests/test_compose.py.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-compose >/dev/null 2>&1; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "validate-compose: installing docker-compose (Debian package)"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null
    else
        echo "validate-compose: docker-compose is not installed (apt-get install docker-compose)" >&2
        exit 1
    fi
fi

PYTHON=${PYTHON:-}
if [[ -z $PYTHON ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# 1. The schema, with every variable from .env.example (and nothing from the caller's environment that
#    could hide a missing one: the stack's variables are unset first).
unset_stack_vars() {
    local name
    for name in $(sed -n 's/^#\{0,1\} *\([A-Z][A-Z0-9_]*\)=.*/\1/p' .env.example); do unset "$name"; done
}
(
    unset_stack_vars
    docker-compose -f docker-compose.yml --env-file .env.example config -q
    docker-compose -f docker-compose.yml --env-file .env.example config > "$tmp/resolved.yml"
    # 2. Without the secrets the file must refuse to resolve (the ${VAR:?} guards), not run with empty ones.
    : > "$tmp/empty.env"
    if docker-compose -f docker-compose.yml --env-file "$tmp/empty.env" config -q 2> "$tmp/err"; then
        echo "validate-compose: the file resolves without ELASTIC_PASSWORD & co.: add \${VAR:?} guards" >&2
        exit 1
    fi
    grep -q "POSTGRES_PASSWORD\|ELASTIC_PASSWORD\|AIRFLOW_" "$tmp/err" || { cat "$tmp/err" >&2; exit 1; }
)
echo "validate-compose: docker-compose $(docker-compose version --short) accepts docker-compose.yml"

# 3. Invariants of the resolved file.
"$PYTHON" - "$tmp/resolved.yml" <<'PY'
import sys

import yaml

config = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
services = config["services"]
errors = []

expected = {"postgres", "es01", "es-setup", "kibana", "kibana-init", "airflow-init", "airflow-apiserver",
            "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "flankwatch"}
if missing := expected - services.keys():
    errors.append(f"services missing: {sorted(missing)}")

one_shot = {"es-setup", "kibana-init", "airflow-init"}
for name, service in services.items():
    if name in one_shot or (service.get("profiles") and "healthcheck" not in service):  # on-demand CLI
        if service.get("restart", "no") != "no":
            errors.append(f"{name}: a one-shot service must not restart")
        continue
    if "test" not in service.get("healthcheck", {}):
        errors.append(f"{name}: long-running service without a healthcheck")
    for dep, cond in (service.get("depends_on") or {}).items():
        if dep not in services:
            errors.append(f"{name}: depends on unknown service {dep}")
        wanted = "service_completed_successfully" if dep in one_shot else "service_healthy"
        if cond.get("condition") != wanted:
            errors.append(f"{name}: depends_on {dep} should wait for {wanted}")

named = set(config.get("volumes") or {})
for want in ("postgres-data", "es-data", "airflow-logs", "flankwatch-var"):
    if want not in named:
        errors.append(f"named volume {want} missing")

es_env = services["es01"]["environment"]
if es_env.get("xpack.security.enabled") != "true":
    errors.append("es01: xpack.security.enabled must be true")
if es_env.get("ELASTIC_PASSWORD") != "change-me-elastic":
    errors.append("es01: ELASTIC_PASSWORD must come from .env (the .env.example placeholder did not arrive)")

for name in ("airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer"):
    env = services[name]["environment"]
    if env.get("AIRFLOW__CORE__EXECUTOR") != "LocalExecutor":
        errors.append(f"{name}: not on LocalExecutor")
    if not str(env.get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "")).startswith("postgresql+psycopg://"):
        errors.append(f"{name}: metadata DB is not PostgreSQL via psycopg")
    if not str(env.get("FLANKWATCH_DATABASE_URL", "")).endswith("@postgres:5432/flankwatch"):
        errors.append(f"{name}: FLANKWATCH_DATABASE_URL is not the flankwatch database")
    if env.get("FLANKWATCH_ARCHIVE_BACKEND") != "elasticsearch":
        errors.append(f"{name}: archive backend is not elasticsearch")
    if env.get("FLANKWATCH_ELASTICSEARCH_PASSWORD") != "change-me-elastic":
        errors.append(f"{name}: FLANKWATCH_ELASTICSEARCH_PASSWORD is not ELASTIC_PASSWORD")
    if env.get("AIRFLOW__CORE__DAGS_FOLDER") != "/opt/flankwatch/dags":
        errors.append(f"{name}: DAG folder is not /opt/flankwatch/dags")

for name, service in services.items():
    for port in service.get("ports") or []:
        host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]
        if host_ip != "127.0.0.1":
            errors.append(f"{name}: port {port} is published beyond localhost by default")

if errors:
    print("validate-compose: " + "\n  ".join(["invariants broken:", *errors]), file=sys.stderr)
    sys.exit(1)
print(f"validate-compose: invariants hold ({len(services)} services, {len(named)} named volumes)")
PY
