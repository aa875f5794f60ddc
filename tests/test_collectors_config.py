"""The feed list: config/feeds.yaml, its loading and syncing into the DB, OPML import and export."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from collectors.feeds_config import FeedsFileError, FeedSpec, load_feeds_file, sync_feeds
from collectors.opml import OpmlError, parse_opml, to_opml
from core.db import session_scope
from core.models import Feed
from feedserver import BILLION_LAUGHS

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_project_feeds_file_covers_the_baltic_languages() -> None:
    specs = load_feeds_file(PROJECT_ROOT / "config" / "feeds.yaml")
    assert len(specs) >= 25
    assert {"en", "lt", "lv", "et", "de", "ru", "pl"} <= {spec.language for spec in specs}
    assert {"LT", "LV", "EE", "PL", "DE"} <= {spec.country for spec in specs}
    assert all(spec.url.startswith("https://") for spec in specs)
    assert "unverified" in (PROJECT_ROOT / "config" / "feeds.yaml").read_text().lower()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("feeds: [name: x", "invalid YAML"),
        ("feeds:\n  - name: X\n", "url"),
        ("feeds:\n  - name: X\n    url: ftp://example.org/feed\n", "http(s)"),
        ("feeds:\n  - name: X\n    url: https://e.org/f\n    language: english\n", "language"),
        ("feeds:\n  - name: X\n    url: https://e.org/f\n    country: Lithuania\n", "country"),
        ("feeds:\n  - name: X\n    url: https://e.org/f\n    colour: red\n", "colour"),
        ("feeds:\n  - name: A\n    url: https://e.org/f\n  - name: B\n    url: https://e.org/f\n", "already listed"),
        ("feeds: 3\n", "list"),
        ("others: []\n", "feeds"),
    ],
)
def test_bad_feeds_file_gives_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text(text)
    with pytest.raises(FeedsFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_feeds_file(path)


def test_feeds_file_normalises_codes(tmp_path: Path) -> None:
    path = tmp_path / "feeds.yaml"
    path.write_text("- name: ' LRT '\n  url: https://www.lrt.lt/?rss\n  language: LT\n  country: lt\n")
    assert load_feeds_file(path) == [FeedSpec(name="LRT", url="https://www.lrt.lt/?rss", language="lt", country="LT")]


def test_sync_feeds_upserts_by_url_and_never_deletes(settings) -> None:  # type: ignore[no-untyped-def]
    first = [
        FeedSpec(name="LRT", url="https://www.lrt.lt/?rss", language="lt", country="LT"),
        FeedSpec(name="ERR", url="https://news.err.ee/rss", language="en", country="EE"),
    ]
    with session_scope(settings) as session:
        assert sync_feeds(session, first) == 2
    with session_scope(settings) as session:
        feed = session.scalars(select(Feed).where(Feed.url == "https://news.err.ee/rss")).one()
        feed.etag = '"kept"'
        assert sync_feeds(session, first) == 0  # unchanged: nothing to do
    second = [FeedSpec(name="ERR News", url="https://news.err.ee/rss", language="en", country="EE", fulltext=True)]
    with session_scope(settings) as session:
        assert sync_feeds(session, second, origin="opml") == 1
    with session_scope(settings) as session:
        assert session.scalar(select(func.count()).select_from(Feed)) == 2
        feed = session.scalars(select(Feed).where(Feed.url == "https://news.err.ee/rss")).one()
        assert (feed.name, feed.fulltext, feed.etag, feed.origin) == ("ERR News", True, '"kept"', "config")


# --- OPML ------------------------------------------------------------------------------------------------------
NESTED_OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="1.0">
  <head><title>Baltic feeds</title></head>
  <body>
    <outline text="Lithuania">
      <outline type="rss" text="LRT English" xmlUrl="https://www.lrt.lt/en/news-in-english?rss" language="en-US" country="lt"/>
      <outline text="Deeper">
        <outline type="rss" title="Delfi.lt" text="ignored" xmlUrl="https://www.delfi.lt/rss/feeds/daily.xml" language="lt"/>
      </outline>
    </outline>
    <outline type="rss" xmlUrl="https://news.err.ee/rss"/>
    <outline type="rss" text="dup" xmlUrl="https://news.err.ee/rss"/>
    <outline type="rss" text="bad" xmlUrl="javascript:alert(1)"/>
    <outline type="link" text="a web page" url="https://example.org/"/>
  </body>
</opml>
"""


def test_parse_nested_opml() -> None:
    specs = parse_opml(NESTED_OPML)
    assert [(s.name, s.url, s.language, s.country) for s in specs] == [
        ("LRT English", "https://www.lrt.lt/en/news-in-english?rss", "en", "LT"),
        ("Delfi.lt", "https://www.delfi.lt/rss/feeds/daily.xml", "lt", None),
        ("https://news.err.ee/rss", "https://news.err.ee/rss", None, None),
    ]


def test_opml_round_trip_is_lossless() -> None:
    specs = load_feeds_file(PROJECT_ROOT / "config" / "feeds.yaml")
    specs.append(FeedSpec(name='Quotes "&" <angles> ąčęėįšųūž Ŝ', url="https://e.org/f?a=1&b=2", fulltext=True))
    document = to_opml(specs)
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>') and 'version="2.0"' in document
    assert parse_opml(document.encode("utf-8")) == specs
    assert parse_opml(to_opml(parse_opml(document.encode("utf-8"))).encode("utf-8")) == specs


def test_opml_exports_db_feeds(settings) -> None:  # type: ignore[no-untyped-def]
    with session_scope(settings) as session:
        sync_feeds(session, parse_opml(NESTED_OPML), origin="opml")
        feeds = list(session.scalars(select(Feed).order_by(Feed.id)))
        assert [s.url for s in parse_opml(to_opml(feeds).encode())] == [f.url for f in feeds]


@pytest.mark.parametrize(
    "data",
    [b"", b"not xml at all", b"<rss version='2.0'/>", BILLION_LAUGHS.replace(b"<rss", b"<opml").replace(b"</rss>", b"</opml>")],
)
def test_bad_opml_is_refused(data: bytes) -> None:
    with pytest.raises(OpmlError):
        parse_opml(data)


def test_key_and_state_affiliated_flags_reach_the_feeds_table(settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    specs = {spec.name: spec for spec in load_feeds_file(PROJECT_ROOT / "config" / "feeds.yaml")}
    key = {name for name, spec in specs.items() if spec.key}
    assert key == {"LRT English", "LSM English", "ERR News", "tagesschau", "Bundeswehr"}
    # Public broadcasters with editorial independence are public, not state-affiliated (and none of the file's
    # outlets is state-controlled media).
    assert not any(spec.state_affiliated for spec in specs.values())
    header = (PROJECT_ROOT / "config" / "feeds.yaml").read_text().split("\nfeeds:")[0]
    assert "key: true" in header and "NOT state-affiliated" in header  # the flags are documented

    path = tmp_path / "feeds.yaml"
    path.write_text(
        "feeds:\n"
        "  - {name: TASS, url: 'https://tass.example/rss', language: ru, state_affiliated: true}\n"
        "  - {name: LRT English, url: 'https://www.lrt.lt/en/news-in-english?rss', key: true}\n"
        "  - {name: Delfi.lt, url: 'https://www.delfi.lt/rss/feeds/daily.xml'}\n"
    )
    with session_scope(settings) as session:
        assert sync_feeds(session, load_feeds_file(path)) == 3
    with session_scope(settings) as session:
        flags = {f.name: (f.key_outlet, f.state_affiliated) for f in session.scalars(select(Feed))}
        assert flags == {"TASS": (False, True), "LRT English": (True, False), "Delfi.lt": (False, False)}
        # a flag dropped from the file is dropped from the table
        assert sync_feeds(session, [FeedSpec(name="LRT English", url="https://www.lrt.lt/en/news-in-english?rss")]) == 1
    with session_scope(settings) as session:
        lrt = session.scalars(select(Feed).where(Feed.name == "LRT English")).one()
        assert lrt.key_outlet is False
    with pytest.raises(FeedsFileError, match="key"):
        path.write_text("feeds:\n  - {name: X, url: 'https://e.org/f', key: maybe}\n")
        load_feeds_file(path)
