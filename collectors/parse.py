"""Turning a fetched body into feed entries with feedparser, after refusing what is not safe or not a feed."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

import feedparser

from collectors import errors
from collectors.errors import FeedError
from collectors.jsonfeed import looks_like_json_feed, parse_json_feed
from collectors.xmlsafety import declares_entities

_HTML_START = re.compile(rb"^\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body)[\s>]", re.IGNORECASE | re.DOTALL)
_LANGUAGE = re.compile(r"^([A-Za-z]{2})(?:$|[-_])")
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""", re.IGNORECASE)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._-]+)", re.IGNORECASE)
_UTF8_NAMES = ("utf-8", "utf8")


@dataclass
class ParsedFeed:
    """A parsed feed: its own title, link and declared language, and its entries as feedparser gives them."""

    title: str
    link: str | None
    language: str | None  # lower-case ISO 639-1 as declared by the feed, if any
    version: str
    entries: list[Any] = field(default_factory=list)
    warning: str | None = None  # feedparser's complaint about a feed it could still read
    ttl_minutes: int | None = None  # RSS <ttl>: how long the channel may be cached


def declared_language(value: object) -> str | None:
    """`de-DE`, `en_us`, `RU` -> `de`, `en`, `ru`; anything else -> None."""
    if not isinstance(value, str):
        return None
    match = _LANGUAGE.match(value.strip())
    return match.group(1).lower() if match else None


def _looks_like_html(body: bytes, content_type: str | None) -> bool:
    if content_type and content_type.split(";", 1)[0].strip().lower() in ("text/html", "application/xhtml+xml"):
        return True
    return bool(_HTML_START.match(body[:4096]))


def _ttl(value: object) -> int | None:
    """RSS `<ttl>` in minutes, if it is a sane number (up to a week)."""
    if isinstance(value, str) and value.strip().isdigit():
        minutes = int(value.strip())
        return minutes if 0 < minutes <= 7 * 24 * 60 else None
    return None


def repair_utf8(body: bytes, content_type: str | None) -> bytes:
    """A body that is meant to be UTF-8 (by its charset, its XML declaration or XML's default) but holds
    invalid bytes gets them replaced by U+FFFD. feedparser would otherwise re-read the whole document as
    windows-1252 and garble every non-ASCII letter of every item for one bad byte."""
    if body.startswith((b"\xff\xfe", b"\xfe\xff")) or body[:2] in (b"\x00<", b"<\x00"):
        return body  # UTF-16/32: not ours to judge
    charset = _CHARSET.search(content_type or "")
    declared = _XML_ENCODING.match(body[:512])
    name = (charset.group(1) if charset else declared.group(1).decode("ascii") if declared else "utf-8").lower()
    if name not in _UTF8_NAMES:
        return body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return body.decode("utf-8", errors="replace").encode("utf-8")
    return body


def parse_feed(body: bytes, *, url: str, content_type: str | None = None) -> ParsedFeed:
    """Parse a feed body (RSS, Atom, RDF through feedparser; JSON Feed through `collectors.jsonfeed`).
    Raises `FeedError` with class `xml_entities`, `not_a_feed` or `parse_error`.

    feedparser only ever gets the bytes (wrapped in a stream, so that it never treats them as a URL or a
    file name); `url` is given as Content-Location to resolve relative links. A well-formed feed with no
    entries is a feed."""
    if not body or not body.strip():
        raise FeedError(errors.NOT_A_FEED, "empty body")
    if looks_like_json_feed(body, content_type):
        feed, items, version = parse_json_feed(body)
        return ParsedFeed(title=feed["title"], link=feed["link"], language=declared_language(feed["language"]),
                          version=version, entries=items)
    if declares_entities(body):
        raise FeedError(errors.XML_ENTITIES, "document declares XML entities in its DOCTYPE (refused)")
    body = repair_utf8(body, content_type)
    headers = {"content-location": url}
    if content_type:
        headers["content-type"] = content_type
    try:
        # resolve_relative_uris=False: the links inside entries' HTML are not rewritten against the base (the
        # HTML is only ever read as text, see `collectors.text`); element links (<link>, href) still are.
        # Rewriting them was a sixth of the parse of a real outlet feed.
        result = feedparser.parse(io.BytesIO(body), response_headers=headers, resolve_relative_uris=False)
    except Exception as exc:  # noqa: BLE001 - feedparser on hostile input: any failure is a parse error
        raise FeedError(errors.PARSE_ERROR, f"{type(exc).__name__}: {exc}") from exc
    entries = list(result.get("entries") or [])
    version = result.get("version") or ""
    bozo = result.get("bozo_exception") if result.get("bozo") else None
    warning = f"{type(bozo).__name__}: {bozo}"[:500] if bozo is not None else None
    if not entries and not version:
        if _looks_like_html(body, content_type):
            raise FeedError(errors.NOT_A_FEED, f"an HTML page, not a feed (content-type {content_type or 'unknown'})")
        if bozo is not None:
            raise FeedError(errors.PARSE_ERROR, warning or "unreadable")
        raise FeedError(errors.NOT_A_FEED, "no RSS, Atom or RDF feed found")
    feed = result.get("feed") or {}
    title = feed.get("title") if isinstance(feed.get("title"), str) else ""
    link = feed.get("link") if isinstance(feed.get("link"), str) else None
    return ParsedFeed(
        title=title or "",
        link=link,
        language=declared_language(feed.get("language")),
        version=version,
        entries=entries,
        warning=warning,
        ttl_minutes=_ttl(feed.get("ttl")),
    )
