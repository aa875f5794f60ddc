"""Properties of the size caps (collectors/normalise.py, collectors/text.py, collectors/headers.py): whatever a
feed entry or a response header holds, and however large, what is stored stays within its cap, as plain text
without control characters, or the entry is skipped with a reason."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from collectors.headers import MAX_ETAG_CHARS, validator  # noqa: E402
from collectors.normalise import (  # noqa: E402
    CONTENT_MAX_CHARS,
    SUMMARY_MAX_CHARS,
    TITLE_MAX_CHARS,
    URL_MAX_CHARS,
    SkippedEntry,
    normalise_entry,
)
from collectors.text import html_to_text, plain_text  # noqa: E402
from core.models import Feed  # noqa: E402

FEED = Feed(id=7, name="Test Outlet", url="https://news.example.org/rss", language="lt")
_WHEN = datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

_PIECES = st.sampled_from(["<p>", "</p>", "<b>", "&amp;", "&amp;amp;", "&#0;", "\x00", "\x1b", "\x7f", "\u202e", " ",
                           "\n", "word", "Žodis", "<script>x</script>", "<!--", "-->", "&lt;b&gt;"])
# Large texts, built by repeating a small hostile piece (hypothesis draws sizes far beyond every cap).
_BIG = st.builds(lambda piece, times: piece * times,
                 st.lists(_PIECES, min_size=1, max_size=6).map("".join), st.integers(min_value=0, max_value=3_000))
TEXT = st.one_of(st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=10).map("".join), _BIG)
KIND = st.sampled_from(["text/plain", "text/html", "application/xhtml+xml", ""])
LINK = st.one_of(
    st.builds(lambda path: "https://news.example.org/a/" + path, TEXT),
    st.builds(lambda n: "https://news.example.org/" + "x" * n, st.integers(min_value=0, max_value=5000)),
    TEXT,
)


def _within(text: str, cap: int) -> None:
    assert len(text) <= cap
    assert not _CONTROL.search(text)


@given(TEXT, KIND, TEXT, KIND, st.lists(st.tuples(TEXT, KIND), max_size=3), LINK, st.one_of(st.none(), TEXT))
def test_a_stored_entry_stays_within_every_cap(
    title: str, title_kind: str, summary: str, summary_kind: str, contents: list[tuple[str, str]], link: str,
    guid: str | None,
) -> None:
    entry = {
        "title": title, "title_detail": {"type": title_kind},
        "summary": summary, "summary_detail": {"type": summary_kind},
        "content": [{"value": value, "type": kind} for value, kind in contents],
        "link": link, "id": guid,
    }
    try:
        article = normalise_entry(entry, feed=FEED, feed_language="lt", fetched_at=_WHEN)
    except SkippedEntry as skipped:
        assert str(skipped)  # a reason, counted by the caller
        return
    _within(article.title, TITLE_MAX_CHARS)
    _within(article.summary, SUMMARY_MAX_CHARS)
    _within(article.content or "", CONTENT_MAX_CHARS)
    assert article.title.strip()
    assert len(article.url) <= URL_MAX_CHARS and len(article.canonical_url) <= URL_MAX_CHARS
    assert article.canonical_url.startswith(("http://", "https://"))
    assert article.guid is None or len(article.guid) <= URL_MAX_CHARS


@given(TEXT, st.integers(min_value=1, max_value=6000))
def test_text_cleaning_honours_its_cap(text: str, cap: int) -> None:
    _within(plain_text(text, cap), cap)
    _within(html_to_text(text, cap), cap)


@given(TEXT)
def test_a_validator_header_is_capped_or_dropped(value: str) -> None:
    kept = validator(value, MAX_ETAG_CHARS)
    assert kept is None or (0 < len(kept) <= MAX_ETAG_CHARS and "\n" not in kept and "\r" not in kept)
