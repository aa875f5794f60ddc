"""Plain text out of the HTML that feeds carry (hostile input: parsed, never rendered or executed)."""

from __future__ import annotations

import html
import re

from lxml import etree
from lxml import html as lxml_html

# Markup whose text is not reading text.
_DROP = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "math", "head", "title")
# Elements that separate words: their text must not run into the next one.
_BLOCKS = frozenset(
    "address article aside blockquote br dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr "
    "li main nav ol p pre section table tbody td tfoot th thead tr ul img caption".split()
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")
_SPACE = re.compile(r"\s+")
_MARKUP = re.compile(r"<[A-Za-z!/]")
# Tags still present in the text after one pass: the feed escaped its HTML twice.
_ESCAPED_TAG = re.compile(
    r"</?(?:p|a|img|br|div|span|b|i|em|strong|ul|ol|li|h[1-6]|figure|iframe|script|style)\b[^<>]*>", re.IGNORECASE
)
# Input beyond this many characters per output character is not read (a 20 kB summary never needs 50 MB).
_INPUT_FACTOR = 50


def collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def plain_text(value: str | None, max_chars: int = 20000) -> str:
    """Text that is declared plain: control characters out, entities a feed escaped twice decoded,
    whitespace collapsed. `<` stays as it is (`x<y` is not markup here)."""
    if not value:
        return ""
    value = _CONTROL.sub(" ", value[: max(max_chars, 1) * _INPUT_FACTOR])
    if "&" in value:
        value = html.unescape(value)
    return truncate(collapse(value), max_chars)


def truncate(text: str, max_chars: int) -> str:
    """Cut at a word boundary when one is near, with an ellipsis."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return text[:max_chars]
    cut = text[: max_chars - 1]
    space = cut.rfind(" ")
    if space > max_chars * 0.8:
        cut = cut[:space]
    return cut.rstrip() + "…"


def html_to_text(markup: str | None, max_chars: int = 20000) -> str:
    """Readable text of an HTML fragment: scripts and styles dropped, entities decoded, whitespace collapsed.
    HTML that a feed escaped twice (tags left in the text after one pass) gets a second pass."""
    text = _html_to_text(markup, max_chars)
    if _ESCAPED_TAG.search(text):
        text = _html_to_text(text, max_chars)
    return text


def _html_to_text(markup: str | None, max_chars: int) -> str:
    if not markup:
        return ""
    markup = _CONTROL.sub(" ", markup[: max(max_chars, 1) * _INPUT_FACTOR])
    if not _MARKUP.search(markup):
        return truncate(collapse(html.unescape(markup)), max_chars)
    parser = lxml_html.HTMLParser(
        recover=True, no_network=True, remove_comments=True, remove_pis=True, remove_blank_text=False
    )
    try:
        root = lxml_html.fragment_fromstring(markup, create_parent="div", parser=parser)
    except (etree.ParserError, ValueError):
        return truncate(collapse(html.unescape(re.sub(r"<[^>]*>", " ", markup))), max_chars)
    for element in list(root.iter(*_DROP)):
        if element is not root and element.getparent() is not None:
            element.drop_tree()
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.lower() in _BLOCKS:
            element.text = " " + (element.text or "")
            element.tail = " " + (element.tail or "")
    text = etree.tostring(root, method="text", encoding="unicode", with_tail=False)
    return truncate(collapse(text), max_chars)
