"""Properties of the desk's HTML escaping (flankwatch/web): whatever an article's title, summary, URL, outlet
or highlight fragments hold, a rendered result list has the markup of a harmless one (the same elements and
attributes, in the same order), only http(s) addresses become links, and every piece of feed text comes back
unchanged when the browser decodes it."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from html.parser import HTMLParser

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from archive.base import HL_END, HL_START, ArticleDoc, Hit  # noqa: E402
from flankwatch.web.app import templates  # noqa: E402
from flankwatch.web.chart import day_chart  # noqa: E402
from flankwatch.web.search_pages import highlighted, hit_view, is_web_link  # noqa: E402

_PIECES = st.sampled_from(
    ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "\"", "'", "`", "&", "&amp;", "&lt;", "&#x3c;",
     "<", ">", "</li>", "</ol><b>", "<!--", "-->", "<![CDATA[", "]]>", "{{ 7*7 }}", "{% raw %}", "javascript:",
     " onmouseover=\"x\"", "\u202e", "\u200b", "\x00", "\n", "a", "Ж", " "]
)
HOSTILE = st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=10).map("".join)
MARKED = st.lists(st.one_of(HOSTILE, st.sampled_from([HL_START, HL_END])), max_size=6).map("".join)
URLS = st.one_of(
    HOSTILE,
    st.builds(lambda scheme, rest: f"{scheme}:{rest}",
              st.sampled_from(["http://", "https://", "javascript", "JaVaScRiPt", "data", "vbscript", " http://"]),
              HOSTILE),
)
STORY_IDS = st.one_of(st.none(), st.just("s1"), HOSTILE.filter(bool))
_WHEN = datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)


class _Markup(HTMLParser):
    """The elements and attributes of a page (its structure) and its decoded text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.structure: list[tuple[str, tuple[str, ...]]] = []
        self.hrefs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.structure.append((tag, tuple(sorted(name for name, _ in attrs))))
        self.hrefs.extend(value or "" for name, value in attrs if name == "href")

    def handle_endtag(self, tag: str) -> None:
        self.structure.append(("/" + tag, ()))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.structure.append(("<!--", ()))


def _parsed(page: str) -> _Markup:
    parser = _Markup()
    parser.feed(page)
    parser.close()
    return parser


def _hits_page(title: str, summary: str, url: str, source: str, story: str | None, fragment: str | None) -> str:
    doc = ArticleDoc(id="a1", url=url, title=title, summary=summary, content="", source=source, language="lt",
                     published_at=_WHEN, story_id=story)
    hit = Hit(id="a1", score=1.0, doc=doc, highlights={"summary": [fragment]} if fragment is not None else {})
    view = hit_view(hit, {story: title} if story else {})
    return templates.env.get_template("search_hits.html").render(
        hits=[view], first=1, form={"q": title, "filtered": False}, result=None, prev_url=None, next_url=None,
    )


@given(MARKED)
def test_a_highlight_fragment_becomes_text_and_marks_only(fragment: str) -> None:
    out = str(highlighted(fragment))
    bare = out.replace("<mark>", "").replace("</mark>", "")
    assert "<" not in bare and ">" not in bare and '"' not in bare and "'" not in bare
    assert html.unescape(bare) == fragment.replace(HL_START, "").replace(HL_END, "")


@given(URLS)
def test_only_http_addresses_with_a_host_are_links(url: str) -> None:
    if is_web_link(url):
        assert url.strip().lower().startswith(("http://", "https://"))


@given(HOSTILE, HOSTILE, URLS, HOSTILE, STORY_IDS, st.one_of(st.none(), MARKED))
def test_a_result_list_has_the_markup_of_a_harmless_one(
    title: str, summary: str, url: str, source: str, story: str | None, fragment: str | None
) -> None:
    hostile = _parsed(_hits_page(title, summary, url, source, story, fragment))
    # The harmless twin takes the same branches: a link or not, a summary or not, the same highlight marks.
    benign_url = "https://example.org/a" if is_web_link(url) else ("urn:x" if url else "")
    benign_fragment = None if fragment is None else re.sub(f"[^{HL_START}{HL_END}]+", "x", fragment)
    harmless = _parsed(_hits_page("x", "x" if summary else "", benign_url, "x", "s1" if story else None,
                                  benign_fragment))
    assert hostile.structure == harmless.structure
    for href in hostile.hrefs:
        assert href.startswith("/stories/") or href == url, href
        assert not href.strip().lower().startswith(("javascript:", "data:", "vbscript:"))
    page_text = "".join(hostile.text)
    assert source in page_text  # the outlet's name as written, decoded by the browser


@given(HOSTILE, st.dictionaries(st.sampled_from(["2026-11-29", "2026-11-30", "2026-12-01"]),
                                st.integers(min_value=0, max_value=10_000), min_size=1))
def test_a_day_chart_title_never_becomes_markup(title: str, counts: dict[str, int]) -> None:
    hostile = _parsed(str(day_chart(counts, title)))
    harmless = _parsed(str(day_chart(counts, "x")))
    assert hostile.structure == harmless.structure
    assert title in "".join(hostile.text)
