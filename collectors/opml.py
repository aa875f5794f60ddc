"""OPML import and export of the feed list (OPML 2.0; `language`, `country`, `fulltext`, `state_affiliated`
and `key` kept as outline attributes, so that an export read back gives the same feeds)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Protocol

from lxml import etree
from pydantic import ValidationError

from collectors.feeds_config import FeedSpec
from collectors.xmlsafety import declares_entities

log = logging.getLogger(__name__)


class OpmlError(ValueError):
    """The OPML document cannot be read."""


class _FeedLike(Protocol):
    name: str
    url: str
    language: str | None
    country: str | None
    fulltext: bool


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def _language(value: str | None) -> str | None:
    """`en`, `en-US`, `EN_gb` -> `en`; anything else -> None."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-", 1)[0].lower()
    return primary if len(primary) == 2 and primary.isascii() and primary.isalpha() else None


def _country(value: str | None) -> str | None:
    if not value:
        return None
    value = value.strip().upper()
    return value if len(value) == 2 and value.isascii() and value.isalpha() else None


def parse_opml(data: bytes) -> list[FeedSpec]:
    """Feeds of an OPML document: every `outline` with an `xmlUrl`, at any depth. Outlines with an unusable
    URL are skipped (logged); a URL listed twice is kept once."""
    if not data or not data.strip():
        raise OpmlError("empty OPML document")
    if declares_entities(data):
        raise OpmlError("OPML document declares XML entities (refused)")
    try:
        root = etree.fromstring(data, parser=_parser())
    except etree.XMLSyntaxError as exc:
        raise OpmlError(f"invalid OPML: {exc}") from exc
    if root is None or etree.QName(root).localname.lower() != "opml":
        raise OpmlError("not an OPML document (root element is not <opml>)")
    specs: list[FeedSpec] = []
    seen: set[str] = set()
    for outline in root.iter("{*}outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if not url:
            continue
        name = (outline.get("title") or outline.get("text") or "").strip() or url
        try:
            spec = FeedSpec(
                name=name[:200],
                url=url,
                language=_language(outline.get("language")),
                country=_country(outline.get("country")),
                fulltext=_flag(outline.get("fulltext")),
                state_affiliated=_flag(outline.get("state_affiliated")),
                key=_flag(outline.get("key")),
            )
        except ValidationError as exc:
            log.warning("OPML outline %r skipped: %s", url[:200], exc.errors()[0]["msg"])
            continue
        if spec.url in seen:
            continue
        seen.add(spec.url)
        specs.append(spec)
    return specs


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes")


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(value: str) -> str:
    return _XML_INVALID.sub("", value)


def to_opml(feeds: Iterable[_FeedLike], *, title: str = "Flankwatch feeds") -> str:
    """An OPML 2.0 document of the feeds (FeedSpec or core.models.Feed)."""
    root = etree.Element("opml", version="2.0")
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    body = etree.SubElement(root, "body")
    for feed in feeds:
        name = _xml_text(feed.name)
        outline = etree.SubElement(body, "outline", type="rss", text=name, title=name, xmlUrl=_xml_text(feed.url))
        if feed.language:
            outline.set("language", feed.language)
        if feed.country:
            outline.set("country", feed.country)
        if feed.fulltext:
            outline.set("fulltext", "true")
        if getattr(feed, "state_affiliated", False):
            outline.set("state_affiliated", "true")
        if getattr(feed, "key", None) or getattr(feed, "key_outlet", False):  # FeedSpec.key / Feed.key_outlet
            outline.set("key", "true")
    xml = etree.tostring(root, encoding="unicode", pretty_print=True)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + xml
