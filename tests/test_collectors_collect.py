"""The collect stage end to end: real outlet feeds served on 127.0.0.1, broken feeds next to them, re-runs."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import feedparser
import pytest
from sqlalchemy import select

from collectors import errors
from collectors.collect import collect
from collectors.feeds_config import FeedsFileError
from collectors.normalise import canonical_url
from core.db import session_scope
from core.models import Article, Feed, FetchRecord
from core.settings import Settings
from collect_support import configure, count, records, rss
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


def serve_outlets(server: FeedServer, shared_data: Path) -> dict[str, str | dict]:
    outlets = shared_data / "feeds" / "outlets"
    return {
        path.strip("/"): {"url": server.serve_file(path, outlets / file), "language": language}
        for path, (file, language) in OUTLETS.items()
    }


def test_real_outlet_feeds_then_304(settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path) -> None:
    settings = configure(settings, tmp_path, serve_outlets(server, shared_data))
    calls: list[tuple[int, int]] = []
    summary = collect(settings, run_id="run-1", now=NOW, progress=lambda done, total: calls.append((done, total)))

    result = summary.to_dict()
    assert set(result) == {"run_id", "feeds", "ok", "not_modified", "errors", "items_seen", "new_articles",
                           "updated_articles", "article_ids"}
    assert result["updated_articles"] == 0
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

    # due-only polling: ten minutes later no feed is due (the first interval is 30 minutes)
    assert collect(settings, run_id="run-early", now=NOW + timedelta(minutes=10)).feeds == 0
    assert len(server.requests_to("/tagesschau.xml")) == 1

    # after 30 minutes the feeds are due, except those whose <ttl> asks for more (Tagesschau 90, DLF 60 min)
    early = collect(settings, run_id="run-ttl", now=NOW + timedelta(minutes=30))
    assert (early.feeds, early.not_modified, early.new_articles) == (len(OUTLETS) - 3, len(OUTLETS) - 3, 0)
    with session_scope(settings) as session:
        schedule = {f.name: (f.next_fetch_at, f.schedule_reason) for f in session.scalars(select(Feed))}
    assert schedule["tagesschau.xml"] == (NOW + timedelta(minutes=90), "ttl")
    assert schedule["dlf-europa.xml"] == (NOW + timedelta(minutes=60), "ttl")
    assert schedule["spiegel.xml"] == (NOW + timedelta(minutes=30 + 45), "interval")  # nothing new: 30 -> 45 min

    later = NOW + timedelta(minutes=90)
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

    collect(settings, run_id="broken-2", now=NOW + timedelta(minutes=30))
    with session_scope(settings) as session:
        feed = session.scalars(select(Feed).where(Feed.name == "server-error")).one()
        assert (feed.last_status, feed.last_error_class, feed.consecutive_failures) == ("error", errors.HTTP_5XX, 2)
        assert feed.last_success_at is None and feed.last_fetch_at == NOW + timedelta(minutes=30)
        assert feed.health == "failing" and feed.next_fetch_at == NOW + timedelta(minutes=90)  # backoff: 30, 60
        good = session.scalars(select(Feed).where(Feed.name == "good-de")).one()
        assert good.consecutive_failures == 0 and good.last_error_class is None

    # the server recovers: the failure count resets
    server.serve_file("/500.xml", outlets / "de" / "spiegel.xml")
    collect(settings, run_id="broken-3", now=NOW + timedelta(minutes=90))
    with session_scope(settings) as session:
        feed = session.scalars(select(Feed).where(Feed.name == "server-error")).one()
        assert (feed.last_status, feed.last_error_class, feed.consecutive_failures) == ("ok", None, 0)
        assert feed.health == "ok" and feed.schedule_reason == "interval"


def test_same_run_id_is_idempotent(settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path) -> None:
    outlets = shared_data / "feeds" / "outlets"
    feeds = {
        "tagesschau": server.serve_file("/t.xml", outlets / "de" / "tagesschau.xml"),
        "broken": server.error("/e.xml"),
    }
    settings = configure(settings, tmp_path, feeds)
    first = collect(settings, run_id="same", now=NOW)
    assert first.new_articles == 40
    # the retry of a task: same run id; what was committed is not due again
    assert collect(settings, run_id="same", now=NOW).feeds == 0
    # a crash between the fetch and the commit of the schedule leaves a feed due: its articles are not
    # stored twice, even from a server that no longer honours conditional requests
    server.serve_file("/t.xml", outlets / "de" / "tagesschau.xml", etag="", last_modified=None)
    with session_scope(settings) as session:
        for feed in session.scalars(select(Feed)):
            feed.next_fetch_at = None
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
    assert second.new_articles == 1 and second.items_seen == 4 and second.updated_articles == 1
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

    import collectors.workers as stage

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
    everything = collect(settings, run_id="all", now=NOW + timedelta(minutes=30))
    assert (everything.feeds, everything.errors, everything.not_modified) == (2, 1, 1)


def test_no_feeds_file_and_no_feeds(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"feeds_file": tmp_path / "absent.yaml"})
    assert collect(settings, run_id="empty").to_dict() == {
        "run_id": "empty", "feeds": 0, "ok": 0, "not_modified": 0, "errors": 0, "items_seen": 0,
        "new_articles": 0, "updated_articles": 0, "article_ids": [],
    }


# --- batched writes and the parse pool -------------------------------------------------------------------


class Crash(BaseException):
    """A crash of the process as the collect stage sees it: nothing catches it (not an Exception)."""


def small_feeds(server: FeedServer, count: int) -> dict[str, str]:
    return {f"feed-{i}": server.serve_bytes(f"/f{i}.xml", lrt_feed([(100 * i + k, f"Item {i}.{k}", "text")
                                                                 for k in range(3)])) for i in range(count)}


def test_a_crash_between_batches_leaves_no_feed_polled_without_its_articles(
    settings: Settings, tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of 3 feeds; the second batch's transaction dies after writing everything (rolled back): the
    feeds of the first batch are committed with their articles and FetchRecords, the others are untouched
    and still due, and a re-run with the same run id polls exactly those and ends where one run would."""
    import collectors.batch as batch
    import collectors.collect as stage

    settings = configure(settings, tmp_path, small_feeds(server, 8), fetch_concurrency=2)
    monkeypatch.setattr(stage, "BATCH_FEEDS", 3)
    monkeypatch.setattr(stage, "BATCH_SECONDS", 30.0)
    real_write, calls = batch.write, []

    def dying_write(session, run_id, outcomes, now, settings):  # type: ignore[no-untyped-def]  # fault injection
        result = real_write(session, run_id, outcomes, now, settings)
        calls.append(len(outcomes))
        if len(calls) == 2:
            session.flush()
            raise Crash("killed after writing the second batch, before its commit")
        return result

    monkeypatch.setattr(batch, "write", dying_write)
    with pytest.raises(Crash):
        collect(settings, run_id="crash", now=NOW)
    monkeypatch.undo()

    with session_scope(settings) as session:
        feeds = list(session.scalars(select(Feed)))
        by_feed = {feed.id: 0 for feed in feeds}
        for article in session.scalars(select(Article)):
            by_feed[article.feed_id] += 1
        polled = {feed.id for feed in feeds if feed.last_fetch_at is not None}
        recorded = set(session.scalars(select(FetchRecord.feed_id)))
        for feed in feeds:
            if feed.id in polled:  # committed: everything of its poll is there
                assert by_feed[feed.id] == 3 and feed.etag and feed.next_fetch_at == NOW + timedelta(minutes=30)
            else:  # not committed: nothing of its poll is there, and it is still due
                assert by_feed[feed.id] == 0 and feed.etag is None and feed.next_fetch_at is None
        assert recorded == polled and len(polled) == calls[0] >= 3 and len(polled) < len(feeds)

    again = collect(settings, run_id="crash", now=NOW)
    assert (again.feeds, again.ok, again.new_articles) == (8 - len(polled), 8 - len(polled), 3 * (8 - len(polled)))
    assert count(settings, Article) == 24 and count(settings, FetchRecord) == 8
    assert collect(settings, run_id="crash", now=NOW).feeds == 0


def test_a_failing_batch_is_written_feed_by_feed(
    settings: Settings, tmp_path: Path, server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error in a batch costs only the feed that causes it (recorded as `internal`)."""
    import collectors.batch as batch
    import collectors.collect as stage

    settings = configure(settings, tmp_path, small_feeds(server, 5))
    monkeypatch.setattr(stage, "BATCH_SECONDS", 30.0)
    real_store = batch.store_articles_report

    def refusing(session, articles, now):  # type: ignore[no-untyped-def]  # fault injection
        articles = list(articles)
        if any(article.source == "feed-3" for article in articles):
            raise ValueError("injected: the database refuses feed-3's rows")
        return real_store(session, articles, now)

    monkeypatch.setattr(batch, "store_articles_report", refusing)
    summary = collect(settings, run_id="partial", now=NOW)
    assert (summary.ok, summary.errors, summary.new_articles) == (4, 1, 12)
    got = records(settings, "partial")
    assert got["feed-3"].error_class == errors.INTERNAL and "injected" in (got["feed-3"].error_message or "")
    assert {name: r.items_new for name, r in got.items() if name != "feed-3"} == {
        f"feed-{i}": 3 for i in (0, 1, 2, 4)}


def test_the_parse_pool_gives_what_parsing_in_process_gives(
    settings: Settings, tmp_path: Path, server: FeedServer, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the pool forced on from the first body, the stored articles are exactly what `read_body` gives
    in this process for the same bodies, and the bodies were parsed in other processes."""
    import os

    import collectors.workers as workers

    settings = configure(settings, tmp_path, serve_outlets(server, shared_data))
    monkeypatch.setattr(workers, "POOL_AFTER_BODIES", 0)
    seen: dict[str, object] = {}
    real_close = workers.Readers.close

    def spy(self):  # type: ignore[no-untyped-def]
        seen.update(pids=list(self.pids), bodies=self.bodies)
        real_close(self)

    monkeypatch.setattr(workers.Readers, "close", spy)
    summary = collect(settings, run_id="pool", now=NOW)
    assert (summary.ok, summary.errors) == (len(OUTLETS), 0)
    assert seen["bodies"] == len(OUTLETS) and seen["pids"] and os.getpid() not in seen["pids"]  # type: ignore[operator]

    expected: dict[str, workers.NormalisedArticle] = {}
    with session_scope(settings) as session:
        feeds = {feed.url: feed for feed in session.scalars(select(Feed))}
        for path, (file, _language) in sorted(OUTLETS.items()):
            feed = next(f for url, f in feeds.items() if url.endswith(path))
            fields = workers.FeedFields(id=feed.id, url=feed.url, name=feed.name, language=feed.language)
            body = (shared_data / "feeds" / "outlets" / file).read_bytes()
            reading = workers.read_body(fields, body, feed.url, "application/rss+xml; charset=utf-8",
                                        settings.max_items_per_feed, NOW)
            for article in reading.articles:
                expected.setdefault(article.id, article)
        stored = {a.id: a for a in session.scalars(select(Article))}
    assert set(stored) == set(expected)
    for article_id, article in expected.items():
        row = stored[article_id]
        assert (row.url, row.canonical_url, row.guid, row.title, row.summary, row.content, row.language,
                row.published_at, row.content_hash, row.fetched_at) == (
            article.url, article.canonical_url, article.guid, article.title, article.summary, article.content,
            article.language, article.published_at, article.content_hash, article.fetched_at)


def read_all(readers, jobs):  # type: ignore[no-untyped-def]
    import asyncio

    async def run():  # type: ignore[no-untyped-def]
        async with readers:
            return [await readers.read(*job) for job in jobs]

    return asyncio.run(run())


def test_the_pool_classifies_bodies_as_the_process_does(shared_data: Path) -> None:
    """Errors (FeedError classes and messages), counts and articles are the same through the pool."""
    from collectors.workers import FeedFields, Readers, read_body
    from feedserver import BILLION_LAUGHS, HTML_PAGE

    fields = FeedFields(id=1, url="https://outlet.example/rss", name="outlet", language="en")
    bodies = [
        ((shared_data / "feeds" / "outlets" / "en" / "wsj_world.xml").read_bytes(), "application/rss+xml"),
        (HTML_PAGE, "text/html"),
        (BILLION_LAUGHS, "application/xml"),
        (bytes(range(256)) * 40, "application/octet-stream"),
        (b"   ", None),
        (b'{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [{"id": "1", '
         b'"url": "https://outlet.example/1", "title": "One"}]}', "application/feed+json"),
    ]
    jobs = [(fields, body, fields.url, content_type, 200, NOW) for body, content_type in bodies]
    readers = Readers(pool_after=0, workers=2)
    through_pool = read_all(readers, jobs)
    assert readers.pids and readers.bodies == len(jobs)
    assert through_pool == [read_body(*job) for job in jobs]
    assert [r.error_class for r in through_pool] == [
        None, errors.NOT_A_FEED, errors.XML_ENTITIES, through_pool[3].error_class, errors.NOT_A_FEED, None]
    assert through_pool[0].items_seen == 70 and len(through_pool[5].articles) == 1


def test_a_dead_worker_sends_the_run_back_to_in_process_parsing(shared_data: Path) -> None:
    """A worker killed mid-run (out of memory, say) breaks the pool: the body it had and every later one are
    parsed in this process, with the same result."""
    import asyncio
    import os
    import signal

    from collectors.workers import FeedFields, Readers, read_body

    fields = FeedFields(id=1, url="https://outlet.example/rss", name="outlet", language="de")
    body = (shared_data / "feeds" / "outlets" / "de" / "tagesschau.xml").read_bytes()
    job = (fields, body, fields.url, "application/rss+xml", 200, NOW)
    readers = Readers(pool_after=0, workers=2)

    async def run():  # type: ignore[no-untyped-def]
        async with readers:
            first = await readers.read(*job)
            for pid in readers.pids:
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.2)
            return first, await readers.read(*job), await readers.read(*job)

    results = asyncio.run(run())
    assert readers.pool_failed and readers.pool is None
    assert list(results) == [read_body(*job)] * 3 and results[0].items_seen == 40


def test_a_written_outcome_is_not_held_for_the_rest_of_the_run(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An outcome (a feed's parsed articles) is freed once its batch is written: at a million articles, the
    outcomes held until the end of the run were most of the process's memory. (The batch written last may
    still be held for a moment by the thread that wrote it, which lets go of its work after handing back the
    result.)"""
    import gc
    import weakref

    import collectors.collect as collect_module

    written: list[weakref.ref] = []
    alive_at_write: list[int] = []
    real_write = collect_module.write_outcomes

    def write_outcomes(settings_: Settings, run_id: str, batch: list, now: datetime):  # type: ignore[no-untyped-def]
        gc.collect()
        alive_at_write.append(sum(1 for ref in written if ref() is not None))
        written.extend(weakref.ref(outcome) for outcome in batch)
        return real_write(settings_, run_id, batch, now)

    monkeypatch.setattr(collect_module, "write_outcomes", write_outcomes)
    monkeypatch.setattr(collect_module, "BATCH_FEEDS", 2)
    monkeypatch.setattr(collect_module, "BATCH_MAX", 2)
    with FeedServer() as server:
        feeds = {f"feed-{i}": server.serve_bytes(f"/feed-{i}.xml", rss([(i, "Sun, 22 Feb 2026 07:00:00 GMT")]))
                 for i in range(8)}
        summary = collect(configure(settings, tmp_path, feeds, fetch_concurrency=1), run_id="run", now=NOW)
    assert (summary.ok, summary.new_articles) == (8, 8)
    assert len(alive_at_write) >= 3
    assert max(alive_at_write) <= 2, alive_at_write  # never more than the batch before (held: 0, 2, 4, 6)
