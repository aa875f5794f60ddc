"""Full text (collectors.fulltext): real article pages (../shared/data/extraction/html) served on 127.0.0.1,
fetched with the feeds' own client and limiter, extracted, applied to the article and stored; the ways a page
fails (404, no answer in time, too large, not HTML, a forbidden address) fall back to the feed's text with the
error class recorded; pages of one host obey the per-host limit, together with that host's feed."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from collect_support import rss
from feedserver import FeedServer, Meter
from sqlalchemy import select

from collectors import errors
from collectors.extract import MIN_BODY_CHARS
from collectors.fulltext import (
    FullText,
    apply_fulltext,
    articles_to_fetch,
    fetch_fulltext,
    fetch_fulltexts,
    page_settings,
)
from collectors.http import fetch_feed, make_client
from collectors.normalise import NormalisedArticle, normalise_entry
from collectors.politeness import Limiter
from collectors.store import store_articles_report
from core.db import session_scope
from core.models import Article, Feed
from core.settings import Settings

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=timezone.utc)
# An AP story (ctpost.com): 3,166 characters of body in the benchmark's ground truth.
AP_PAGE = "a6968f427cdb786531cfb326518e674bd8b48af94df7c5c6165cdf40e944357a"
# A WSJ page served to a non-subscriber: a teaser of a few sentences, the page declares itself not free.
WSJ_TEASER = "042bb7b5fedab6eac7db576522b89b93904c237d344bcbe14a6a5ab7f7335856"
HTML = "text/html; charset=utf-8"


def page(shared_data: Path, key: str) -> bytes:
    return gzip.decompress((shared_data / "extraction" / "html" / f"{key}.html.gz").read_bytes())


def ground_truth(shared_data: Path, key: str) -> str:
    return json.loads((shared_data / "extraction" / "ground-truth.json").read_text())[key]["articleBody"]


def page_settings_for_tests(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "var_dir": tmp_path / "var",
        "feeds_file": tmp_path / "none.yaml",
        "allow_private_addresses": True,  # the servers are on 127.0.0.x
        "http_connect_timeout": 1.0,
        "http_read_timeout": 1.0,
        "http_total_timeout": 1.5,
        "fetch_concurrency": 4,
        "fetch_per_host": 2,
        "fetch_host_delay_seconds": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


def article(url: str, summary: str, title: str = "Article under test", feed: Feed | None = None) -> NormalisedArticle:
    """An article of a feed entry linking to `url`, as `normalise_entry` makes it."""
    feed = feed or Feed(id=None, name="Outlet", url="https://outlet.example/rss", language="en", fulltext=True)
    entry = {"title": title, "link": url, "summary": summary, "id": url}
    return normalise_entry(entry, feed=feed, feed_language="en", fetched_at=NOW)


def fetch(settings: Settings, item: NormalisedArticle, limiter: Limiter | None = None) -> FullText:
    async def go() -> FullText:
        async with make_client(settings) as client:
            return await fetch_fulltext(client, item, settings=settings, limiter=limiter)

    return asyncio.run(go())


@pytest.fixture
def server() -> Any:
    with FeedServer() as running:
        yield running


def test_the_page_body_is_used_and_stored(settings: Settings, server: FeedServer, shared_data: Path) -> None:
    body = ground_truth(shared_data, AP_PAGE)
    url = server.serve_bytes("/news/deval-patrick.html", page(shared_data, AP_PAGE), content_type=HTML)
    url += "?utm_source=rss"  # the link as the feed gives it
    lead = body.split(".")[0] + "."
    settings = settings.model_copy(update={"allow_private_addresses": True, "fetch_host_delay_seconds": 0.0})
    with session_scope(settings) as session:
        feed = Feed(name="CT Post", url="https://www.ctpost.com/rss", language="en", fulltext=True)
        session.add(feed)
        session.flush()
        session.expunge(feed)
    item = article(url, lead, title="Deval Patrick takes nascent 2020 campaign to South Carolina", feed=feed)
    assert (item.text_source, item.text_length) == ("summary", len(lead))

    result = fetch(settings, item)
    assert result.method == "fulltext" and result.error_class is None and result.http_status == 200
    assert result.text.startswith("COLUMBIA, S.C. (AP) — About a dozen black female small-business owners")
    assert result.length == len(result.text) > 2500 and not result.paywall_suspected
    # the reference body's paragraphs are in the extracted text
    paragraphs = [p for p in body.split("\n") if len(p) > 80]
    assert sum(p[:60] in result.text for p in paragraphs) >= 0.8 * len(paragraphs)

    assert articles_to_fetch(settings, [item]) == [item]  # not stored yet
    apply_fulltext(item, result)
    assert (item.content, item.text_source, item.text_length) == (result.text, "fulltext", result.length)
    with session_scope(settings) as session:
        assert store_articles_report(session, [item], NOW).new_ids == [item.id]
    with session_scope(settings) as session:
        stored = session.scalars(select(Article)).one()
        assert stored.text_source == "fulltext" and stored.text_length == result.length
        assert stored.content == result.text and stored.summary == lead
        assert stored.paywall_suspected is False and stored.fulltext_error is None
    # the next poll lists the entry again: no second page fetch
    again = article(url, lead, title="Deval Patrick takes nascent 2020 campaign to South Carolina", feed=feed)
    assert articles_to_fetch(settings, [again]) == []


def test_a_teaser_page_is_flagged_as_paywalled(tmp_path: Path, server: FeedServer, shared_data: Path) -> None:
    url = server.serve_bytes("/articles/so-many-ways-to-play.html", page(shared_data, WSJ_TEASER), content_type=HTML)
    settings = page_settings_for_tests(tmp_path)
    summary = "Gaming used to be so simple."
    result = fetch(settings, article(url, summary))
    assert result.method == "fulltext" and result.paywall_suspected
    assert result.length < 3 * MIN_BODY_CHARS  # the article runs to thousands of characters; the page gave a teaser

    # the teaser is still more than the feed gave: it is kept, flagged
    item = apply_fulltext(article(url, summary), result)
    assert (item.text_source, item.paywall_suspected, item.content) == ("fulltext", True, result.text)
    # a feed whose own text is longer than the teaser keeps its text; the flag says why the page was not used
    long_summary = " ".join(["The feed's own summary of the piece, longer than the teaser on the page."] * 12)
    item = apply_fulltext(article(url, long_summary), result)
    assert (item.text_source, item.paywall_suspected, item.content) == ("summary", True, None)
    assert item.text_length == len(long_summary)


@pytest.mark.parametrize(
    ("case", "error_class"),
    [
        ("404", errors.HTTP_4XX),
        ("no answer in time", errors.TIMEOUT),
        ("too large", errors.TOO_LARGE),
        ("not html", "not_html"),
        ("forbidden address", errors.FORBIDDEN_ADDRESS),
    ],
)
def test_a_failed_page_falls_back_to_the_summary(
    tmp_path: Path, server: FeedServer, shared_data: Path, case: str, error_class: str
) -> None:
    settings = page_settings_for_tests(tmp_path, http_max_bytes=300_000)
    if case == "404":
        url = server.url("/gone.html")
    elif case == "no answer in time":
        url = server.slow("/slow.html", page(shared_data, AP_PAGE), delay=5.0, content_type=HTML)
    elif case == "too large":
        url = server.serve_bytes("/big.html", page(shared_data, WSJ_TEASER), content_type=HTML)  # 597 kB
    elif case == "not html":
        url = server.serve_bytes("/report.pdf", b"%PDF-1.7\n" + bytes(range(256)) * 40, content_type="application/pdf")
    else:
        url = server.serve_bytes("/internal.html", page(shared_data, AP_PAGE), content_type=HTML)
        settings = settings.model_copy(update={"allow_private_addresses": False})
    summary = "About a dozen black female small-business owners were gathered in a South Carolina restaurant."

    started = time.monotonic()
    result = fetch(settings, article(url, summary))
    assert time.monotonic() - started < 4  # the total deadline (1.5 s) holds for pages too
    assert result.method == "summary" and result.text == summary and result.length == len(summary)
    assert result.error_class == error_class and not result.paywall_suspected

    item = apply_fulltext(article(url, summary), result)
    assert (item.content, item.text_source, item.text_length) == (None, "summary", len(summary))
    assert item.fulltext_error == error_class and item.paywall_suspected is False


def test_the_page_size_cap_is_the_extractors_at_most() -> None:
    assert page_settings(Settings(http_max_bytes=50_000_000)).http_max_bytes == 5_000_000
    small = Settings(http_max_bytes=100_000)
    assert page_settings(small) is small


def test_pages_of_one_host_share_its_limit_with_its_feed(tmp_path: Path, shared_data: Path) -> None:
    """Three pages and the feed of one host, one page of another: one request at a time to the first host
    (`fetch_per_host` 1), starts spaced by the host delay, the other host served meanwhile."""
    delay, host_delay = 0.4, 0.15
    meter = Meter()
    settings = page_settings_for_tests(
        tmp_path, fetch_per_host=1, fetch_host_delay_seconds=host_delay, http_total_timeout=8.0, http_read_timeout=5.0,
        http_connect_timeout=5.0,  # generous: a loaded machine must not turn this into a timeout test
    )
    body = page(shared_data, AP_PAGE)
    with FeedServer(meter=meter) as busy, FeedServer(host="127.0.0.2", meter=meter) as other:
        feed_url = busy.slow("/rss.xml", rss([(1, "Wed, 15 Jan 2025 10:00:00 GMT")]), delay)
        items = [article(busy.slow(f"/p{i}.html", body, delay, content_type=HTML), "x") for i in range(3)]
        # the other host answers slowly: it overlaps with the busy host's queue whatever the scheduling
        items.append(article(other.slow("/o.html", body, 3 * delay, content_type=HTML), "x"))

        async def go() -> list[FullText]:
            limiter = Limiter(concurrency=settings.fetch_concurrency, per_host=settings.fetch_per_host,
                              host_delay=settings.fetch_host_delay_seconds)
            async with make_client(settings) as client:
                feed, pages = await asyncio.gather(
                    fetch_feed(client, feed_url, settings=settings, limiter=limiter),
                    fetch_fulltexts(client, items, settings=settings, limiter=limiter),
                )
            assert feed.status == "ok"
            return pages

        started = time.monotonic()
        results = asyncio.run(go())
        elapsed = time.monotonic() - started
        starts = sorted(r.at for r in busy.requests)

    assert [r.method for r in results] == ["fulltext"] * 4, [(r.error_class, r.error_message) for r in results]
    assert all(item.text_source == "fulltext" for item in items)  # applied
    assert busy.meter.max_in_flight == 1 and len(starts) == 4
    assert meter.max_in_flight == 2  # the other host was not queued behind the busy one
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= delay * 0.9, gaps  # one after the other: each waited for the previous answer
    assert elapsed >= 4 * delay * 0.95, elapsed


def test_collect_fetches_the_pages_of_a_fulltext_feed(settings: Settings, server: FeedServer, shared_data: Path,
                                                      tmp_path: Path) -> None:
    """The collect stage, end to end: a `fulltext: true` feed's article gets the extracted page as its text;
    the same item from a feed without it keeps the feed text; a second poll fetches no page again."""
    from collect_support import configure

    from collectors.collect import collect

    page_url = server.serve_bytes("/news/deval-patrick.html", page(shared_data, AP_PAGE), content_type=HTML)
    item = (f"<item><title>Deval Patrick takes nascent 2020 campaign to South Carolina</title><link>{page_url}</link>"
            "<description>About a dozen black female small-business owners met Patrick.</description>"
            "<pubDate>Mon, 02 Mar 2026 07:00:00 GMT</pubDate></item>")
    plain_item = item.replace("deval-patrick.html", "other.html").replace("Deval Patrick takes", "Patrick, again,")
    feed_url = server.serve_bytes("/full.xml", f"<rss version='2.0'><channel><title>CT Post</title>{item}</channel></rss>".encode())
    plain_url = server.serve_bytes("/plain.xml", f"<rss version='2.0'><channel><title>X</title>{plain_item}</channel></rss>".encode())
    settings = configure(settings, tmp_path, {"CT Post": {"url": feed_url, "fulltext": True}, "Plain": plain_url},
                         http_total_timeout=5.0, http_read_timeout=2.0)
    summary = collect(settings, run_id="run-1", now=NOW)
    assert (summary.ok, summary.new_articles) == (2, 2)
    with session_scope(settings) as session:
        stored = {a.source: a for a in session.scalars(select(Article))}
    full, plain = stored["CT Post"], stored["Plain"]
    assert full.text_source == "fulltext" and full.content.startswith("COLUMBIA, S.C. (AP)")
    assert full.text_length == len(full.content) > 2500 and full.fulltext_error is None
    assert plain.text_source == "summary" and plain.content is None
    page_requests = len(server.requests_to("/news/deval-patrick.html"))
    assert page_requests == 1 and not server.requests_to("/news/other.html")

    collect(settings, run_id="run-2", now=NOW.replace(year=NOW.year + 1))
    assert len(server.requests_to("/news/deval-patrick.html")) == page_requests  # known article: no refetch
