"""Secrets never show: distinctive values for every secret setting (Slack token, a database password in the
URL, the desk's token, the Elasticsearch password and API key) go through a full embedded run delivering to
a local fake Slack, a run with a Slack token that Slack refuses, a state DB whose password is wrong, `archive
status`, `settings`, and the desk's pages; no output (stdout, stderr, files under var/, run summaries, the
alert log, HTML, JSON) may contain any of them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from alerts import outbox
from core.db import session_scope, upgrade
from core.ids import stable_id
from core.models import Alert, PipelineRun
from core.settings import Settings

FLANKWATCH = Path(sys.executable).with_name("flankwatch")
SLACK = "xoxb-SECRETSLACK-4242-abcdef"
WRONG_SLACK = "xoxb-SECRETWRONG-9999-zyxwvu"
DB_PASSWORD = "SECRETDBPW-7b1f"
WEB_TOKEN = "SECRETWEBTOKEN-5c2d9e"
ES_PASSWORD = "SECRETESPW-11aa"
ES_API_KEY = "SECRETESKEY-22bb"
SECRETS = (SLACK, WRONG_SLACK, DB_PASSWORD, WEB_TOKEN, ES_PASSWORD, ES_API_KEY)


def _leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


def _pending(settings: Settings, n: int) -> None:
    with session_scope(settings) as session:
        outbox.add(session, Alert(id=stable_id("alert", "secret", str(n)), kind="coverage", topic="t",
                                  route="default", channel="C0FLANKWATCH", payload={"text": f"alert {n}", "blocks": []},
                                  status="pending", thread_key=f"k{n}", created_at=datetime.now(timezone.utc)))


@pytest.mark.slow
def test_no_secret_appears_in_any_output(tmp_path: Path, fake_slack) -> None:  # type: ignore[no-untyped-def]
    fake_slack.token = SLACK
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLANKWATCH_")}
    env.update({
        "FLANKWATCH_VAR_DIR": str(var), "FLANKWATCH_FEEDS_FILE": str(tmp_path / "no-feeds.yaml"),
        "FLANKWATCH_SLACK_TOKEN": SLACK, "FLANKWATCH_SLACK_API_URL": fake_slack.url,
        "FLANKWATCH_SLACK_CHANNEL": "C0FLANKWATCH", "FLANKWATCH_WEB_TOKEN": WEB_TOKEN,
        "FLANKWATCH_ELASTICSEARCH_PASSWORD": ES_PASSWORD, "FLANKWATCH_ELASTICSEARCH_API_KEY": ES_API_KEY,
        "FLANKWATCH_ELASTICSEARCH_URL": f"http://elastic:{ES_PASSWORD}@127.0.0.1:9",
    })
    settings = Settings(var_dir=var, feeds_file=tmp_path / "no-feeds.yaml")
    upgrade(settings)
    outputs: dict[str, str] = {}

    def cli(name: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([str(FLANKWATCH), *args], env={**env, **extra}, capture_output=True, text=True,
                              timeout=600)
        outputs[name] = done.stdout + done.stderr
        return done

    _pending(settings, 1)
    assert cli("run", "run", "--once").returncode == 0, outputs["run"][-2000:]
    assert fake_slack.alert_ids()  # the run really delivered with the token
    _pending(settings, 2)
    cli("run-bad-token", "run", "--once", FLANKWATCH_SLACK_TOKEN=WRONG_SLACK)
    with session_scope(settings) as session:
        refused = session.get(Alert, stable_id("alert", "secret", "2"))
        assert refused.status != "sent" and refused.last_error  # Slack refused the wrong token
        outputs["alerts"] = " ".join(f"{a.last_error} {a.payload} {a.detail}" for a in session.scalars(select(Alert)))
        outputs["runs"] = " ".join(str(r.summary) for r in session.scalars(select(PipelineRun)))
    cli("settings", "settings")
    cli("settings-json", "settings", "--json", FLANKWATCH_DATABASE_URL=f"postgresql+psycopg://fw:{DB_PASSWORD}@127.0.0.1:9/fw")
    assert "***" in outputs["settings-json"] and "**********" in outputs["settings-json"]
    assert cli("archive-status", "archive", "status").returncode == 0
    cli("archive-es", "archive", "status", FLANKWATCH_ARCHIVE_BACKEND="elasticsearch")
    bad_db = cli("bad-db", "feeds", FLANKWATCH_DATABASE_URL=f"postgresql+psycopg://fw:{DB_PASSWORD}@127.0.0.1:9/fw")
    assert bad_db.returncode != 0  # the error path ran
    cli("bad-db-run", "run", "--once", FLANKWATCH_DATABASE_URL=f"postgresql+psycopg://fw:{DB_PASSWORD}@127.0.0.1:9/fw")

    from fastapi.testclient import TestClient

    from flankwatch.web.app import create_app

    web = settings.model_copy(update={"web_token": SecretStr(WEB_TOKEN)})
    client = TestClient(create_app(web))
    for page in ("/", "/stories", "/watches", "/feeds", "/api/search", "/api/docs", "/openapi.json", "/login"):
        response = client.get(page)
        outputs[f"web {page}"] = response.text + str(response.headers)
    response = client.post("/login", data={"token": "wrong"})
    outputs["web login"] = response.text + str(response.headers)

    for path in var.rglob("*"):  # logs, the alert log, the databases themselves
        if path.is_file():
            outputs[f"file {path.name}"] = path.read_bytes().decode("utf-8", errors="replace")
    leaks = {name: _leaks(text) for name, text in outputs.items() if _leaks(text)}
    assert leaks == {}
