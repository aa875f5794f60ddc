"""Cutting highlighted text into fragments around its matches (what ES's highlighter returns)."""

from __future__ import annotations

import re

from archive.base import HL_END, HL_START

_SPAN = re.compile(f"{HL_START}[^{HL_END}]*{HL_END}")
_SPACE = re.compile(r"\s")


def fragments(text: str, *, size: int = 160, limit: int = 3) -> list[str]:
    """Up to `limit` fragments of about `size` characters, each around one or more marked spans, in text
    order. A text no longer than `size` is one fragment; a text without markers gives none. A fragment
    never cuts through a marked span and, where it can, starts and ends at whitespace."""
    spans = [(m.start(), m.end()) for m in _SPAN.finditer(text)]
    if not spans:
        return []
    if len(text) <= size:
        return [text.strip()]
    out: list[str] = []
    covered_to = 0
    for start, end in spans:
        if start < covered_to:
            continue
        if len(out) == limit:
            break
        slack = max(size - (end - start), 0)
        a = max(0, start - slack // 3)  # a little context before the match, more after it
        b = min(len(text), max(end, a + size))
        a, b = _widen(a, b, spans)
        inner = [s for s in spans if s[0] >= a and s[1] <= b]
        a = _snap_start(text, a, inner[0][0])
        b = _snap_end(text, b, inner[-1][1])
        out.append(text[a:b].strip())
        covered_to = b
    return out


def _widen(a: int, b: int, spans: list[tuple[int, int]]) -> tuple[int, int]:
    """Extend [a, b) so that no span is cut in two."""
    for start, end in spans:
        if start < a < end:
            a = start
        if start < b < end:
            b = end
    return a, b


def _snap_start(text: str, a: int, limit: int) -> int:
    if a == 0:
        return a
    match = _SPACE.search(text, a, limit)
    return match.end() if match else a


def _snap_end(text: str, b: int, limit: int) -> int:
    if b >= len(text):
        return b
    last = None
    for match in _SPACE.finditer(text, limit, b):
        last = match
    return last.start() if last else b
