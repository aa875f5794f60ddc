"""Making hostile feed text safe for Slack mrkdwn.

Slack treats `&`, `<` and `>` as control characters: `<!channel>` pings a whole channel, `<@U123>` a
person, `<url|label>` makes a link. Feed text is written by strangers, so every piece of it goes through
`escape_mrkdwn` (or `link`) before it becomes part of a message; only this module writes `<...>`.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlsplit

ELLIPSIS = "…"

# Invisible characters that reorder or hide text (bidi overrides, zero-width space, BOM): a title can use
# them to make a message read differently from what it says.
_INVISIBLE = {0x200B, 0x200E, 0x200F, 0x2060, 0xFEFF, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}
_WHITESPACE = re.compile(r"\s+")


def escape_mrkdwn(text: str) -> str:
    """Escape the three characters Slack parses (and only those): `&`, `<`, `>`."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clean_text(text: str | None, *, single_line: bool = True) -> str:
    """Drop control and invisible characters (terminal escapes, bidi overrides) from feed text.

    With `single_line`, all whitespace (newlines included) collapses to single spaces.
    """
    if not text:
        return ""
    kept = []
    for char in text:
        code = ord(char)
        if code in _INVISIBLE:
            continue
        if unicodedata.category(char) == "Cc" and char not in "\n\t":
            continue
        kept.append(char)
    cleaned = "".join(kept)
    if single_line:
        return _WHITESPACE.sub(" ", cleaned).strip()
    return cleaned.strip()


def _encode_url_char(char: str) -> str:
    if char in "|<> \"`" or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp"):
        return "".join(f"%{byte:02X}" for byte in char.encode("utf-8"))
    if char == "&":
        return "&amp;"  # Slack decodes entities in the whole text, links included
    return char


def safe_url(url: str | None) -> str | None:
    """The URL ready to sit inside `<...|...>`, or None when it is not an absolute http(s) URL.

    Characters that could end the link or start a new control sequence (`|`, `<`, `>`), spaces and
    control or invisible characters are percent-encoded; `&` becomes `&amp;` like everywhere in Slack text.
    """
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return "".join(_encode_url_char(char) for char in url)


def link(url: str | None, label: str, *, max_url: int = 2000, max_label: int = 500) -> str:
    """`<url|label>` for an http(s) URL, else just the escaped label (a `javascript:` link is no link).

    The label is cut to `max_label` characters after escaping. A URL longer than `max_url` once encoded
    is dropped: it would crowd out everything else.
    """
    text = truncate(escape_mrkdwn(clean_text(label)), max_label)
    target = safe_url(url)
    if target is None or len(target) > max_url:
        return text
    return f"<{target}|{text or target}>"


def truncate(text: str, n: int) -> str:
    """`text` cut to at most `n` characters, ending in `…` when cut.

    Safe on escaped text: never ends inside an entity (`&am…`), which Slack would show as garbage.
    """
    if n <= 0:
        return ""
    if len(text) <= n:
        return text
    if n <= len(ELLIPSIS):  # no room for the ellipsis (and "&" alone would be a broken entity)
        return _whole_entities(text[:n])
    return _whole_entities(text[: n - len(ELLIPSIS)]).rstrip() + ELLIPSIS


def _whole_entities(cut: str) -> str:
    """`cut` without a trailing piece of an entity (`&am`)."""
    amp = cut.rfind("&")
    if amp != -1 and len(cut) - amp < len("&amp;") and ";" not in cut[amp:]:
        return cut[:amp]
    return cut
