"""One feed entry -> one article as Flankwatch stores it (canonical URL, plain text, UTC date, language)."""

from __future__ import annotations

import calendar
import hashlib
import re
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urljoin, urlsplit

from collectors.parse import declared_language
from collectors.text import collapse, html_to_text, plain_text, truncate
from collectors.urls import canonical_url, is_site_root
from core.ids import article_id
from core.models import Feed

# re-exported: the public helpers of this stage live here
__all__ = [
    "NormalisedArticle",
    "SkippedEntry",
    "canonical_url",
    "entry_datetime",
    "html_to_text",
    "normalise_entry",
    "guid_hash",
    "title_hash",
    "title_key",
]

TITLE_MAX_CHARS = 1000
SUMMARY_MAX_CHARS = 5000
CONTENT_MAX_CHARS = 20000
URL_MAX_CHARS = 2048
TITLE_FROM_SUMMARY_WORDS = 20
EARLIEST = datetime(1990, 1, 1, tzinfo=timezone.utc)
LATEST_AHEAD = timedelta(days=1)
_DATE_FIELDS = ("published_parsed", "updated_parsed", "created_parsed")
# A title with fewer words than this is not used to recognise a re-publication: short titles repeat within a
# week for different articles of one outlet ("Presseschau", "Die Lage am Morgen", "Live updates").
TITLE_HASH_MIN_WORDS = 5
_TITLE_WORD = re.compile(r"\w+")

# Where an article's text comes from (`Article.text_source`): the entry's own full text (content:encoded),
# only its summary, or the article page fetched and extracted (`collectors.fulltext`).
TEXT_FEED = "feed"
TEXT_SUMMARY = "summary"
TEXT_FULLTEXT = "fulltext"


class SkippedEntry(ValueError):
    """An entry that cannot become an article (no usable link, no text); counted, not stored."""


@dataclass
class NormalisedArticle:
    id: str
    url: str
    canonical_url: str
    guid: str | None
    title: str
    summary: str
    language: str | None
    published_at: datetime
    content_hash: str
    source: str
    feed_id: int | None
    fetched_at: datetime
    content: str | None = None  # the entry's full text (content:encoded), when it carries more than the summary
    # what `content` is (see TEXT_*) and the length of the longest text stored (content, else summary);
    # set from the entry here, changed by `collectors.fulltext.apply_fulltext`
    text_source: str | None = None
    text_length: int | None = None
    paywall_suspected: bool = False
    fulltext_error: str | None = None  # error class of a failed page fetch or extraction
    # See `title_hash` / `guid_hash`: computed once here (in the parse worker), not at every dedup lookup.
    title_hash: str | None = field(init=False, default=None)
    guid_hash: str | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.text_source is None:
            self.text_source = TEXT_FEED if self.content else TEXT_SUMMARY
        if self.text_length is None:
            self.text_length = len(self.content or self.summary or "")
        self.title_hash = title_hash(self.title)
        self.guid_hash = guid_hash(self.guid)


def entry_datetime(entry: Any, fallback: datetime) -> datetime:
    """When the entry was published (else updated, else created), UTC-aware. feedparser's `*_parsed` structs
    are already UTC. Missing dates, placeholders before 1990 (the 1970 epoch of scrapers) and dates more than
    a day after `fallback` give `fallback`."""
    for name in _DATE_FIELDS:
        value = _get(entry, name)
        if not isinstance(value, time.struct_time) and not (isinstance(value, tuple) and len(value) >= 6):
            continue
        try:
            moment = datetime.fromtimestamp(calendar.timegm(tuple(value)[:6] + (0, 0, 0)), tz=timezone.utc)
        except (OverflowError, ValueError, OSError, TypeError):
            continue
        if moment < EARLIEST or moment > fallback + LATEST_AHEAD:
            continue
        return moment
    return fallback


def _get(entry: Any, name: str) -> Any:
    """A field as feedparser stored it. Plain dict access: FeedParserDict's aliases (`updated_parsed` falling
    back to `published_parsed`, with a deprecation warning) would hide which field the feed really set."""
    if isinstance(entry, dict):
        return dict.get(entry, name)
    try:
        return entry.get(name)
    except Exception:  # noqa: BLE001 - anything dict-like that fails is an absent field
        return None


def _detail_text(value: Any, detail: Any, max_chars: int) -> str:
    if not isinstance(value, str) or not value:
        return ""
    kind = detail.get("type", "") if isinstance(detail, dict) else ""
    if "html" in kind or "xml" in kind:
        return html_to_text(value, max_chars)
    return plain_text(value, max_chars)


def _content_text(entry: Any) -> str:
    contents = _get(entry, "content")
    if not isinstance(contents, list):
        return ""
    best = ""
    for item in contents:
        if isinstance(item, dict):
            text = _detail_text(item.get("value"), item, CONTENT_MAX_CHARS)
            if len(text) > len(best):
                best = text
    return best


def _http_url(value: Any, base: str) -> str | None:
    """An absolute http(s) URL from a link, resolved against the feed's URL, or None."""
    if not isinstance(value, str) or not value.strip():
        return None
    value = collapse(value)
    try:
        url = urljoin(base, value)
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or len(url) > URL_MAX_CHARS:
        return None
    return url


def _article_link(entry: Any, base: str) -> str | None:
    """The entry's link; its guid when the link is missing or only the site's home page."""
    link = _http_url(_get(entry, "link"), base)
    if link and not is_site_root(link):
        return link
    guid = _http_url(_get(entry, "id"), base)
    if guid and not is_site_root(guid):
        return guid
    return None


def _first_words(text: str, words: int = TITLE_FROM_SUMMARY_WORDS) -> str:
    parts = text.split()
    title = " ".join(parts[:words])
    if len(title) >= TITLE_MAX_CHARS:  # long "words" (a URL, unspaced script): the title's cap holds here too
        return truncate(title, TITLE_MAX_CHARS)
    return title + ("…" if len(parts) > words else "")


def content_hash(title: str, summary: str) -> str:
    """What tells an edited entry from an unchanged one. Title and summary only: the full text is not in it,
    so that a page fetched for a `fulltext` feed never makes the next poll's entry look edited (and a
    changed definition would make every stored article look edited once)."""
    return hashlib.sha256(f"{title}\n{summary}".encode("utf-8")).hexdigest()


def title_key(title: str) -> str:
    """A title as compared for re-publications: compatibility forms folded (NFKC), case folded, accents
    dropped, punctuation and runs of spaces reduced to one space ("Das Chaos bändigen - Das Gespenst der
    Ordnung" -> "das chaos bandigen das gespenst der ordnung")."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", title or "").casefold())
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(_TITLE_WORD.findall(stripped))


def title_hash(title: str) -> str | None:
    """Hash of `title_key`, or None for a title too short to identify an article (`TITLE_HASH_MIN_WORDS`)."""
    key = title_key(title)
    if key.count(" ") + 1 < TITLE_HASH_MIN_WORDS:
        return None
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def guid_hash(guid: str | None) -> str | None:
    """Hash of an entry's GUID as the feed wrote it (GUIDs can be 2,000 characters: too long for an index)."""
    if not guid:
        return None
    return hashlib.sha256(guid.encode("utf-8")).hexdigest()[:32]


def normalise_entry(
    entry: Any,
    *,
    feed: Feed,
    feed_language: str | None,
    fetched_at: datetime,
    feed_url: str | None = None,
) -> NormalisedArticle:
    """The article of a feedparser entry. Raises `SkippedEntry` when it has no usable link or no text.

    Language: the entry's declared language, else `feed_language` (what the feed declares), else the
    language configured for the feed. `feed_url` (default `feed.url`) resolves relative links."""
    base = feed_url or feed.url
    url = _article_link(entry, base)
    if url is None:
        raise SkippedEntry("no article link")
    canonical = canonical_url(url)
    if len(canonical) > URL_MAX_CHARS:
        raise SkippedEntry("link too long")

    summary = _detail_text(_get(entry, "summary"), _get(entry, "summary_detail"), SUMMARY_MAX_CHARS)
    content = _content_text(entry)
    if not summary and content:
        summary = truncate(content, SUMMARY_MAX_CHARS)
    title = _detail_text(_get(entry, "title"), _get(entry, "title_detail"), TITLE_MAX_CHARS)
    if not title:
        title = _first_words(summary)
    if not title:
        raise SkippedEntry("neither title nor summary")

    guid = _get(entry, "id")
    guid = plain_text(guid, URL_MAX_CHARS) if isinstance(guid, str) else None
    language = None
    for detail_name in ("title_detail", "summary_detail"):
        detail = _get(entry, detail_name)
        if isinstance(detail, dict):
            language = declared_language(detail.get("language"))
            if language:
                break
    language = language or declared_language(feed_language) or declared_language(feed.language)

    return NormalisedArticle(
        id=article_id(canonical),
        url=url,
        canonical_url=canonical,
        guid=guid or None,
        title=title,
        summary=summary,
        language=language,
        published_at=entry_datetime(entry, fetched_at),
        content_hash=content_hash(title, summary),
        source=feed.name,
        feed_id=feed.id,
        fetched_at=fetched_at,
        content=content if content and content != summary and len(content) > len(summary) else None,
    )
