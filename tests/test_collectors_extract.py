"""collectors.extract: article bodies of real pages (the article-extraction benchmark in ../shared/data/),
paywall teasers flagged, hostile or broken input falling back to the feed summary without raising."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import extract_eval as bench  # tests/conftest.py puts bench/ on sys.path
import pytest
from lxml import html as lxml_html

from collectors import extract
from collectors.extract import (
    MAX_ELEMENTS,
    MAX_HTML_BYTES,
    MIN_BODY_CHARS,
    extract_body,
)

# Three pages of the benchmark: a fact check on Russia (en), a German blog post, a Russian how-to page.
PAGES = {
    "1ee91d1fce65e09be8b8d2d29eab771546d98ca2ba5c862941e660e9fec12432": "en",
    "57b4dafd18cfd0531b69f81e87158648227c673ef159f8d8c87d34e34bdb21f2": "de",
    "c4a3637c6696f238cf9fe1c7fbb17bbb6731a71d4f5fe399b9b4fc3294a96a6b": "ru",
}
# A WSJ article page as served without a subscription: the page carries only the teaser.
WSJ_TEASER = "042bb7b5fedab6eac7db576522b89b93904c237d344bcbe14a6a5ab7f7335856"
SUMMARY = "Feed summary: Germany's brigade in Lithuania reaches full strength."


@pytest.fixture(scope="module")
def benchmark(shared_data: Path) -> tuple[Path, dict[str, dict]]:
    directory = shared_data / "extraction"
    if not (directory / "ground-truth.json").exists():
        pytest.skip(f"no extraction benchmark at {directory}")
    return directory, json.loads((directory / "ground-truth.json").read_text(encoding="utf-8"))


def _page(directory: Path, page_id: str) -> bytes:
    return gzip.decompress((directory / "html" / f"{page_id}.html.gz").read_bytes())


def _f1(true: str, pred: str) -> float:
    return bench.evaluate({"p": true}, {"p": pred}, n_bootstrap=0)["f1"]


def _script_and_style_texts(page: bytes) -> list[str]:
    """Long runs of script/style text of a page, collapsed."""
    root = lxml_html.fromstring(page)
    texts = []
    for element in root.iter("script", "style"):
        text = " ".join((element.text or "").split())
        if len(text) >= 40:
            texts.append(text[:80])
    return texts


@pytest.mark.parametrize("page_id", list(PAGES))
def test_real_pages_give_their_body(benchmark, page_id: str):
    directory, truth = benchmark
    page = _page(directory, page_id)
    result = extract_body(page, url=truth[page_id]["url"], summary=SUMMARY)
    assert result.method == "trafilatura"
    assert result.error is None
    assert result.length == len(result.text) > MIN_BODY_CHARS
    assert not result.truncated
    assert _f1(truth[page_id]["articleBody"], result.text) > 0.9
    # plain text: no markup, and nothing from the page's scripts or styles
    assert not re.search(r"<(?:p|div|script|style|a)\b", result.text, re.IGNORECASE)
    for code in _script_and_style_texts(page):
        assert code not in " ".join(result.text.split())


def test_a_str_page_works_like_bytes(benchmark):
    directory, _ = benchmark
    page_id = next(iter(PAGES))
    page = _page(directory, page_id)
    assert extract_body(page.decode("utf-8")).text == extract_body(page).text


def test_a_real_paywall_teaser_is_flagged(benchmark):
    directory, truth = benchmark
    result = extract_body(_page(directory, WSJ_TEASER), url=truth[WSJ_TEASER]["url"], summary=SUMMARY)
    assert result.method == "trafilatura"
    assert result.truncated


def test_a_page_cut_down_to_a_teaser_is_flagged(benchmark):
    directory, truth = benchmark
    page_id = next(iter(PAGES))
    body = " ".join(truth[page_id]["articleBody"].split())
    root = lxml_html.fromstring(_page(directory, page_id))
    paragraphs = [p for p in root.iter("p") if len(" ".join(p.text_content().split())) > 40
                  and " ".join(p.text_content().split()) in body]
    assert len(paragraphs) > 3
    for paragraph in paragraphs[1:]:  # keep the lead paragraph only, as a paywall does
        paragraph.drop_tree()
    teaser_page = lxml_html.tostring(root, encoding="utf-8")

    full = extract_body(_page(directory, page_id), summary=SUMMARY)
    teaser = extract_body(teaser_page, summary=SUMMARY)
    assert not full.truncated
    assert teaser.truncated
    assert teaser.length < full.length / 3


def test_a_body_no_longer_than_the_summary_is_flagged():
    paragraph = "The battalion arrived in Rukla on Monday after a two-day march from the port of Klaipėda. " * 8
    page = f"<html><head><title>March</title></head><body><article><p>{paragraph}</p></article></body></html>"
    assert not extract_body(page).truncated
    result = extract_body(page, summary=paragraph + " And more words than the page has.")
    assert result.method == "trafilatura"
    assert result.truncated


SCRIPTED = """<!DOCTYPE html><html><head><title>Brigade Lithuania: troops arrive | Example News</title>
<style>.secret-style-rule { color: red; }</style>
<script>var SECRET_SCRIPT_MARKER = "document.cookie"; alert(1);</script></head>
<body><nav><a href="/">Home</a> <a href="/world">World</a></nav>
<article><h1>Brigade Lithuania: troops arrive</h1>
<p>The first soldiers of the German brigade arrived in Vilnius on Tuesday, the defence ministry said.</p>
<script>document.write("SECRET_INLINE_SCRIPT")</script>
<p>About 4,800 troops are to be stationed in Lithuania by 2027, some 100 km from the Russian border.</p>
<noscript>SECRET_NOSCRIPT enable javascript</noscript>
<p>Defence minister Boris Pistorius called the deployment a lighthouse project of the alliance.</p>
<style>p { SECRET_INLINE_STYLE: 1 }</style>
<p>The brigade will be based in Rūdninkai and Rukla and is due to be fully operational in 2027.</p>
</article><footer>Copyright 2024 Example News. All rights reserved.</footer></body></html>"""


def test_script_and_style_never_reach_the_text():
    result = extract_body(SCRIPTED, summary=SUMMARY)
    assert result.method == "trafilatura"
    assert "4,800 troops" in result.text and "Rūdninkai" in result.text
    for marker in ("SECRET", "alert(", "document.", "color: red", "javascript"):
        assert marker not in result.text
    # the headline is the article's title, stored apart: it does not open the body
    assert not result.text.startswith("Brigade Lithuania")
    assert "Copyright" not in result.text


@pytest.mark.parametrize(
    "page, error",
    [
        (b"", extract.EMPTY),
        ("", extract.EMPTY),
        (None, extract.EMPTY),
        (bytes(range(256)) * 40, extract.NOT_HTML),  # binary garbage
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >> endobj", extract.NOT_HTML),
        (b'{"title": "not a page", "items": [1, 2, 3]}', extract.NOT_HTML),
        ("Just some plain text, no markup at all, " * 50, extract.NOT_HTML),
        (b"<html><body></body></html>", extract.NO_BODY),
        (b"<html><head><script>var x = 1;</script><style>p{}</style></head><body> </body></html>",
         extract.NO_BODY),
        (b"<<<>>><</\x00\x01<html<body<p<<", extract.NO_BODY),
        (b"<div>" * 20000 + b"deep" + b"</div>" * 20000, None),  # a nesting bomb: any outcome, no exception
        (b"<p>" + b"word " * (MAX_HTML_BYTES // 5) + b"</p>", extract.TOO_LARGE),
        ("<p>" + "é" * (MAX_HTML_BYTES // 2 + 10) + "</p>", extract.TOO_LARGE),  # counted in UTF-8 bytes
        (b"<html><body>" + b"<p>A short paragraph of the page.</p>" * (MAX_ELEMENTS + 1) + b"</body></html>",
         extract.TOO_LARGE),  # under the byte cap, but too many elements to extract in reasonable time
    ],
    ids=["empty-bytes", "empty-str", "none", "binary", "pdf", "json", "plain-text", "empty-body", "only-code",
         "broken-markup", "deep-nesting", "huge", "huge-str", "many-elements"],
)
def test_bad_input_falls_back_to_the_summary(page, error):
    result = extract_body(page, summary="  The feed's   summary. ")
    if error is None and result.method == "trafilatura":
        return
    assert result.method == "summary"
    assert result.text == "The feed's summary."
    assert result.length == len(result.text)
    assert not result.truncated
    if error is not None:
        assert result.error == error


def test_no_summary_and_no_body_is_none():
    result = extract_body(b"<html><body></body></html>")
    assert (result.method, result.text, result.length, result.error) == ("none", "", 0, extract.NO_BODY)


def test_an_internal_failure_falls_back(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(extract, "clean_text", boom)
    result = extract_body(SCRIPTED, summary="summary")
    assert (result.method, result.text, result.error) == ("summary", "summary", extract.INTERNAL)


def test_legacy_charsets_are_decoded():
    text = "Литва примет немецкую бригаду: 4800 военных будут размещены у границы с Россией. " * 10
    page = (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=windows-1251">'
        f"<title>Бригада</title></head><body><article><p>{text}</p></article></body></html>"
    ).encode("cp1251")
    result = extract_body(page)
    assert result.method == "trafilatura"
    assert "немецкую бригаду" in result.text


def test_boilerplate_lines_are_dropped_but_long_paragraphs_kept():
    kept = ("Readers who subscribe to our newsletter asked why the brigade needs 4,800 soldiers, so we asked the "
            "ministry, which said the number follows from NATO's regional plans for the Baltic states.")
    text = "\n".join(["Advertisement", "Share this article", "Read more: the brigade in numbers", kept,
                      "© 2024 Example News", "Sign up for our daily newsletter"])
    assert extract.clean_text(text) == kept
