"""Dedup at the door (collectors.store): GUID, canonical URL and a same-source title hash within 7 days, and
edited entries updating their article, on real feed text (../shared/data/feeds/outlets) and a real state DB.

Entries are read from real feeds with the collectors' own parser, then re-listed the way outlets do: the
same item again, under a tracking parameter, under a changed link, re-published under a new URL, edited."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from collectors.normalise import (
    NormalisedArticle,
    normalise_entry,
    title_hash,
    title_key,
)
from collectors.parse import parse_feed
from collectors.store import new_or_changed, store_articles, store_articles_report
from core.db import downgrade, get_engine, session_scope, upgrade
from core.models import Article, Feed
from core.settings import Settings

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)
TAGESSCHAU = "de/tagesschau.xml"
DLF_KULTUR = "de/deutschlandfunk-kulturportal.xml"


def entries(shared_data: Path, name: str) -> list[Any]:
    path = shared_data / "feeds" / "outlets" / name
    return list(parse_feed(path.read_bytes(), url=f"https://feeds.example/{Path(name).name}").entries)


def variant(entry: Any, **fields: Any) -> Any:
    """The entry as the outlet lists it another time: some fields changed (`published`: a datetime)."""
    copied = copy.deepcopy(entry)
    published = fields.pop("published", None)
    if published is not None:
        copied["published_parsed"] = time.gmtime(published.timestamp())
    for name, value in fields.items():
        copied[name] = value
    return copied


@pytest.fixture
def feeds(settings: Settings) -> dict[str, Feed]:
    """Three feeds of two outlets' names: Tagesschau, Deutschlandfunk Kultur, and a second outlet."""
    made = {
        "tagesschau": Feed(name="tagesschau", url="https://feeds.example/tagesschau.xml", language="de"),
        "dlf": Feed(name="Deutschlandfunk Kultur", url="https://feeds.example/dlf.xml", language="de"),
        "other": Feed(name="Other outlet", url="https://feeds.example/other.xml", language="de"),
    }
    with session_scope(settings) as session:
        session.add_all(made.values())
        session.flush()
        session.expunge_all()
    return made


def normalise(items: list[Any], feed: Feed, fetched_at: datetime = NOW) -> list[NormalisedArticle]:
    return [normalise_entry(item, feed=feed, feed_language="de", fetched_at=fetched_at) for item in items]


def store(settings: Settings, articles: list[NormalisedArticle], now: datetime = NOW):  # type: ignore[no-untyped-def]
    with session_scope(settings) as session:
        return store_articles_report(session, articles, now)


def stored(settings: Settings) -> list[Article]:
    with session_scope(settings) as session:
        rows = list(session.scalars(select(Article).order_by(Article.published_at, Article.id)))
        session.expunge_all()
        return rows


@pytest.fixture
def statements(settings: Settings) -> Iterator[list[str]]:
    """SQL statements run against the state DB while the test runs (executemany counts once)."""
    seen: list[str] = []
    engine = get_engine(settings)

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    yield seen
    event.remove(engine, "before_cursor_execute", record)


def test_same_batch_twice_is_one_article_each_and_a_no_op(
    settings: Settings, feeds: dict[str, Feed], shared_data: Path, statements: list[str]
) -> None:
    batch = normalise(entries(shared_data, TAGESSCHAU), feeds["tagesschau"])
    assert len(batch) == 40
    first = store(settings, batch)
    assert len(first.new_ids) == 40 and first.updated_ids == []
    # one lookup, one INSERT for the whole batch
    assert statements.count("SELECT") == 1 and statements.count("INSERT") == 1

    before = {(a.id, a.updated_at, a.content_hash) for a in stored(settings)}
    statements.clear()
    again = store(settings, normalise(entries(shared_data, TAGESSCHAU), feeds["tagesschau"]), NOW + timedelta(hours=1))
    assert again.new_ids == [] and again.updated_ids == []
    assert again.duplicates == {"url": 40, "guid": 0, "title": 0}
    assert statements.count("INSERT") == 0 and statements.count("UPDATE") == 0 and statements.count("SELECT") == 1
    assert {(a.id, a.updated_at, a.content_hash) for a in stored(settings)} == before

    # the old public function still answers the new ids only
    with session_scope(settings) as session:
        assert store_articles(session, batch, NOW) == []


def test_the_duplicate_lookup_searches_the_indexes(settings: Settings, feeds: dict[str, Feed], shared_data: Path) -> None:
    """The lookup by GUID of the same feed and by title of the same source must search the indexes, never
    scan the table: a scan made each batch of a 10,000-feed first poll slower as the archive grew."""
    if get_engine(settings).dialect.name != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL picks plans by table statistics")
    store(settings, normalise(entries(shared_data, TAGESSCHAU), feeds["tagesschau"]))
    lookups: list[tuple[str, Any]] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT ARTICLES.ID"):
            lookups.append((statement, parameters))

    engine = get_engine(settings)
    event.listen(engine, "before_cursor_execute", record)
    try:
        store(settings, normalise(entries(shared_data, TAGESSCHAU), feeds["tagesschau"]), NOW + timedelta(hours=1))
    finally:
        event.remove(engine, "before_cursor_execute", record)
    (statement, parameters), = lookups
    assert "guid_hash" in statement and "title_hash" in statement
    with engine.connect() as connection:
        plan = [row[3] for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    assert not [step for step in plan if step.startswith("SCAN articles")], plan
    assert any("ix_articles_guid" in step for step in plan) and any("ix_articles_title" in step for step in plan)


def test_tracking_parameter_and_fragment_give_the_same_article(
    settings: Settings, feeds: dict[str, Feed], shared_data: Path
) -> None:
    entry = entries(shared_data, TAGESSCHAU)[0]
    store(settings, normalise([entry], feeds["tagesschau"]))
    republished = variant(entry, link=entry["link"] + "?utm_source=twitter&utm_medium=social#comments", id="x-1")
    report = store(settings, normalise([republished], feeds["tagesschau"]))
    assert report.new_ids == [] and report.duplicates["url"] == 1
    assert len(stored(settings)) == 1


def test_same_guid_with_a_changed_link_is_one_article(
    settings: Settings, feeds: dict[str, Feed], shared_data: Path
) -> None:
    entry = entries(shared_data, TAGESSCHAU)[3]
    first = store(settings, normalise([entry], feeds["tagesschau"]))
    moved = variant(entry, link=entry["link"].replace(".html", "-korrigiert.html"), title="Ein ganz anderer Titel hier")
    moved["summary"] = entry["summary"]
    report = store(settings, normalise([moved], feeds["tagesschau"], NOW + timedelta(hours=2)), NOW + timedelta(hours=2))
    assert report.new_ids == []
    # the title changed: an edit of the entry, so the article (same id as before) is updated
    assert report.updated_ids == first.new_ids
    (article,) = stored(settings)
    assert article.title == "Ein ganz anderer Titel hier" and article.canonical_url == entry["link"]
    # listed once more with that link: unchanged now, a duplicate by GUID
    again = store(settings, normalise([moved], feeds["tagesschau"]))
    assert (again.new_ids, again.updated_ids, again.duplicates["guid"]) == ([], [], 1)

    # a GUID is per feed: another outlet's entry with that GUID and that new link is an article of its own
    assert len(store(settings, normalise([moved], feeds["other"])).new_ids) == 1


def test_a_guid_shared_by_every_item_is_not_trusted(
    settings: Settings, feeds: dict[str, Feed], shared_data: Path
) -> None:
    broken = [variant(item, id="https://www.tagesschau.de/") for item in entries(shared_data, TAGESSCHAU)[:10]]
    report = store(settings, normalise(broken, feeds["tagesschau"]))
    assert len(report.new_ids) == 10 and report.duplicates == {"url": 0, "guid": 0, "title": 0}


def test_real_republication_under_a_new_url_is_one_article(
    settings: Settings, feeds: dict[str, Feed], shared_data: Path
) -> None:
    """Deutschlandfunk's feed lists "Das Chaos bändigen - Das Gespenst der Ordnung" under two URLs (the repeat
    broadcast): one article."""
    batch = normalise(entries(shared_data, DLF_KULTUR), feeds["dlf"])
    twins = [a for a in batch if a.title == "Das Chaos bändigen - Das Gespenst der Ordnung"]
    assert len(twins) == 2 and twins[0].canonical_url != twins[1].canonical_url and twins[0].guid != twins[1].guid
    report = store(settings, batch)
    assert report.duplicates["title"] >= 1
    assert [a.canonical_url for a in stored(settings) if a.title == twins[0].title] == [twins[0].canonical_url]
    assert len(report.new_ids) == len({a.id for a in batch}) - report.duplicates["title"]


@pytest.mark.parametrize(
    ("feed", "days_later", "articles"),
    [("tagesschau", 3, 1), ("tagesschau", -6, 1), ("tagesschau", 8, 2), ("other", 1, 2)],
    ids=["same-source-3-days", "same-source-6-days-earlier", "same-source-8-days", "other-source"],
)
def test_same_title_within_seven_days_from_the_same_source(
    settings: Settings, feeds: dict[str, Feed], shared_data: Path, feed: str, days_later: int, articles: int
) -> None:
    entry = entries(shared_data, TAGESSCHAU)[5]
    first = normalise([entry], feeds["tagesschau"])[0]
    store(settings, [first])
    when = first.published_at + timedelta(days=days_later)
    again = variant(entry, link="https://www.tagesschau.de/neu/" + first.id + ".html", id="new-guid", published=when)
    later = normalise([again], feeds[feed], max(NOW, when))
    report = store(settings, later, max(NOW, when))
    assert len(stored(settings)) == articles
    assert report.duplicates["title"] == 2 - articles


def test_short_titles_are_not_compared() -> None:
    assert title_key("Das Chaos bändigen - Das Gespenst der Ordnung") == "das chaos bandigen das gespenst der ordnung"
    assert title_hash("Presseschau aus deutschen Zeitungen") is None  # a daily column: 4 words
    assert title_hash("RŪDNINKAI: Brigade arrives, first troops!") == title_hash("Rūdninkai brigade arrives first troops")


def test_edited_entry_updates_its_article(settings: Settings, feeds: dict[str, Feed], shared_data: Path) -> None:
    items = entries(shared_data, TAGESSCHAU)[:3]
    first = store(settings, normalise(items, feeds["tagesschau"]))
    target = first.new_ids[1]
    # the article went through enrichment and the archive
    with session_scope(settings) as session:
        session.execute(
            update(Article).values(enriched_at=NOW, indexed_at=NOW, embedding=b"\0" * 8, embedding_model="m")
        )
    original = {a.id: a for a in stored(settings)}[target]

    edited = list(items)
    edited[1] = variant(items[1], summary=items[1]["summary"] + " Update: Die Zahl stieg auf 37.000.")
    later = NOW + timedelta(hours=3)
    report = store(settings, normalise(edited, feeds["tagesschau"], later), later)
    assert report.new_ids == [] and report.updated_ids == [target]
    assert report.duplicates == {"url": 2, "guid": 0, "title": 0}

    articles = {a.id: a for a in stored(settings)}
    article = articles[target]
    assert article.summary.endswith("Die Zahl stieg auf 37.000.") and article.content_hash != original.content_hash
    assert article.updated_at == later and article.fetched_at == NOW
    # picked up again by enrichment (new embedding from the new text) and then by the archive
    assert article.enriched_at is None and article.embedding_model is None and article.embedding == b"\0" * 8
    assert article.indexed_at == NOW != article.updated_at
    unchanged = [a for a in articles.values() if a.id != target]
    assert all(a.updated_at == NOW and a.enriched_at == NOW for a in unchanged)

    # the same edit listed again is no update
    again = store(settings, normalise(edited, feeds["tagesschau"], later), later + timedelta(hours=1))
    assert again.updated_ids == [] and again.duplicates["url"] == 3
    assert {a.id: a for a in stored(settings)}[target].updated_at == later


def test_an_edit_keeps_a_fetched_page(settings: Settings, feeds: dict[str, Feed], shared_data: Path) -> None:
    entry = entries(shared_data, TAGESSCHAU)[0]
    article = normalise([entry], feeds["tagesschau"])[0]
    article.content, article.text_source, article.text_length = "Der ganze Artikel. " * 100, "fulltext", 1900
    store(settings, [article])
    edited = variant(entry, title="Syrische Übergangsregierung benennt neuen Außenminister")
    report = store(settings, normalise([edited], feeds["tagesschau"]), NOW + timedelta(hours=1))
    assert len(report.updated_ids) == 1
    (row,) = stored(settings)
    assert row.title == "Syrische Übergangsregierung benennt neuen Außenminister"
    assert row.text_source == "fulltext" and row.content == "Der ganze Artikel. " * 100 and row.text_length == 1900


def test_new_or_changed_selects_what_is_worth_a_page_fetch(
    settings: Settings, feeds: dict[str, Feed], shared_data: Path
) -> None:
    items = entries(shared_data, TAGESSCHAU)[:4]
    store(settings, normalise(items[:2], feeds["tagesschau"]))
    listed = [items[0], variant(items[1], summary="Neu gefasst: " + items[1]["summary"]), items[2], items[3], items[2]]
    batch = normalise(listed, feeds["tagesschau"])
    with session_scope(settings) as session:
        chosen = new_or_changed(session, batch)
        assert [a.canonical_url for a in chosen] == [items[1]["link"], items[2]["link"], items[3]["link"]]
        assert session.scalar(select(func.count()).select_from(Article)) == 2  # nothing written


def test_text_source_of_feed_entries(settings: Settings, feeds: dict[str, Feed], shared_data: Path) -> None:
    store(settings, normalise(entries(shared_data, TAGESSCHAU), feeds["tagesschau"]))
    for article in stored(settings):
        assert article.text_source in ("feed", "summary") and not article.paywall_suspected
        assert article.text_length == len(article.content or article.summary)
        assert article.guid_hash and article.title_hash == title_hash(article.title)
    assert sum(1 for article in stored(settings) if article.title_hash) > 30  # the others: 4 words or fewer


def test_migration_fills_the_keys_of_stored_articles(tmp_path: Path, shared_data: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", feeds_file=tmp_path / "none.yaml")
    upgrade(settings, "0004")
    item = normalise(entries(shared_data, TAGESSCHAU)[:1], Feed(id=None, name="tagesschau", url="x"))[0]
    with get_engine(settings).begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO articles (id, source, url, canonical_url, guid, title, summary, content, published_at, "
            "fetched_at, updated_at, content_hash, relevant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
            (item.id, item.source, item.url, item.canonical_url, item.guid, item.title, item.summary, item.content,
             "2024-12-21 18:25:31", "2025-01-15 12:00:00", "2025-01-15 12:00:00", item.content_hash),
        )
    upgrade(settings)
    (article,) = stored(settings)
    assert (article.guid_hash, article.title_hash) == (item.guid_hash, item.title_hash)
    assert article.text_source == item.text_source and article.text_length == item.text_length
    assert article.paywall_suspected is False
    downgrade(settings, "0004")
    upgrade(settings)
