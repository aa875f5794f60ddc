"""The body of an article page, as plain text (issue 6, "Full text").

`extract_body` takes the HTML of an article page fetched for a `fulltext: true` feed and returns its main
text, extracted with trafilatura, or the feed's summary when the page gives nothing usable. The page is
hostile input: it is size-capped, parsed with lxml (no network, no DTDs, comments and processing
instructions dropped), never rendered or executed, and every failure falls back to the summary instead of
raising. The result records where the text came from (`method`), its length, and whether the body looks
cut short by a paywall (`truncated`).

The trafilatura options (`DEFAULT_OPTIONS`) and the two post-processing steps were chosen by measuring on
the article-extraction benchmark (`bench/extract_eval.py`, figures in `collectors/README.md`)."""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from collectors.text import collapse, truncate

Method = Literal["trafilatura", "summary", "none"]

# Pages above this size are not parsed at all (setting-independent: it bounds the parser's memory and time,
# whatever `http_max_bytes` allows for feeds). Real article pages are far smaller: the 181 pages of the
# benchmark are 115 kB at the median and 1.5 MB at most, inline scripts and styles included.
MAX_HTML_BYTES = 5_000_000
# Parsed pages with more elements than this are not extracted: trafilatura's time grows faster than the
# element count (a crafted 1.4 MB page of 30,000 elements takes 5-6 s here, 20,000 about 3 s). The
# benchmark's real pages have at most 1,600 elements after parsing.
MAX_ELEMENTS = 20_000
# A body shorter than this is flagged `truncated`. 500 characters are about 80 words: a paywall teaser or a
# one-paragraph brief, not an article. Of the benchmark's 181 real articles only 3 are shorter (one of them a
# WSJ paywall teaser); the 5th percentile is 645 characters.
MIN_BODY_CHARS = 500
# A page that declares itself paywalled (schema.org `isAccessibleForFree: false`, what publishers give
# search engines) is flagged when its body is shorter than this: the full text was not served to us.
PAYWALLED_MIN_BODY_CHARS = 1500
# Longest text returned (characters); the archive does not need more of one article.
MAX_TEXT_CHARS = 100_000

# Error classes of a failed extraction (`Extraction.error`).
TOO_LARGE = "too_large"
EMPTY = "empty"
NOT_HTML = "not_html"
PARSE_ERROR = "parse_error"
NO_BODY = "no_body"
INTERNAL = "internal"

log = logging.getLogger(__name__)
# Something that opens an HTML tag, a comment or a doctype (PDF's "<<" or JSON are not markup).
_TAG = re.compile(r"<[A-Za-z!/]")


@dataclass(frozen=True)
class ExtractOptions:
    """How the body is extracted: trafilatura's own switches, then Flankwatch's post-processing.

    `fast` is trafilatura's `no_fallback` (no second opinion from readability/jusText); `drop_title` removes
    leading lines that repeat the page's headline (the title is stored apart); `drop_boilerplate` removes
    short lines that are page furniture in any article (copyright, print/share/subscribe prompts)."""

    fast: bool = True
    favor_recall: bool = True
    favor_precision: bool = False
    include_comments: bool = False
    include_tables: bool = True
    deduplicate: bool = False
    drop_title: bool = True
    drop_boilerplate: bool = True

    def trafilatura_kwargs(self) -> dict[str, Any]:
        return {
            "fast": self.fast,
            "favor_recall": self.favor_recall,
            "favor_precision": self.favor_precision,
            "include_comments": self.include_comments,
            "include_tables": self.include_tables,
            "deduplicate": self.deduplicate,
            "include_images": False,
            "include_links": False,
            "include_formatting": False,
            "with_metadata": False,
            "output_format": "txt",
        }


DEFAULT_OPTIONS = ExtractOptions()


@dataclass
class Extraction:
    """What `extract_body` found. `method`: "trafilatura" (the page's body), "summary" (the page gave
    nothing usable and the feed's summary stands in) or "none" (neither). `error`: why the page gave
    nothing (an error class above), else None. `truncated`: the body is so short that the page probably
    held back the article (paywall, teaser); only set for method "trafilatura"."""

    text: str
    method: Method
    length: int
    truncated: bool = False
    error: str | None = None
    error_message: str | None = None


def extract_body(
    html: bytes | str | None,
    *,
    url: str | None = None,
    summary: str = "",
    options: ExtractOptions = DEFAULT_OPTIONS,
) -> Extraction:
    """The article text of one HTML page (see the module docstring). Never raises for bad input."""
    summary = collapse(summary or "")
    try:
        return _extract(html, url=url, summary=summary, options=options)
    except Exception as exc:
        log.exception("internal error while extracting %s", url)
        return _fallback(summary, INTERNAL, f"{type(exc).__name__}: {exc}")


def _fallback(summary: str, error: str, message: str) -> Extraction:
    method: Method = "summary" if summary else "none"
    return Extraction(text=summary, method=method, length=len(summary), error=error, error_message=message[:500])


def _extract(html: bytes | str | None, *, url: str | None, summary: str, options: ExtractOptions) -> Extraction:
    if html is None or len(html) == 0:
        return _fallback(summary, EMPTY, "empty page")
    size = len(html)
    if isinstance(html, str) and size * 4 > MAX_HTML_BYTES and size <= MAX_HTML_BYTES:
        size = len(html.encode("utf-8", "surrogatepass"))  # only worth encoding near the cap
    if size > MAX_HTML_BYTES:
        return _fallback(summary, TOO_LARGE, f"page of {size} bytes exceeds {MAX_HTML_BYTES}")
    markup = html if isinstance(html, str) else decode_html(html)
    if not _TAG.search(markup, 0, 100_000):
        return _fallback(summary, NOT_HTML, "no markup in the page")

    trafilatura = _trafilatura()
    try:
        tree = trafilatura.load_html(markup)
    except Exception as exc:  # noqa: BLE001 - lxml and trafilatura raise many kinds on broken markup
        return _fallback(summary, PARSE_ERROR, f"{type(exc).__name__}: {exc}")
    if tree is None:
        return _fallback(summary, PARSE_ERROR, "not parseable as HTML")
    if tree.xpath("count(//*)") > MAX_ELEMENTS:  # counted inside libxml2, no Python objects
        return _fallback(summary, TOO_LARGE, f"more than {MAX_ELEMENTS} HTML elements")
    headlines = _headlines(tree) if options.drop_title else []
    paywalled = _declares_paywall(markup)
    try:
        # trafilatura works on a copy of the tree it is given
        text = trafilatura.extract(tree, url=url, **options.trafilatura_kwargs())
    except Exception as exc:  # noqa: BLE001
        return _fallback(summary, PARSE_ERROR, f"{type(exc).__name__}: {exc}")

    text = clean_text(text or "", headlines=headlines, drop_boilerplate=options.drop_boilerplate)
    if not text:
        return _fallback(summary, NO_BODY, "no article body found")
    text = truncate(text, MAX_TEXT_CHARS)
    length = len(text)
    truncated = (
        length < MIN_BODY_CHARS
        or (bool(summary) and length <= len(summary))
        or (paywalled and length < PAYWALLED_MIN_BODY_CHARS)
    )
    return Extraction(text=text, method="trafilatura", length=length, truncated=truncated)


_TRAFILATURA: Any = None


def _trafilatura() -> Any:
    """trafilatura, imported on first use: it takes most of a second to import (dateparser, htmldate)."""
    global _TRAFILATURA
    if _TRAFILATURA is None:
        import trafilatura

        # trafilatura logs every unusable page at ERROR; a broken page is an expected outcome here and
        # is reported in the Extraction. Only quietened when nobody configured that logger.
        logger = logging.getLogger("trafilatura")
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.CRITICAL)
        _TRAFILATURA = trafilatura
    return _TRAFILATURA


# ---- decoding ----------------------------------------------------------------------------------------------

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_html(body: bytes) -> str:
    """Text of an HTML page: BOM, else UTF-8, else the charset its <meta> declares, else a guess
    (charset_normalizer on the head and tail), else UTF-8 with replacement characters. Compressed bodies
    are not inflated here (httpx already undid the Content-Encoding)."""
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body.decode(encoding, "replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    match = _META_CHARSET.search(body[:8192])
    if match:
        try:
            encoding = codecs.lookup(match.group(1).decode("ascii")).name
        except LookupError:
            encoding = ""
        if encoding and encoding not in ("utf-8", "utf-16-le", "utf-16-be", "utf-16"):
            return body.decode(encoding, "replace")
    try:
        from charset_normalizer import from_bytes

        sample = body if len(body) <= 20_000 else body[:10_000] + body[-10_000:]
        guess = from_bytes(sample).best()
        if guess is not None and guess.encoding:
            return body.decode(guess.encoding, "replace")
    except Exception:  # noqa: BLE001, S110 - a failed guess means the fallback below
        pass
    return body.decode("utf-8", "replace")


# ---- post-processing ---------------------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
# schema.org's paywall marker, in JSON-LD (`"isAccessibleForFree": false`, or "False" as a string) or in
# microdata (`itemprop="isAccessibleForFree" content="false"`); property names are case-sensitive.
_JSONLD_NOT_FREE = re.compile(r"""isAccessibleForFree["']?\s*(?::|content\s*=)\s*["']?(?:false|False|FALSE)\b""")


def _declares_paywall(markup: str) -> bool:
    return "isAccessibleForFree" in markup and bool(_JSONLD_NOT_FREE.search(markup))


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold())


def _headlines(tree: Any) -> list[list[str]]:
    """Word lists of the page's headline as it declares it: og:title / twitter:title, <title> and the
    first <h1>."""
    found: list[str] = []
    for xpath in (
        '//meta[@property="og:title"]/@content',
        '//meta[@name="twitter:title"]/@content',
        "//head/title//text()",
        "(//h1)[1]//text()",
    ):
        try:
            values = tree.xpath(xpath)
        except Exception:  # noqa: BLE001, S112 - an odd tree just has no headline
            continue
        value = " ".join(str(v) for v in values[:20]).strip()
        if value:
            found.append(value)
    return [words for words in (_words(value) for value in found) if len(words) >= 2]


def _is_headline(line_words: list[str], headlines: list[list[str]]) -> bool:
    """The line repeats the headline: it is one of them, or the start of one (a <title> ends with
    " | Site name")."""
    if len(line_words) < 2:
        return False
    return any(h[: len(line_words)] == line_words for h in headlines)


# Page furniture: a short line that is nothing but one of these is not article text, whatever the site.
# (English, German, French, Spanish, Italian, Portuguese, Polish, Russian, Lithuanian, Latvian, Estonian.)
_BOILERPLATE = re.compile(
    r"""^\W*(?:
        (?:copyright|©|\(c\)).*|.*\ball\ rights\ reserved\b.*|.*alle\ rechte\ vorbehalten.*|
        .*tous\ droits\ réservés.*|.*todos\ los\ derechos\ reservados.*|.*wszelkie\ prawa\ zastrzeżone.*|
        .*все\ права\ защищены.*|.*visos\ teisės\ saugomos.*|.*visas\ tiesības\ aizsargātas.*|
        .*kõik\ õigused\ kaitstud.*|
        advertisement|advertising|anzeige|werbung|publicité|publicidad|pubblicità|reklama|реклама|reklaam|
        (?:order\ )?reprints?|print(?:\ (?:this\ )?(?:article|page|story))?|drucken|imprimer|
        share(?:\ (?:this|on)\b.*)?|teilen|partager|compartir|udostępnij|поделиться|dalintis|
        (?:e-?mail|tweet|comment)(?:\ this)?(?:\ article|\ story)?|
        (?:sign\ up|subscribe|register)\b.*\b(?:newsletter|inbox|email|updates)\b.*|
        .*\bnewsletter\b.*\b(?:sign\ up|subscribe)\b.*|
        thanks?\ (?:you\ )?for\ (?:signing\ up|subscribing).*|
        click\ here\b.*|
        (?:read|see)\ (?:more|also)\b.{0,60}|more\ on\ this\b.{0,60}|
        related(?:\ (?:articles?|stories|content|coverage|news))?:?|
        you\ (?:may|might)\ (?:also\ )?like.{0,40}|don'?t\ miss.{0,40}|recommended(?:\ for\ you)?|
        follow\ us\b.{0,60}|
        (?:mehr\ zum\ thema|lesen\ sie\ auch|auch\ interessant)\b.{0,60}|
        (?:czytaj\ (?:też|także|również)|читайте\ также|skaitykite\ taip\ pat)\b.{0,60}
    )\W*$""",
    re.IGNORECASE | re.VERBOSE,
)
# Lines longer than this are kept whatever they contain: a real paragraph may mention a newsletter.
_BOILERPLATE_MAX_WORDS = 25


def clean_text(text: str, *, headlines: Sequence[list[str]] = (), drop_boilerplate: bool = True) -> str:
    """Lines of extracted text without the leading headline lines and without boilerplate lines; control
    characters out, runs of spaces collapsed within each line."""
    lines = []
    for raw in text.splitlines():
        line = collapse(_CONTROL.sub(" ", raw))
        if line:
            lines.append(line)
    if headlines:
        # the headline opens the text, sometimes after a kicker or a date line: look at the first three lines
        for index in range(min(3, len(lines))):
            if _is_headline(_words(lines[index]), headlines):
                del lines[: index + 1]
                break
    if drop_boilerplate:
        lines = [
            line for line in lines if len(line.split()) > _BOILERPLATE_MAX_WORDS or not _BOILERPLATE.match(line)
        ]
    return "\n".join(lines)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
