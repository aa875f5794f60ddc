"""Robustness pass over every real feed file of ../shared/data/feeds/: the outlet feeds, Miniflux's test data
and feedparser's whole test suite (ill-formed, odd encodings, entities): each parses and normalises without an
unhandled exception, and ends as a feed (articles, or entries skipped for a reason) or a classified error.

Counts on the corpus as shipped (2,152 files): outlets 24 feeds, 2,019 articles; Miniflux 16 feeds, 259
articles, 4 not_a_feed, 2 parse_error; feedparser 2,095 feeds (mostly one-element snippets without a link:
1,180 entries skipped), 36 articles, 9 parse_error, 2 xml_entities."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from collectors.errors import ERROR_CLASSES, FeedError
from collectors.normalise import SkippedEntry, normalise_entry
from collectors.parse import parse_feed
from core.models import Feed

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
FEED = Feed(id=1, name="corpus", url="https://example.org/feed.xml", language="en")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in ("LICENSE", "README.md"))


def _run(files: list[Path]) -> Counter[str]:
    outcome: Counter[str] = Counter()
    for path in files:
        try:
            parsed = parse_feed(path.read_bytes(), url=FEED.url)
        except FeedError as exc:
            assert exc.error_class in ERROR_CLASSES, path
            outcome[exc.error_class] += 1
            continue
        outcome["feeds"] += 1
        for entry in parsed.entries:
            try:
                article = normalise_entry(entry, feed=FEED, feed_language=parsed.language, fetched_at=NOW)
            except SkippedEntry:
                outcome["skipped"] += 1
                continue
            assert article.canonical_url.startswith(("http://", "https://")), path
            assert article.title and len(article.title) <= 1000, path
            assert article.published_at.utcoffset() == timedelta(0), path
            assert article.language is None or len(article.language) == 2, path
            outcome["articles"] += 1
    errors = sum(count for name, count in outcome.items() if name in ERROR_CLASSES)
    assert outcome["feeds"] + errors == len(files)  # every file accounted for: a feed or a classified error
    return outcome


def test_every_outlet_feed(shared_data: Path) -> None:
    files = _files(shared_data / "feeds" / "outlets")
    assert len(files) >= 20
    outcome = _run(files)
    assert outcome["feeds"] == len(files)
    assert outcome["articles"] > 1500


def test_miniflux_testdata(shared_data: Path) -> None:
    files = _files(shared_data / "feeds" / "miniflux-testdata")
    outcome = _run(files)
    assert outcome["feeds"] > len(files) // 2 and outcome["articles"] > 100


def test_feedparser_suite(shared_data: Path) -> None:
    files = _files(shared_data / "feeds" / "feedparser-tests")
    assert len(files) > 2000
    outcome = _run(files)
    assert outcome["feeds"] > len(files) * 0.9
    assert outcome["xml_entities"] >= 1  # its entity-expansion files are refused before feedparser sees them
