"""JSON Feed 1.0 and 1.1 (https://www.jsonfeed.org/version/1.1/), which feedparser does not read.

`parse_json_feed` turns one into what feedparser would have given for the same feed in RSS: a feed dict
(`title`, `link`, `language`) and entry dicts with feedparser's field names (`id`, `link`, `title`,
`summary` + `summary_detail`, `content`, `published_parsed`, `updated_parsed` as UTC `struct_time`), so that
`collectors.normalise.normalise_entry` handles both alike. Hostile input: anything that is not a JSON object
with a jsonfeed.org `version` is refused; wrong types are skipped field by field, never trusted.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from collectors import errors
from collectors.errors import FeedError

VERSION_PREFIX = "https://jsonfeed.org/version/"
_JSON_TYPES = ("application/feed+json", "application/json", "text/json")


def looks_like_json_feed(body: bytes, content_type: str | None = None) -> bool:
    """Whether a body should be read as JSON Feed: it opens with `{` or `[`, or (opening with anything but
    `<`) is served as JSON. The body decides before the header: servers label feeds wrongly both ways."""
    first = body.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if first in (b"{", b"["):
        return True
    if first == b"<":
        return False
    return (content_type or "").split(";", 1)[0].strip().lower() in _JSON_TYPES


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _moment(value: Any) -> time.struct_time | None:
    """An RFC 3339 date as a UTC struct_time (what feedparser's `*_parsed` fields hold), or None."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.strip().replace("z", "Z"))
    except ValueError:
        return None
    if parsed.tzinfo is None:  # the spec requires an offset; read a missing one as UTC
        parsed = parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc).utctimetuple()
    except (OverflowError, ValueError):
        return None


def _entry(item: dict[str, Any], language: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {}
    ident = item.get("id")
    if isinstance(ident, (int, float)) and not isinstance(ident, bool):  # 1.0 feeds sometimes use numbers
        ident = str(ident)
    if _text(ident):
        entry["id"] = ident
    link = _text(item.get("url")) or _text(item.get("external_url"))
    if link:
        entry["link"] = link
    lang = _text(item.get("language")) or language
    title = _text(item.get("title"))
    if title:
        entry["title"] = title
        entry["title_detail"] = {"type": "text/plain", "language": lang, "value": title}
    html, text, summary = _text(item.get("content_html")), _text(item.get("content_text")), _text(item.get("summary"))
    content = [{"type": "text/html", "value": html, "language": lang}] if html else []
    if text:
        content.append({"type": "text/plain", "value": text, "language": lang})
    if content:
        entry["content"] = content
    if summary:
        entry["summary"] = summary
        entry["summary_detail"] = {"type": "text/plain", "language": lang, "value": summary}
    elif content:  # feedparser, too, fills `summary` from the content when there is no description
        first = content[0]
        entry["summary"] = first["value"]
        entry["summary_detail"] = {"type": first["type"], "language": lang, "value": first["value"]}
    for source, target in (("date_published", "published_parsed"), ("date_modified", "updated_parsed")):
        moment = _moment(item.get(source))
        if moment is not None:
            entry[target] = moment
    return entry


def parse_json_feed(body: bytes) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """(feed, entries, version) of a JSON Feed body; version is `json10` or `json11` (feedparser's style).
    Raises `FeedError`: `parse_error` for invalid JSON, `not_a_feed` for JSON that is no JSON Feed."""
    try:
        data = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise FeedError(errors.PARSE_ERROR, f"invalid JSON: {type(exc).__name__}: {str(exc)[:200]}") from exc
    version = data.get("version") if isinstance(data, dict) else None
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIX):
        raise FeedError(errors.NOT_A_FEED, "JSON without a jsonfeed.org version: not a JSON Feed")
    items = data.get("items")
    if not isinstance(items, list):
        raise FeedError(errors.PARSE_ERROR, "JSON Feed without an items array")
    language = _text(data.get("language"))
    feed = {"title": _text(data.get("title")) or "", "link": _text(data.get("home_page_url")), "language": language}
    entries = [_entry(item, language) for item in items if isinstance(item, dict)]
    tag = "json11" if version.rstrip("/").endswith("1.1") else "json10"
    return feed, entries, tag
