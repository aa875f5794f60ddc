"""Unit cases of the collectors' pure functions: URLs, HTML to text, dates, feed parsing, entry normalisation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from collectors import errors
from collectors.errors import FeedError
from collectors.normalise import SkippedEntry, canonical_url, entry_datetime, html_to_text, normalise_entry
from collectors.parse import parse_feed
from collectors.xmlsafety import declares_entities
from core.ids import article_id
from core.models import Feed
from feedserver import BILLION_LAUGHS, HTML_PAGE

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
FEED = Feed(id=7, name="Test Outlet", url="https://news.example.org/rss", language="lt")


def rss(items: str, *, channel: str = "", language: str | None = None) -> bytes:
    lang = f"<language>{language}</language>" if language else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>https://news.example.org/</link>{lang}{channel}{items}</channel></rss>"
    ).encode("utf-8")


def one_entry(item: str, **kwargs: object):  # type: ignore[no-untyped-def]
    parsed = parse_feed(rss(f"<item>{item}</item>", **kwargs), url=FEED.url)  # type: ignore[arg-type]
    assert len(parsed.entries) == 1
    return parsed, parsed.entries[0]


# --- canonical_url -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://WWW.LRT.LT/en/news-in-english/19/123?utm_source=rss&utm_medium=feed",
         "https://www.lrt.lt/en/news-in-english/19/123"),
        ("http://Example.COM:80/a/B?x=1#frag", "http://example.com/a/B?x=1"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8443/p", "https://example.com:8443/p"),
        ("https://example.com/p?b=2&fbclid=XYZ&a=1&gclid=1&mc_cid=c&mc_eid=e&ocid=o&ref=rss&cmpid=c",
         "https://example.com/p?b=2&a=1"),
        ("https://example.com/p?at_medium=RSS&at_campaign=KARANGA&id=5&_ga=1.2&yclid=3&igshid=4",
         "https://example.com/p?id=5"),
        ("https://example.com/p?UTM_Source=x&q=%C3%BC+x&empty=", "https://example.com/p?q=%C3%BC+x&empty="),
        ("https://www.spiegel.de/politik/windpark-a-c57b8a3b#ref=rss", "https://www.spiegel.de/politik/windpark-a-c57b8a3b"),
        ("  https://example.com/p?reference=keep  ", "https://example.com/p?reference=keep"),
        ("https://user@Example.com./x", "https://user@example.com/x"),
        ("http://[2001:DB8::1]:80/x", "http://[2001:db8::1]/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_canonical_url_keeps_parameter_order_and_gives_one_id() -> None:
    a = canonical_url("https://example.com/a?z=1&a=2&utm_campaign=x")
    b = canonical_url("https://EXAMPLE.com/a?z=1&a=2#top")
    assert a == b == "https://example.com/a?z=1&a=2"
    assert article_id(a) == article_id(b)
    assert canonical_url("https://example.com/a?a=2&z=1") != a


# --- html_to_text --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("markup", "expected"),
    [
        ("<p>Vokietijos <b>brigada</b> Lietuvoje</p><p>Rūdninkai</p>", "Vokietijos brigada Lietuvoje Rūdninkai"),
        ("<script>alert('x')</script><style>p{color:red}</style>Soldaten &amp; Panzer&nbsp;45", "Soldaten & Panzer 45"),
        ('<img src="x" onerror="alert(1)">Bild<br>Text', "Bild Text"),
        ("<ul><li>one</li><li>two</li></ul>", "one two"),
        ("  plain\n\n text \t with   spaces ", "plain text with spaces"),
        ("&lt;p&gt;escaped &amp;amp; twice&lt;/p&gt;", "escaped & twice"),
        ("<!-- comment --><p>after</p>", "after"),
        ("<html><head><title>T</title></head><body><p>Body</p></body></html>", "Body"),
        ("Москва &#8212; Калининград", "Москва — Калининград"),
        ("bad\x00byte<p>ok</p>", "bad byte ok"),
        ("", ""),
        (None, ""),
    ],
)
def test_html_to_text(markup: str | None, expected: str) -> None:
    assert html_to_text(markup) == expected


def test_html_to_text_caps_length_at_a_word() -> None:
    text = html_to_text("<p>" + "word " * 10000 + "</p>", max_chars=100)
    assert len(text) <= 100
    assert text.endswith("…") and "wor…" not in text


def test_html_to_text_survives_deep_nesting() -> None:
    assert html_to_text("<div>" * 50000 + "x") in ("", "x")


# --- xml safety and parse_feed ----------------------------------------------------------------------------
def test_entity_declarations_are_detected() -> None:
    assert declares_entities(BILLION_LAUGHS)
    assert declares_entities(BILLION_LAUGHS.decode().encode("utf-16"))
    external = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss>&x;</rss>'
    assert declares_entities(external)
    assert not declares_entities(rss("<item><title>&lt;!ENTITY in text</title></item>"))
    assert not declares_entities(b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
                                 b'"http://my.netscape.com/publish/formats/rss-0.91.dtd"><rss version="0.91"/>')
    assert not declares_entities(b"<!-- <!ENTITY in a comment --><rss/>")


def test_billion_laughs_is_refused_fast() -> None:
    with pytest.raises(FeedError) as info:
        parse_feed(BILLION_LAUGHS, url="http://127.0.0.1/x")
    assert info.value.error_class == errors.XML_ENTITIES


@pytest.mark.parametrize(
    ("body", "content_type", "error_class"),
    [
        (HTML_PAGE, "text/html; charset=utf-8", errors.NOT_A_FEED),
        (HTML_PAGE, None, errors.NOT_A_FEED),
        (b"", None, errors.NOT_A_FEED),
        (b"   \n", None, errors.NOT_A_FEED),
        (b'{"items": []}', "application/json", errors.NOT_A_FEED),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "image/png", errors.NOT_A_FEED),
        (b"<?xml version='1.0'?><rss version='2.0'><channel><item><title>x</tit", None, None),
        (b"<?xml version='1.0'?><notafeed><x/></notafeed>", "application/xml", errors.NOT_A_FEED),
    ],
)
def test_not_a_feed(body: bytes, content_type: str | None, error_class: str | None) -> None:
    if error_class is None:  # a truncated feed is still read by feedparser's loose parser
        assert parse_feed(body, url="http://x/", content_type=content_type).version
        return
    with pytest.raises(FeedError) as info:
        parse_feed(body, url="http://x/", content_type=content_type)
    assert info.value.error_class in (error_class, errors.PARSE_ERROR)


def test_empty_but_wellformed_feed_is_fine() -> None:
    parsed = parse_feed(rss("", language="et-EE"), url=FEED.url)
    assert parsed.entries == [] and parsed.language == "et" and parsed.version == "rss20"


# --- entry_datetime ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("date_xml", "expected"),
    [
        ("<pubDate>Sat, 21 Dec 2024 19:28:00 +0100</pubDate>", datetime(2024, 12, 21, 18, 28, tzinfo=timezone.utc)),
        ("<pubDate>Thu, 01 Jan 1970 00:00:00 +0000</pubDate>", NOW),
        ("<pubDate>Fri, 01 Jan 1988 00:00:00 +0000</pubDate>", NOW),
        ("<pubDate>Wed, 04 Jun 2025 12:00:00 +0000</pubDate>", NOW),  # 3 days ahead
        ("<pubDate>Mon, 02 Jun 2025 06:00:00 +0000</pubDate>", datetime(2025, 6, 2, 6, tzinfo=timezone.utc)),
        ("<pubDate>not a date</pubDate>", NOW),
        ("", NOW),
        ('<dc:date xmlns:dc="http://purl.org/dc/elements/1.1/">2025-05-30T10:00:00+03:00</dc:date>',
         datetime(2025, 5, 30, 7, tzinfo=timezone.utc)),
    ],
)
def test_entry_datetime(date_xml: str, expected: datetime) -> None:
    _, entry = one_entry(f"<title>x</title><link>https://news.example.org/a</link>{date_xml}")
    moment = entry_datetime(entry, NOW)
    assert moment == expected and moment.utcoffset() == timedelta(0)


# --- normalise_entry -----------------------------------------------------------------------------------------
def test_normalise_entry() -> None:
    parsed, entry = one_entry(
        "<title>NATO &amp; Lithuania: brigade</title>"
        "<link>https://news.example.org/a/1?utm_source=rss#c</link><guid>urn:x:1</guid>"
        "<description>&lt;p&gt;German &lt;b&gt;troops&lt;/b&gt; arrive.&lt;/p&gt;&lt;script&gt;x()&lt;/script&gt;</description>"
        "<pubDate>Sat, 31 May 2025 08:00:00 GMT</pubDate>",
        language="EN-us",
    )
    article = normalise_entry(entry, feed=FEED, feed_language=parsed.language, fetched_at=NOW)
    assert article.canonical_url == "https://news.example.org/a/1"
    assert article.id == article_id(article.canonical_url)
    assert article.url == "https://news.example.org/a/1?utm_source=rss#c"
    assert article.title == "NATO & Lithuania: brigade"
    assert article.summary == "German troops arrive."
    assert article.language == "en"  # the feed's declared language wins over the configured one
    assert article.guid == "urn:x:1"
    assert article.published_at == datetime(2025, 5, 31, 8, tzinfo=timezone.utc)
    assert article.source == "Test Outlet" and article.feed_id == 7 and article.fetched_at == NOW
    assert len(article.content_hash) == 64


def test_normalise_entry_falls_back() -> None:
    parsed, entry = one_entry(
        "<link>/relative/2</link><description>" + " ".join(f"w{i}" for i in range(40)) + "</description>"
    )
    article = normalise_entry(entry, feed=FEED, feed_language=parsed.language, fetched_at=NOW)
    assert article.canonical_url == "https://news.example.org/relative/2"
    assert article.title.startswith("w0 w1 w2") and article.title.endswith("…")
    assert article.language == "lt"  # nothing declared: the feed's configured language
    assert article.published_at == NOW


def test_title_is_capped() -> None:
    parsed, entry = one_entry(f"<title>{'Brigade ' * 500}</title><link>https://news.example.org/t</link>")
    article = normalise_entry(entry, feed=FEED, feed_language=None, fetched_at=NOW)
    assert len(article.title) <= 1000


@pytest.mark.parametrize(
    "item",
    [
        "<title>no link</title>",
        "<title>home page only</title><link>https://meduza.io/</link>",
        "<title>bad scheme</title><link>javascript:alert(1)</link>",
        "<link>https://news.example.org/empty</link>",
    ],
)
def test_unusable_entries_are_skipped(item: str) -> None:
    parsed, entry = one_entry(item)
    with pytest.raises(SkippedEntry):
        normalise_entry(entry, feed=FEED, feed_language=parsed.language, fetched_at=NOW)


def test_guid_permalink_replaces_a_home_page_link() -> None:
    parsed, entry = one_entry(
        "<title>x</title><link>https://news.example.org/</link><guid>https://news.example.org/story/9</guid>"
    )
    article = normalise_entry(entry, feed=FEED, feed_language=None, fetched_at=NOW)
    assert article.canonical_url == "https://news.example.org/story/9"
