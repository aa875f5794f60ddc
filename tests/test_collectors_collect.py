"""The collect stage end to end: real outlet feeds served on 127.0.0.1, broken feeds next to them, re-runs."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import feedparser
import pytest
import yaml
from sqlalchemy import func, select

from collectors import errors
from collectors.collect import collect
from collectors.feeds_config import FeedsFileError
from collectors.normalise import canonical_url
from core.db import session_scope
from core.models import Article, Feed, FetchRecord
from core.settings import Settings
from feedserver import FeedServer, closed_port_url

NOW = datetime(2026, 2, 22, 12, 0, tzinfo=timezone.utc)
OUTLETS = {  # served path -> (file under feeds/outlets, configured language)
    "/tagesschau.xml": ("de/tagesschau.xml", "de"),
    "/spiegel.xml": ("de/spiegel.xml", "de"),
    "/dlf-europa.xml": ("de/deutschlandfunk-europa.xml", "de"),
    "/dlf-politik.xml": ("de/deutschlandfunk-politikportal.xml", "de"),
    "/wsj.xml": ("en/wsj_world.xml", "en"),
    "/economist.xml": ("en/economist.xml", "en"),
    "/bbc-russian.xml": ("ru/bbc.xml", "ru"),
    "/svoboda.xml": ("ru/svoboda.xml", "ru"),
    "/meduza.xml": ("ru/meduza.xml", "ru"),
    "/current-time.xml": ("ru/current_time.xml", "ru"),
}


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as running:
        yield running


def configure(settings: Settings, tmp_path: Path, feeds: dict[str, str | dict], **overrides: object) -> Settings:
    """Settings whose feeds file lists `feeds` (name -> url or feed fields), with small HTTP limits for tests."""
    entries = [{"name": name, **({"url": spec} if isinstance(spec, str) else spec)} for name, spec in feeds.items()]
    path = tmp_path / "feeds.yaml"
    path.write_text(yaml.safe_dump({"feeds": entries}, allow_unicode=True))
    values: dict[str, object] = {
        "feeds_file": path,
        "http_connect_timeout": 1.0,
        "http_read_timeout": 0.5,
        "http_total_timeout": 1.0,
        "http_max_bytes": 2_000_000,
        "fetch_workers": 4,
    }
    values.update(overrides)
    return settings.model_copy(update=values)


def serve_outlets(server: FeedServer, shared_data: Path) -> dict[str, str | dict]:
    outlets = shared_data / "feeds" / "outlets"
    return {
        path.strip("/"): {"url": server.serve_file(path, outlets / file), "language": language}
        for path, (file, language) in OUTLETS.items()
    }


def records(settings: Settings, run_id: str) -> dict[str, FetchRecord]:
    with session_scope(settings) as session:
        rows = session.execute(
            select(Feed.name, FetchRecord)
            .join(FetchRecord, FetchRecord.feed_id == Feed.id)
            .where(FetchRecord.run_id == run_id)
        ).all()
        return {name: record for name, record in rows}


def count(settings: Settings, model: type) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_real_outlet_feeds_then_304(settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path) -> None:
    settings = configure(settings, tmp_path, serve_outlets(server, shared_data))
    calls: list[tuple[int, int]] = []
    summary = collect(settings, run_id="run-1", now=NOW, progress=lambda done, total: calls.append((done, total)))

    result = summary.to_dict()
    assert set(result) == {"run_id", "feeds", "ok", "not_modified", "errors", "items_seen", "new_articles", "article_ids"}
    assert result["run_id"] == "run-1" and result["feeds"] == len(OUTLETS)
    assert (result["ok"], result["errors"], result["not_modified"]) == (len(OUTLETS), 0, 0)
    assert result["new_articles"] == len(result["article_ids"]) == len(set(result["article_ids"])) > 400
    assert calls[0] == (0, len(OUTLETS)) and calls[-1] == (len(OUTLETS), len(OUTLETS))

    with session_scope(settings) as session:
        articles = list(session.scalars(select(Article)))
        assert len(articles) == summary.new_articles
        for article in articles:
            assert article.canonical_url.startswith("https://")
            assert "#" not in article.canonical_url and "utm_" not in article.canonical_url
            assert article.published_at.utcoffset() == timedelta(0)
            assert datetime(1990, 1, 1, tzinfo=timezone.utc) < article.published_at <= NOW + timedelta(days=1)
            assert not re.search(r"<[a-zA-Z/!][^>]*>", article.title + article.summary), article.id
            assert article.language in ("de", "en", "ru") and article.fetched_at == NOW
            assert article.enriched_at is None and article.indexed_at is None
        by_source = {a.source for a in articles}
        assert "meduza.xml" not in by_source  # every Meduza item links to the home page: no article
        spiegel = [a for a in articles if a.source == "spiegel.xml"]
        assert len(spiegel) == 30 and all(a.url.endswith("#ref=rss") for a in spiegel)
        tagesschau = session.scalars(select(Feed).where(Feed.name == "tagesschau.xml")).one()
        assert tagesschau.etag and tagesschau.last_status == "ok" and tagesschau.last_success_at == NOW
        assert tagesschau.items_total == 40 and tagesschau.consecutive_failures == 0
        # the same article in two Deutschlandfunk feeds (100 of them here) is stored once
        dlf = [a for a in articles if a.source in ("dlf-europa.xml", "dlf-politik.xml")]
        links = {
            canonical_url(entry.link)
            for name in ("deutschlandfunk-europa.xml", "deutschlandfunk-politikportal.xml")
            for entry in feedparser.parse(io.BytesIO((shared_data / "feeds/outlets/de" / name).read_bytes())).entries
        }
        assert len(dlf) == len(links) < 126 + 119

    first = records(settings, "run-1")
    assert first["meduza.xml"].items_seen == 24 and first["meduza.xml"].items_new == 0
    assert first["current-time.xml"].status == "ok" and first["current-time.xml"].items_seen == 0
    assert first["tagesschau.xml"].items_new == 40 and first["tagesschau.xml"].http_status == 200
    assert first["dlf-europa.xml"].items_new + first["dlf-politik.xml"].items_new == len(links)

    later = NOW + timedelta(minutes=10)
    again = collect(settings, run_id="run-2", now=later)
    assert (again.not_modified, again.ok, again.errors, again.new_articles) == (len(OUTLETS), 0, 0, 0)
    assert count(settings, Article) == summary.new_articles
    second = records(settings, "run-2")
    assert {r.status for r in second.values()} == {"not_modified"} and {r.http_status for r in second.values()} == {304}
    conditional = [r.headers.get("if-none-match") for r in server.requests_to("/tagesschau.xml")]
    assert conditional[0] is None and conditional[1]
    with session_scope(settings) as session:
        tagesschau = session.scalars(select(Feed).where(Feed.name == "tagesschau.xml")).one()
        assert tagesschau.last_fetch_at == later and tagesschau.last_status == "not_modified"
        assert tagesschau.items_total == 40


def test_broken_feeds_do_not_stop_the_run(
    settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path
) -> None:
    outlets = shared_data / "feeds" / "outlets"
    feeds = {
        "good-de": server.serve_file("/tagesschau.xml", outlets / "de" / "tagesschau.xml"),
        "good-en": server.serve_file("/wsj.xml", outlets / "en" / "wsj_world.xml"),
        "server-error": server.error("/500.xml"),
        "gone": server.error("/gone.xml", 404),
        "closed-port": closed_port_url(),
        "no-dns": "http://flankwatch-test.invalid/rss",
        "html-page": server.html("/page.xml"),
        "billion-laughs": server.billion_laughs("/lol.xml"),
        "trickle": server.trickle("/trickle.xml", interval=0.05),
        "endless": server.endless("/endless.xml"),
        "redirect-loop": server.redirect_loop("/loop.xml"),
        "garbage": server.serve_bytes("/garbage.xml", bytes(range(256)) * 40, content_type="application/octet-stream"),
    }
    settings = configure(settings, tmp_path, feeds, http_max_bytes=500_000)
    started = datetime.now(timezone.utc)
    summary = collect(settings, run_id="broken", now=NOW)
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()

    assert elapsed < 5, elapsed  # trickle cut at 1 s, endless at 500 kB
    assert (summary.feeds, summary.ok, summary.errors) == (len(feeds), 2, len(feeds) - 2)
    assert summary.new_articles == 40 + 70
    got = {name: (r.status, r.error_class) for name, r in records(settings, "broken").items()}
    assert got == {
        "good-de": ("ok", None),
        "good-en": ("ok", None),
        "server-error": ("error", errors.HTTP_5XX),
        "gone": ("error", errors.HTTP_4XX),
        "closed-port": ("error", errors.CONNECT),
        "no-dns": ("error", errors.DNS),
        "html-page": ("error", errors.NOT_A_FEED),
        "billion-laughs": ("error", errors.XML_ENTITIES),
        "trickle": ("error", errors.TIMEOUT),
        "endless": ("error", errors.TOO_LARGE),
        "redirect-loop": ("error", errors.TOO_MANY_REDIRECTS),
        "garbage": ("error", got["garbage"][1]),
    }
    assert got["garbage"][1] in (errors.NOT_A_FEED, errors.PARSE_ERROR)
    assert all(r.error_message for name, r in records(settings, "broken").items() if not name.startswith("good"))

    collect(settings, run_id="broken-2", now=NOW + timedelta(minutes=10))
    with session_scope(settings) as session:
        feed = session.scalars(select(Feed).where(Feed.name == "server-error")).one()
        assert (feed.last_status, feed.last_error_class, feed.consecutive_failures) == ("error", errors.HTTP_5XX, 2)
        assert feed.last_success_at is None and feed.last_fetch_at == NOW + timedelta(minutes=10)
        good = session.scalars(select(Feed).where(Feed.name == "good-de")).one()
        assert good.consecutive_failures == 0 and good.last_error_class is None

    # the server recovers: the failure count resets
    server.serve_file("/500.xml", outlets / "de" / "spiegel.xml")
    collect(settings, run_id="broken-3", now=NOW + timedelta(minutes=20))
    with session_scope(settings) as session:
        feed = session.scalars(select(Feed).where(Feed.name == "server-error")).one()
        assert (feed.last_status, feed.last_error_class, feed.consecutive_failures) == ("ok", None, 0)


def test_same_run_id_is_idempotent(settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path) -> None:
    outlets = shared_data / "feeds" / "outlets"
    feeds = {
        "tagesschau": server.serve_file("/t.xml", outlets / "de" / "tagesschau.xml"),
        "broken": server.error("/e.xml"),
    }
    settings = configure(settings, tmp_path, feeds)
    first = collect(settings, run_id="same", now=NOW)
    assert first.new_articles == 40
    # the retry of a task: same run id, and the server no longer honours conditional requests
    server.serve_file("/t.xml", outlets / "de" / "tagesschau.xml", etag="", last_modified=None)
    second = collect(settings, run_id="same", now=NOW)
    assert (second.ok, second.new_articles, second.errors) == (1, 0, 1)
    assert count(settings, Article) == 40
    assert count(settings, FetchRecord) == 2
    got = records(settings, "same")
    assert got["tagesschau"].status == "ok" and got["tagesschau"].items_seen == 40 and got["tagesschau"].items_new == 0
    assert got["broken"].error_class == errors.HTTP_5XX


ITEM = (
    "<item><title>{title}</title><link>https://www.lrt.lt/en/news-in-english/19/{n}?utm_source=rss</link>"
    "<description>{summary}</description><pubDate>Fri, 20 Feb 2026 10:00:00 GMT</pubDate></item>"
)


def lrt_feed(items: list[tuple[int, str, str]]) -> bytes:
    body = "".join(ITEM.format(n=n, title=title, summary=summary) for n, title, summary in items)
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>LRT English</title>'
        f"<link>https://www.lrt.lt/en</link><language>en</language>{body}</channel></rss>"
    ).encode()


def test_updated_entry_updates_instead_of_duplicating(settings: Settings, tmp_path: Path, server: FeedServer) -> None:
    url = server.serve_bytes("/lrt.xml", lrt_feed([(1, "German brigade arrives", "First troops"), (2, "Other", "x")]))
    settings = configure(settings, tmp_path, {"LRT English": url})
    first = collect(settings, run_id="u1", now=NOW)
    assert first.new_articles == 2

    edited = lrt_feed(
        [
            (1, "German brigade arrives in Vilnius", "First 150 troops"),  # edited by the outlet
            (2, "Other", "x"),  # unchanged
            (3, "New story", "y"),
            (3, "New story, listed twice in one batch", "y2"),
        ]
    )
    server.serve_bytes("/lrt.xml", edited)
    later = NOW + timedelta(hours=1)
    second = collect(settings, run_id="u2", now=later)
    assert second.new_articles == 1 and second.items_seen == 4
    with session_scope(settings) as session:
        articles = {a.canonical_url.rsplit("/", 1)[1]: a for a in session.scalars(select(Article))}
        assert sorted(articles) == ["1", "2", "3"]
        assert articles["1"].title == "German brigade arrives in Vilnius" and articles["1"].summary == "First 150 troops"
        assert articles["1"].updated_at == later and articles["1"].fetched_at == NOW
        assert articles["2"].updated_at == NOW
        assert articles["3"].title == "New story"  # the first occurrence in a batch wins


def test_items_per_feed_cap(settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path) -> None:
    url = server.serve_file("/dlf.xml", shared_data / "feeds" / "outlets" / "de" / "deutschlandfunk-wissen.xml")
    settings = configure(settings, tmp_path, {"dlf": url}, max_items_per_feed=25)
    summary = collect(settings, run_id="cap", now=NOW)
    assert summary.items_seen == 25 and summary.new_articles == 25


def test_an_internal_error_is_recorded_and_the_run_goes_on(
    settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outlets = shared_data / "feeds" / "outlets"
    feeds = {
        "tagesschau": server.serve_file("/t.xml", outlets / "de" / "tagesschau.xml"),
        "wsj": server.serve_file("/w.xml", outlets / "en" / "wsj_world.xml"),
    }
    settings = configure(settings, tmp_path, feeds)

    import collectors.collect as stage

    real = stage.normalise_entry

    def failing_for_wsj(entry, *, feed, **kwargs):  # type: ignore[no-untyped-def]  # fault injection
        if feed.name == "wsj":
            raise RuntimeError("injected fault")
        return real(entry, feed=feed, **kwargs)

    monkeypatch.setattr(stage, "normalise_entry", failing_for_wsj)
    summary = collect(settings, run_id="fault", now=NOW)
    assert (summary.ok, summary.errors, summary.new_articles) == (1, 1, 40)
    got = records(settings, "fault")
    assert got["wsj"].error_class == errors.INTERNAL and "injected fault" in (got["wsj"].error_message or "")


def test_a_broken_feeds_file_fails_loudly(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("feeds:\n  - name: no url\n")
    with pytest.raises(FeedsFileError, match=r"feeds\.yaml\[0\] \(no url\): url: Field required"):
        collect(settings.model_copy(update={"feeds_file": path}), run_id="bad-config")
    assert count(settings, FetchRecord) == 0


def test_origin_restricts_the_feeds_polled(settings: Settings, tmp_path: Path, server: FeedServer) -> None:
    settings = configure(settings, tmp_path, {"configured": server.error("/config.xml")})
    demo_url = server.serve_bytes("/demo.xml", lrt_feed([(1, "Demo item", "x")]))
    with session_scope(settings) as session:
        session.add(Feed(name="demo", url=demo_url, origin="demo"))
        session.add(Feed(name="demo-off", url=server.error("/off.xml"), origin="demo", enabled=False))
    summary = collect(settings, run_id="demo-1", now=NOW, origin="demo")
    assert (summary.feeds, summary.ok, summary.new_articles) == (1, 1, 1)
    assert count(settings, Feed) == 2  # the feeds file is not synced into a demo run
    everything = collect(settings, run_id="all", now=NOW)
    assert (everything.feeds, everything.errors, everything.not_modified) == (2, 1, 1)


def test_no_feeds_file_and_no_feeds(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"feeds_file": tmp_path / "absent.yaml"})
    assert collect(settings, run_id="empty").to_dict() == {
        "run_id": "empty", "feeds": 0, "ok": 0, "not_modified": 0, "errors": 0, "items_seen": 0,
        "new_articles": 0, "article_ids": [],
    }
