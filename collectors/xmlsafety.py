"""Refuse XML that declares entities (billion laughs, external entities) before any parser sees it."""

from __future__ import annotations

import codecs
import re

# What the prolog scan stops at: a comment, a PI, a quoted literal (skipped whole), an entity declaration or
# the root element.
_PROLOG_TOKEN = re.compile(r"<!--|<\?|[\"']|<!ENTITY|<[A-Za-z_]", re.IGNORECASE)
_UTF16_32_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _as_text(data: bytes) -> str:
    """Enough of a decoding to find markup: UTF-16/32 by BOM or by NUL pattern, else Latin-1, which maps
    every byte of any ASCII-compatible encoding (UTF-8, Windows-125x, KOI8-R...) to the same ASCII markup."""
    for bom, encoding in _UTF16_32_BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    start = data[:4]
    if start == b"\x00\x00\x00<":
        return data.decode("utf-32-be", errors="replace")
    if start == b"<\x00\x00\x00":
        return data.decode("utf-32-le", errors="replace")
    if start[:2] == b"\x00<":
        return data.decode("utf-16-be", errors="replace")
    if start[:2] == b"<\x00":
        return data.decode("utf-16-le", errors="replace")
    return data.decode("latin-1")


def declares_entities(data: bytes) -> bool:
    """True if the prolog (everything before the root element) declares an entity.

    Feeds and OPML files have no use for them: an internal DTD with `<!ENTITY` is how entity-expansion bombs
    and external-entity reads are built, so such a document is refused outright instead of trusted to a
    parser's limits."""
    text = _as_text(data)
    # A scan, not a search: a `<!ENTITY` only counts outside comments, PIs and literals, and the root is the
    # first `<name` outside them too (a `<a` in a comment or a SYSTEM literal does not end the prolog).
    position = 0
    while match := _PROLOG_TOKEN.search(text, position):
        token = match.group()
        if token in ("<!--", "<?"):
            end = text.find("-->" if token == "<!--" else "?>", match.end())
            if end == -1:  # unterminated: a parser sees no markup after it
                return False
            position = end + (3 if token == "<!--" else 2)
        elif token in ("\"", "'"):
            end = text.find(token, match.end())
            position = match.end() if end == -1 else end + 1
        else:
            return token.upper() == "<!ENTITY"
    return False
