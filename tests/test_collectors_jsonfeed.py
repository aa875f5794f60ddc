"""JSON Feed 1.0/1.1: read into the same entries as RSS, through the same parse and normalise path."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from collectors.errors import FeedError
from collectors.jsonfeed import looks_like_json_feed, parse_json_feed
from collectors.normalise import normalise_entry
from collectors.parse import parse_feed
from core.models import Feed

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
FEED = Feed(id=7, name="Baltic Wire", url="https://balticwire.example/feed.json", language="en")

FEED_11 = {
    "version": "https://jsonfeed.org/version/1.1",
    "title": "Baltic Wire",
    "home_page_url": "https://balticwire.example/",
    "feed_url": "https://balticwire.example/feed.json",
    "language": "en-GB",
    "items": [
        {
            "id": "https://balticwire.example/2026/brigade-4800",
            "url": "https://balticwire.example/2026/brigade-4800?utm_source=jsonfeed",
            "title": "Germany's brigade in Lithuania reaches 4,800 troops",
            "content_html": "<p>The Bundeswehr's <b>Panzerbrigade 45</b> in Rūdninkai will have 4,800 soldiers "
                            "by 2027.</p><script>alert(1)</script>",
            "summary": "Panzerbrigade 45 grows to 4,800 soldiers.",
            "date_published": "2026-11-24T08:30:00+01:00",
            "date_modified": "2026-11-24T09:00:00Z",
            "authors": [{"name": "Desk"}],
        },
        {
            "id": "b-2",
            "url": "/2026/rukla",
            "content_text": "Lithuania opens a second base at Rukla for the German brigade, troop target now 5,000.",
            "date_published": "2026-11-24T10:00:00Z",
            "language": "lt",
        },
        {"id": "tag:balticwire.example,2026:no-link", "title": "An item with nothing to link to"},
        "not an object",
    ],
}

FEED_10 = {
    "version": "https://jsonfeed.org/version/1",
    "title": "Old style",
    "items": [{"id": 1234, "external_url": "https://other.example/a", "title": "Numeric id",
               "date_published": "2026-11-23T06:00:00-05:00"}],
}


def _articles(body: bytes, content_type: str | None = "application/feed+json"):
    parsed = parse_feed(body, url=FEED.url, content_type=content_type)
    out = []
    for entry in parsed.entries:
        try:
            out.append(normalise_entry(entry, feed=FEED, feed_language=parsed.language, fetched_at=NOW))
        except Exception as exc:  # noqa: BLE001 - SkippedEntry, checked below
            out.append(exc)
    return parsed, out


def test_json_feed_11_becomes_articles():
    parsed, articles = _articles(json.dumps(FEED_11).encode())
    assert (parsed.version, parsed.title, parsed.language) == ("json11", "Baltic Wire", "en")
    first, second, no_link = articles[0], articles[1], articles[2]
    assert first.title == "Germany's brigade in Lithuania reaches 4,800 troops"
    assert first.canonical_url == "https://balticwire.example/2026/brigade-4800"  # tracking parameter dropped
    assert first.published_at == datetime(2026, 11, 24, 7, 30, tzinfo=timezone.utc)
    assert first.summary == "Panzerbrigade 45 grows to 4,800 soldiers."
    assert "Rūdninkai" in first.content and "alert(1)" not in first.content and "<b>" not in first.content
    assert second.url == "https://balticwire.example/2026/rukla"  # relative link resolved against the feed
    assert second.language == "lt" and second.title.startswith("Lithuania opens a second base")
    assert type(no_link).__name__ == "SkippedEntry"
    assert len(articles) == 3  # the string item is no item


def test_json_feed_10_with_numeric_id_and_external_url():
    parsed, articles = _articles(json.dumps(FEED_10).encode(), content_type="application/json")
    assert parsed.version == "json10"
    assert articles[0].guid == "1234" and articles[0].url == "https://other.example/a"
    assert articles[0].published_at == datetime(2026, 11, 23, 11, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("body, error_class", [
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": [', "parse_error"),
    (b'{"name": "package.json", "items": []}', "not_a_feed"),
    (b'{"version": "https://jsonfeed.org/version/1.1", "items": {"a": 1}}', "parse_error"),
    (b"[" * 100_000 + b"]" * 100_000, "parse_error"),  # nesting deep enough to exhaust the recursion limit
    (b'\xff\xfe{"version": 1}', "parse_error"),
])
def test_broken_json_is_classified(body, error_class):
    with pytest.raises(FeedError) as caught:
        parse_feed(body, url=FEED.url, content_type="application/feed+json")
    assert caught.value.error_class == error_class


def test_detection():
    assert looks_like_json_feed(b'  {"version": ""}')
    assert looks_like_json_feed(b'\xef\xbb\xbf{"version": ""}', "text/xml")
    assert looks_like_json_feed(b"garbage", "application/feed+json; charset=utf-8")
    assert not looks_like_json_feed(b"<rss/>", "application/json")  # RSS served with a JSON type is RSS
    assert not looks_like_json_feed(b"<?xml version='1.0'?><rss/>", "application/rss+xml")


def test_parse_json_feed_directly_skips_wrong_types():
    feed, entries, version = parse_json_feed(json.dumps({
        "version": "https://jsonfeed.org/version/1.1", "title": 5,
        "items": [{"id": True, "url": ["x"], "title": {"a": 1}, "date_published": "yesterday"}],
    }).encode())
    assert feed["title"] == "" and version == "json11"
    assert entries == [{}]
