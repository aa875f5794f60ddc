"""Full text for `fulltext: true` feeds (issue 6): fetch an article's page and extract its body.

The page is fetched by `collectors.http.fetch_feed`, the same bounded fetch the feeds get: the same client
(`make_client`: SSRF guard on every connection, timeouts), the same redirect cap and total deadline, and a
size cap of `http_max_bytes` or `collectors.extract.MAX_HTML_BYTES`, whichever is smaller. Every hop waits
for a slot of its host in the run's `collectors.politeness.Limiter`, so page fetches count against
`fetch_per_host` and `fetch_host_delay_seconds` together with the feed polls of that host.

The body is extracted by `collectors.extract.extract_body` (trafilatura; CPU-bound, so in a worker thread).
A page that cannot be fetched or gives no body leaves the feed's text in place (`method` "summary", the
error class kept); a body so short that the page probably held the article back (paywall teaser) is
flagged `paywall_suspected`.

    todo = await asyncio.to_thread(articles_to_fetch, settings, articles)  # new or edited ones only
    results = await fetch_fulltexts(client, todo, settings=settings, limiter=limiter)

`fetch_fulltexts` fetches concurrently (within the limiter) and applies each result to its article
(`apply_fulltext`), which `collectors.store` then writes (`text_source`, `text_length`, `paywall_suspected`,
`fulltext_error`)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import httpx

from collectors import errors
from collectors.extract import MAX_HTML_BYTES, extract_body
from collectors.http import SlotLimiter, fetch_feed
from collectors.normalise import (
    TEXT_FEED,
    TEXT_FULLTEXT,
    TEXT_SUMMARY,
    NormalisedArticle,
)
from collectors.store import new_or_changed
from core.db import session_scope
from core.settings import Settings

log = logging.getLogger(__name__)

Method = Literal["fulltext", "summary"]


@dataclass
class FullText:
    """What fetching one article's page gave.

    `method`: "fulltext" (the page's body, in `text`) or "summary" (nothing usable: `text` is the feed's
    summary, possibly empty). `paywall_suspected`: the body is so short that the page probably held the
    article back (`collectors.extract.MIN_BODY_CHARS`, or a page that declares itself not free).
    `error_class`: why there is no body, one of `collectors.errors` (fetch: timeout, http_4xx, too_large,
    ...) or of `collectors.extract` (not_html, no_body, parse_error, ...); None when the body was used."""

    url: str
    text: str
    method: Method
    length: int
    paywall_suspected: bool = False
    error_class: str | None = None
    error_message: str | None = None
    http_status: int | None = None
    final_url: str | None = None
    duration_ms: int = 0


def page_settings(settings: Settings) -> Settings:
    """The settings a page fetch runs with: the feed limits, the size cap no larger than what the extractor
    reads (a bigger page would be fetched only to be thrown away)."""
    if settings.http_max_bytes <= MAX_HTML_BYTES:
        return settings
    return settings.model_copy(update={"http_max_bytes": MAX_HTML_BYTES})


async def fetch_fulltext(
    client: httpx.AsyncClient,
    article: NormalisedArticle,
    *,
    settings: Settings,
    limiter: SlotLimiter | None = None,
) -> FullText:
    """Fetch `article.url` and extract its body. Never raises for a bad page or network trouble.

    `client`: from `collectors.http.make_client` (the feeds' client); `limiter`: the run's
    `collectors.politeness.Limiter` (None: no limits, e.g. a single fetch); `settings`: as for feeds
    (`page_settings` is applied here)."""
    started = time.monotonic()
    summary = article.summary or ""

    def fallback(error_class: str, message: str | None, **fields: object) -> FullText:
        return FullText(
            url=article.url, text=summary, method="summary", length=len(summary), error_class=error_class,
            error_message=(message or "")[:500] or None, duration_ms=int((time.monotonic() - started) * 1000),
            **fields,  # type: ignore[arg-type]
        )

    try:
        fetch = await fetch_feed(client, article.url, settings=page_settings(settings), limiter=limiter)
        common = {"http_status": fetch.http_status, "final_url": fetch.final_url}
        if fetch.status != "ok":
            return fallback(fetch.error_class or errors.INTERNAL, fetch.error_message, **common)
        page = fetch.final_url or article.url
        extraction = await asyncio.to_thread(extract_body, fetch.body, url=page, summary=summary)
    except Exception as exc:  # noqa: BLE001 - one page's bug must not stop the feed
        log.exception("internal error while fetching the page of %s", article.url)
        return fallback(errors.INTERNAL, f"{type(exc).__name__}: {exc}")
    if extraction.method != "trafilatura":
        return fallback(extraction.error or errors.INTERNAL, extraction.error_message, **common)
    return FullText(
        url=article.url,
        text=extraction.text,
        method="fulltext",
        length=extraction.length,
        paywall_suspected=extraction.truncated,
        duration_ms=int((time.monotonic() - started) * 1000),
        **common,  # type: ignore[arg-type]
    )


def apply_fulltext(article: NormalisedArticle, fulltext: FullText) -> NormalisedArticle:
    """Put what `fetch_fulltext` gave into the article (in place; returned for convenience).

    A body replaces `content` (`text_source` "fulltext"), unless it is a suspected teaser no longer than the
    feed's own text: then the feed's text stays and only `paywall_suspected` is set. A failure keeps the
    feed's text (`text_source` "feed" or "summary") and records `fulltext_error`. Apply one result to an
    article fresh from `normalise_entry`, once."""
    feed_text = article.content or article.summary or ""
    if fulltext.method == "fulltext" and not (fulltext.paywall_suspected and fulltext.length <= len(feed_text)):
        article.content = fulltext.text
        article.text_source = TEXT_FULLTEXT
        article.text_length = fulltext.length
        article.paywall_suspected = fulltext.paywall_suspected
        article.fulltext_error = None
        return article
    article.text_source = TEXT_FEED if article.content else TEXT_SUMMARY
    article.text_length = len(feed_text)
    article.paywall_suspected = fulltext.method == "fulltext" and fulltext.paywall_suspected
    article.fulltext_error = fulltext.error_class
    return article


async def fetch_fulltexts(
    client: httpx.AsyncClient,
    articles: Sequence[NormalisedArticle],
    *,
    settings: Settings,
    limiter: SlotLimiter | None = None,
) -> list[FullText]:
    """`fetch_fulltext` for each article, concurrently within `limiter`, each applied to its article
    (`apply_fulltext`). Results in the order of `articles`. Never raises for a bad page."""
    results = await asyncio.gather(
        *(fetch_fulltext(client, article, settings=settings, limiter=limiter) for article in articles)
    )
    for article, result in zip(articles, results):
        apply_fulltext(article, result)
    return list(results)


def articles_to_fetch(settings: Settings, articles: Sequence[NormalisedArticle]) -> list[NormalisedArticle]:
    """Of a feed's articles, those worth a page fetch: the ones the store would insert or update (see
    `collectors.store.new_or_changed`), so that a page is fetched once per article, not once per poll.
    Reads the state DB (blocking): call it with `asyncio.to_thread` from the event loop."""
    if not articles:
        return []
    with session_scope(settings) as session:
        return new_or_changed(session, articles)
