"""Shared fixtures: every test gets its own var dir, state DB and archive; the model loads once per session.

The state-and-pipeline tests (`STATE_DB_TESTS`) run twice, on the embedded SQLite state DB and on PostgreSQL
(ids `[sqlite]` / `[postgresql]`): same tests, a fresh migrated database per test. The PostgreSQL variants
need a server: `bash scripts/with-postgres.sh .venv/bin/python -m pytest ...` (as `.ci/run` does) starts a
throwaway one and exports `FLANKWATCH_TEST_POSTGRES_URL`; without it they are skipped. `-m "not postgresql"`
deselects them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
# The benchmarks are scripts, not a package: their tests import them from bench/.
sys.path.insert(0, str(PROJECT_ROOT / "bench"))

# No test may reach the internet or a hub for model weights.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# Tests never see a real Slack token from the developer's environment.
for _name in ("FLANKWATCH_SLACK_TOKEN", "FLANKWATCH_DATABASE_URL", "FLANKWATCH_VAR_DIR"):
    os.environ.pop(_name, None)


# Hypothesis (tests/test_properties_*.py): "ci" is the budget of record (>= 2,000 examples per property,
# reproducible: derandomized, failures print a blob to replay); "dev" is a quick local pass. Pick with
# HYPOTHESIS_PROFILE (default: ci).
# Its examples database and failure patches go to a scratch dir, not into the work tree.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(Path(tempfile.gettempdir()) / "flankwatch-hypothesis"))
try:
    from hypothesis import HealthCheck, settings as _hypothesis_settings

    _hypothesis_settings.register_profile(
        "ci", max_examples=2000, deadline=None, derandomize=True, print_blob=True, database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    _hypothesis_settings.register_profile("dev", max_examples=200, deadline=None, print_blob=True, database=None)
    _hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
except ImportError:  # the property tests skip themselves without it
    pass

POSTGRES_URL_ENV = "FLANKWATCH_TEST_POSTGRES_URL"
NO_POSTGRES = (
    f"{POSTGRES_URL_ENV} is not set: run the suite through scripts/with-postgres.sh (as .ci/run does) "
    "to test PostgreSQL state"
)

# The tests that run on both state databases, by module: those that take one of the fixtures named there, or
# are named there. Flankwatch's state DB is what they exercise: stage functions reading and writing it,
# idempotent re-runs, upserts, schedules, the outbox, migrations. Every other test stays on SQLite only, so
# the suite stays fast: pure functions, parsers, HTTP and polling safety, Slack formatting and delivery, the
# archive's own search backends, benchmarks.
STATE_DB_TESTS: dict[str, tuple[str, ...]] = {
    "test_collectors_collect": ("settings",),   # collect: feeds, fetch records, idempotent article insert
    "test_collectors_config": ("settings",),    # sync_feeds upserts feeds by URL; OPML export reads them
    "test_collectors_polling": ("settings",),   # the feed schedule: due-time queries on stored timestamps
    "test_collectors_dedup": ("settings",),     # dedup at the door: guid/title-hash lookups, updates in place
    "test_collectors_fulltext": ("settings",),  # full text written with the articles
    "test_enrichment_stage": ("settings",),     # enrich: pending articles, embeddings, relevance, stories
    "test_enrichment_reembed": ("settings",),   # re-embedding in committed batches, centroids rewritten
    "test_enrichment_clustering": (             # stories, merges and events stored and reloaded
        "settings", "test_converging_stories_merge_and_the_merge_is_recorded",  # (its own Settings(): env)
    ),
    "test_archive_index": ("settings",),        # index: pending/indexed_at bookkeeping in the state DB
    "test_alerts_rules": ("settings",),         # outbox rows from stories, deterministic ids
    "test_alerts_outbox": ("settings",),        # claiming and marking alerts across sessions
    "test_alerts_run": ("settings",),           # the alert stage: evaluate + deliver, re-runs
    "test_alerts_threads": ("settings",),       # threads, merges, sources, doubt lookups through the stage
    "test_alerts_spikes": ("settings",),        # hourly volume counts and spike episodes in SQL
    "test_alerts_digest": ("settings",),        # digests per route and period, held alerts carried
    "test_alerts_coverage": ("settings",),      # key outlets' coverage states and their alerts
    "test_alerts_watches": ("settings",),       # saved searches: checked_until, per (search, story) alerts
    "test_alerts_feedback": ("settings",),      # reactions stored per alert, precision per kind and route
    "test_pipeline_e2e": ("settings",),         # run_once: all four stages on one state DB
    "test_demo": ("settings",),                 # the demo's replay of real news through the pipeline
    "test_cli": ("cli",),                       # the CLI reads FLANKWATCH_DATABASE_URL (set by `state_db`)
    "test_dag": ("test_dag_test_runs_green_end_to_end",),  # dag.test(): its tasks read it too (Airflow's
                                                           # own metadata DB stays SQLite either way)
    "test_state_migrations": ("state_db",),     # the migrations themselves: every test there
    "test_resource_faults": ("settings",),      # full disks, locks, a restarted server, an unreachable archive
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgresql: the PostgreSQL variant of a state-DB test (needs a server)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = STATE_DB_TESTS.get(metafunc.module.__name__, ())
    if any(name in metafunc.fixturenames or name == metafunc.function.__name__ for name in names):
        metafunc.parametrize(
            "state_db", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)], indirect=True
        )


@contextmanager
def _postgres_database(maintenance_url: str) -> Iterator[str]:
    """A new, empty database on the server of `maintenance_url`; dropped afterwards (connections closed)."""
    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.pool import NullPool

    from core.db import dispose_engine

    name = f"flankwatch_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(maintenance_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(maintenance_url).set(database=name).render_as_string(hide_password=False)
        try:
            yield url
        finally:
            dispose_engine(url)  # core.db keeps one pooled engine per URL
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@pytest.fixture(autouse=True)
def state_db(request: pytest.FixtureRequest) -> Iterator[str | None]:
    """The state DB of this test: None for the embedded default (SQLite in the test's var dir); for the
    `postgresql` variants of `STATE_DB_TESTS`, the URL of a fresh, empty PostgreSQL database, also exported as
    FLANKWATCH_DATABASE_URL for code that reads the environment (CLI, Airflow tasks)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        yield None
        return
    maintenance_url = os.environ.get(POSTGRES_URL_ENV)
    if not maintenance_url:
        pytest.skip(NO_POSTGRES)
    from core.settings import get_settings

    with _postgres_database(maintenance_url) as url, pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("FLANKWATCH_DATABASE_URL", url)
        get_settings.cache_clear()
        try:
            yield url
        finally:
            get_settings.cache_clear()


@pytest.fixture
def settings(tmp_path: Path, state_db: str | None):
    """Settings on a fresh, migrated state DB (embedded SQLite under tmp_path, or PostgreSQL: `state_db`)."""
    from core.db import upgrade
    from core.settings import Settings

    # No feeds file by default: a test never polls the real outlets of config/feeds.yaml.
    database = {"database_url": state_db} if state_db else {}  # empty: derived from var_dir (SQLite)
    settings = Settings(var_dir=tmp_path / "var", feeds_file=tmp_path / "no-feeds.yaml", **database)
    upgrade(settings)
    return settings


@pytest.fixture(scope="session")
def embedder():
    """The real offline model, loaded once for the whole session."""
    from core.settings import Settings
    from enrichment.embeddings import get_embedder

    return get_embedder(Settings().embedding_model)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def fake_slack():
    """A fake Slack Web API on 127.0.0.1 (see tests/fakeslack.py), stopped after the test."""
    from fakeslack import FakeSlack

    with FakeSlack() as server:
        yield server
