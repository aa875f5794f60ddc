"""Shared fixtures: every test gets its own var dir, state DB and archive; the model loads once per session."""

from __future__ import annotations

import os
import sys
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


@pytest.fixture
def settings(tmp_path: Path):
    """Settings on a fresh, migrated embedded default under tmp_path."""
    from core.db import upgrade
    from core.settings import Settings

    # No feeds file by default: a test never polls the real outlets of config/feeds.yaml.
    settings = Settings(var_dir=tmp_path / "var", feeds_file=tmp_path / "no-feeds.yaml")
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
