"""The web desk in a real browser: Chromium driven by Playwright against a real uvicorn on 127.0.0.1.

One demo replay of real news (`flankwatch.demo.run_demo`, as `flankwatch demo` does) fills a fresh var dir
for the whole module, plus one hostile article (and its story) put in through the state DB and the index
stage; `create_app` serves it from a background thread. The tests then use the desk as an analyst would:
search by words and by meaning, open stories, save and delete a search, do all of it with the keyboard, on a
phone-sized screen, and check every page with axe-core (tests/vendor/axe-core, vendored from npm).

Chromium: Debian's `chromium` (Playwright's own browser download is not available here).
`bash scripts/with-chromium.sh COMMAND` installs it when missing and exports FLANKWATCH_TEST_CHROMIUM (as
`.ci/run` does); without it the tests look for `chromium` on PATH and are skipped when there is none.

    bash scripts/with-chromium.sh .venv/bin/python -m pytest -q tests/test_web_browser.py

`FLANKWATCH_SCREENSHOTS=1` also writes docs/screenshots/search.png and story.png (not in CI: they are
committed).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the `test` extra)")

HERE = Path(__file__).resolve().parent
AXE_JS = HERE / "vendor" / "axe-core" / "axe.min.js"
SCREENSHOTS = HERE.parent / "docs" / "screenshots"
CHROMIUM_ENV = "FLANKWATCH_TEST_CHROMIUM"
NO_CHROMIUM = (
    f"no Chromium: {CHROMIUM_ENV} is not set and `chromium` is not on PATH; run the tests through "
    "scripts/with-chromium.sh (as .ci/run does), which installs Debian's chromium when missing"
)
DEMO_LIMIT, DEMO_CYCLES = 100, 4  # ~1 minute: real news with Kaliningrad and Russian reports of Estonia's airspace
TIMEOUT_MS = 20_000
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 360, "height": 740}

# Feed text is hostile: this title must show as text, run nothing, and its URL must not become a link.
HOSTILE_TITLE = '<script>window.__pwned=1</script>"><img src=x onerror="window.__pwned=2">'
HOSTILE_URL = "javascript:alert(1)"
HOSTILE_SOURCE = 'Evil <b onmouseover="window.__pwned=3">Outlet</b>'


@dataclass
class Desk:
    base: str  # http://127.0.0.1:PORT
    settings: object
    big_story: str  # the demo story with the most articles
    hostile_story: str
    hostile_article: str


# --- infrastructure ---------------------------------------------------------------------------------------------


def chromium_path() -> str | None:
    return os.environ.get(CHROMIUM_ENV) or shutil.which("chromium") or shutil.which("chromium-browser")


def _add_hostile(settings, embedder) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """One hostile article in its own story, through the state DB and the real index stage."""
    from archive.index import index
    from core.db import session_scope
    from core.ids import article_id, stable_id
    from core.models import Article, Story
    from core.vectors import to_bytes

    when = datetime(2021, 3, 1, 12, 0, tzinfo=timezone.utc)  # older than the demo: not first in any list
    summary = "A hostile feed item: zebraquokka markup in every field, none of it may run."
    vector = embedder.passages([f"{HOSTILE_TITLE} {summary}"])[0]
    ident = article_id(HOSTILE_URL)
    story_id = stable_id("story", "hostile-browser-test")[:32]
    with session_scope(settings) as session:
        session.add(Story(
            id=story_id, topic="baltic-deployments", headline=HOSTILE_TITLE, representative_article_id=ident,
            first_seen=when, last_seen=when, article_count=1, source_count=1, sources={HOSTILE_SOURCE: 1},
            language_counts={"en": 1}, terms=["zebraquokka"], centroid=to_bytes(vector),
            centroid_model=embedder.name, born_at=when,
        ))  # fmt: skip
        session.flush()
        session.add(Article(
            id=ident, source=HOSTILE_SOURCE, url=HOSTILE_URL, canonical_url=HOSTILE_URL, title=HOSTILE_TITLE,
            summary=summary, content=None, language="en", published_at=when, fetched_at=when, updated_at=when,
            content_hash="hostile", embedding=to_bytes(vector), embedding_model=embedder.name, enriched_at=when,
            topic="baltic-deployments", relevance=0.9, relevant=True, story_id=story_id,
        ))  # fmt: skip
    summary_of_index = index(settings)
    assert not summary_of_index.failed, summary_of_index
    return story_id, ident


def _add_watch(settings) -> None:  # type: ignore[no-untyped-def]
    """A saved search, so that /watches has its table for the keyboard and axe checks."""
    from alerts.watches import add_watch
    from archive.backends import open_archive
    from core.db import session_scope

    route = settings.routes()[0].name if settings.routes() else "default"
    with open_archive(settings) as archive, session_scope(settings) as session:
        add_watch(session, archive, settings, "brigade", mode="words", route=route, name="Brigade news")


def _biggest_story(settings) -> str:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from core.db import session_scope
    from core.models import Story

    with session_scope(settings) as session:
        story = session.scalars(
            select(Story).where(Story.merged_into.is_(None)).order_by(Story.article_count.desc(), Story.id)
        ).first()
        assert story is not None, "the demo made no story"
        return story.id


class _Server:
    """uvicorn serving `app` on 127.0.0.1 (a port the kernel picks) in a background thread."""

    def __init__(self, app) -> None:  # type: ignore[no-untyped-def]
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]},
                                       name="desk-uvicorn", daemon=True)  # fmt: skip

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.socket.close()


@pytest.fixture(scope="module")
def chromium() -> str:
    path = chromium_path()
    if not path:
        pytest.skip(NO_CHROMIUM)
    return path


@pytest.fixture(scope="module")
def desk(chromium, tmp_path_factory, shared_data, embedder) -> Iterator[Desk]:  # type: ignore[no-untyped-def]
    """The demo replayed once into a fresh var dir, plus the hostile article, served by a real uvicorn."""
    from rich.console import Console

    from core.db import upgrade
    from core.settings import Settings
    from flankwatch.demo import run_demo
    from flankwatch.web.app import create_app

    root = tmp_path_factory.mktemp("desk")
    settings = Settings(var_dir=root / "var", feeds_file=root / "no-feeds.yaml")
    upgrade(settings)
    result = run_demo(settings, data_dir=shared_data, limit=DEMO_LIMIT, cycles=DEMO_CYCLES,
                      console=Console(quiet=True))  # fmt: skip
    assert result.errors == [], result.errors
    hostile_story, hostile_article = _add_hostile(settings, embedder)
    _add_watch(settings)
    with _Server(create_app(settings)) as server:
        yield Desk(f"http://127.0.0.1:{server.port}", settings, _biggest_story(settings), hostile_story,
                   hostile_article)  # fmt: skip


@pytest.fixture(scope="module")
def browser(chromium) -> Iterator[object]:  # type: ignore[no-untyped-def]
    with playwright_api.sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        except playwright_api.Error as exc:
            pytest.skip(f"{NO_CHROMIUM}; launching {chromium} failed: {exc}")
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def new_page(browser, desk) -> Iterator:  # type: ignore[no-untyped-def]
    """new_page(viewport=DESKTOP, bypass_csp=False) -> a page in a fresh browser context (closed afterwards).
    Every page records CSP violations and script errors in `page.problems`."""
    contexts = []

    def make(viewport: dict[str, int] = DESKTOP, bypass_csp: bool = False):  # type: ignore[no-untyped-def]
        context = browser.new_context(viewport=viewport, bypass_csp=bypass_csp, base_url=desk.base,
                                      java_script_enabled=True)  # fmt: skip
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.problems = []  # type: ignore[attr-defined]
        page.on("console", lambda m: m.type == "error" and not _favicon(m.location.get("url", ""))
                and page.problems.append(f"console: {m.text} ({m.location.get('url')})"))  # fmt: skip
        page.on("pageerror", lambda e: page.problems.append(f"script error: {e}"))
        return page

    yield make
    for context in contexts:
        context.close()


def _favicon(url: str) -> bool:
    return urlsplit(url).path == "/favicon.ico"  # asked for by the browser itself; the desk has none


def go(page, path: str):  # type: ignore[no-untyped-def]
    response = page.goto(path)
    assert response is not None and response.ok, f"GET {path}: {response.status if response else 'no response'}"
    return response


def hit_titles(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [t.strip() for t in page.locator("main ol.hits > li .hit-title").all_inner_texts()]


# --- searching ------------------------------------------------------------------------------------------------


def test_search_by_words_highlights_the_matches(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    go(page, "/")
    page.get_by_label("Search for").fill("kaliningrad")
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r"[?&]q=kaliningrad"))
    marks = page.locator("main ol.hits mark")
    assert marks.count() >= 3, page.locator("main").inner_text()[:2000]
    assert all(text.lower().startswith("kaliningrad") for text in marks.all_inner_texts()[:20])
    assert page.locator("main ol.hits > li").count() >= 3
    assert not page.problems, page.problems


def test_search_by_meaning_finds_a_russian_report_from_english(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    go(page, "/")
    page.get_by_label("Search for").fill("Estonian airspace violation")
    page.get_by_label("Meaning (any language)").check()
    page.get_by_role("button", name="Search", exact=True).click()
    page.wait_for_url(re.compile(r"mode=meaning"))
    hits = page.locator("main ol.hits > li")
    assert hits.count() >= 5
    languages = [text.strip() for text in page.locator("main ol.hits > li .language").all_inner_texts()]
    russian = [title for title, language in zip(hit_titles(page), languages) if language.endswith("(ru)")]
    assert russian, f"no Russian hit for an English query: {list(zip(languages, hit_titles(page)))}"
    # none of them shares a word with the query: found by meaning, in another script
    assert any(re.search("[а-яА-Я]", title) for title in russian), russian
    assert not page.problems, page.problems


def test_a_story_opens_from_a_hit_and_from_the_stories_list(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    go(page, "/?q=kaliningrad&mode=words")
    story_link = page.locator("main ol.hits a[href^='/stories/']").first
    headline = story_link.inner_text().strip()
    story_link.click()
    page.wait_for_url(re.compile(r"/stories/[^/?]+$"))
    assert page.locator("main h1").inner_text().strip() == headline
    assert page.locator("main ol.story-timeline > li").count() >= 1

    go(page, "/stories")
    first = page.locator("main table.stories tbody th[scope=row] a").first
    headline = first.inner_text().strip()
    first.click()
    page.wait_for_url(re.compile(r"/stories/[^/?]+$"))
    assert page.locator("main h1").inner_text().strip() == headline
    assert page.get_by_role("heading", name="Timeline").is_visible()
    assert not page.problems, page.problems


def test_save_a_search_see_it_listed_then_delete_it(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    name = "Kaliningrad transit (browser test)"
    go(page, "/?q=kaliningrad")
    save = page.locator("main section.search-save")
    save.get_by_label("Name").fill(name)
    save.get_by_role("button", name="Save and alert").click()
    page.wait_for_url(re.compile(r"/watches\?added="))
    added = parse_qs(urlsplit(page.url).query)["added"][0]
    assert page.get_by_role("status").inner_text().startswith(f"Saved search {added} added")
    row = page.locator(f"main table.watches tbody tr:has(code:text-is('{added}'))")
    assert row.count() == 1, page.locator("main").inner_text()
    assert name in row.inner_text() and "kaliningrad" in row.inner_text()

    # "Search now" goes back to the same search
    row.get_by_role("link", name=re.compile("^Search now")).click()
    page.wait_for_url(re.compile(r"^[^?]+/\?"))
    assert page.get_by_label("Search for").input_value() == "kaliningrad"
    page.go_back()

    page.locator(f"main table.watches tbody tr:has(code:text-is('{added}'))").get_by_role(
        "button", name=re.compile("^Delete")).click()  # fmt: skip
    page.wait_for_url(re.compile(r"/watches\?removed="))
    assert page.locator(f"main table.watches tbody tr:has(code:text-is('{added}'))").count() == 0
    assert "deleted" in page.get_by_role("status").inner_text()
    assert not page.problems, page.problems


# --- the keyboard ---------------------------------------------------------------------------------------------

# The controls of <main> a Tab press should reach, in document order: one stop per radio group (the checked
# radio, else the first), nothing inside a closed <details> but its <summary>, nothing hidden or disabled; and
# a region that scrolls sideways with no control inside (Chromium makes such a scroller a Tab stop itself, so
# that the keyboard can scroll it). Each gets data-fw-tab = its position.
MARK_TAB_STOPS = """() => {
  const selector = 'a[href], button, input:not([type=hidden]), select, textarea, summary, [tabindex]';
  const main = document.querySelector('main');
  const reachable = el => !el.disabled && el.getAttribute('tabindex') !== '-1' && el.checkVisibility() &&
    !(el.closest('details:not([open])') && el !== el.closest('details:not([open])').querySelector(':scope > summary'));
  const scroller = el => {
    const style = getComputedStyle(el);
    const scrolls = (/(auto|scroll)/.test(style.overflowX) && el.scrollWidth > el.clientWidth) ||
                    (/(auto|scroll)/.test(style.overflowY) && el.scrollHeight > el.clientHeight);
    return scrolls && ![...el.querySelectorAll(selector)].some(reachable);
  };
  const candidates = [...main.querySelectorAll('*')].filter(el => (el.matches(selector) || scroller(el)) && reachable(el));
  const stops = [], groups = new Set();
  for (const el of candidates) {
    if (el.type === 'radio' && el.name) {
      if (groups.has(el.name)) continue;
      groups.add(el.name);
      const group = candidates.filter(o => o.type === 'radio' && o.name === el.name && o.form === el.form);
      stops.push(group.find(o => o.checked) || group[0]);
    } else stops.push(el);
  }
  stops.forEach((el, i) => { el.dataset.fwTab = String(i); });
  return stops.map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' +
                         (el.innerText || el.value || el.name || el.getAttribute('aria-label') || '').trim().slice(0, 40));
}"""
FOCUSED = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return 'body';
  if (el.dataset && el.dataset.fwTab !== undefined) return Number(el.dataset.fwTab);
  const where = document.querySelector('main').contains(el) ? 'main' : 'outside';
  return where + ':' + el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + (el.innerText || '').trim().slice(0, 40);
}"""


def tab_through(page) -> tuple[list[str], list[object]]:  # type: ignore[no-untyped-def]
    """(the expected stops of <main>, what Tab focused from the top of the page until it left <main>)."""
    stops = page.evaluate(MARK_TAB_STOPS)
    page.evaluate("() => { document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0); }")
    seen: list[object] = []
    entered = False
    for _ in range(len(stops) + 40):
        page.keyboard.press("Tab")
        focused = page.evaluate(FOCUSED)
        inside = isinstance(focused, int) or str(focused).startswith("main:")
        if inside:
            entered = True
            if not seen or seen[-1] != focused:  # a date input takes several Tabs (its day, month, year)
                seen.append(focused)
        elif entered:
            break
    return stops, seen


@pytest.mark.parametrize("path", ["/?q=kaliningrad", "/", "/stories", "/watches", "/feeds", "story"])
def test_every_control_is_reached_with_tab_in_order(desk, new_page, path) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    go(page, f"/stories/{desk.big_story}" if path == "story" else path)
    stops, seen = tab_through(page)
    assert stops, "no control in <main>"
    expected = list(range(len(stops)))
    missed = [stops[i] for i in expected if i not in seen]
    strays = [item for item in seen if not isinstance(item, int)]
    assert seen == expected, (
        f"Tab order on {path}: {len(seen)} stops, expected {len(stops)}; never focused: {missed[:10]}; "
        f"focused but not a control: {strays[:10]}; order: {seen[:60]}"
    )


def test_search_with_the_keyboard_only(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    go(page, "/")
    # the skip link first, and it leads to the content
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.textContent.trim()") == "Skip to content"
    page.keyboard.press("Enter")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.name") == "q":
            break
    else:
        pytest.fail("Tab never reached the search box")
    page.keyboard.type("kaliningrad")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"[?&]q=kaliningrad"))
    assert page.locator("main ol.hits mark").count() >= 1
    # the mode with the arrow keys: Tab to the radio group, ArrowRight moves to the next mode
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.name") == "mode":
            break
    else:
        pytest.fail("Tab never reached the mode radios")
    before = page.evaluate("() => document.activeElement.value")
    page.keyboard.press("ArrowRight")
    after = page.evaluate("() => document.activeElement.value")
    assert after != before and page.evaluate("() => document.activeElement.checked")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(rf"mode={after}"))
    assert page.locator("main ol.hits > li").count() >= 1


# --- hostile feed text ----------------------------------------------------------------------------------------

NO_JAVASCRIPT_LINKS = """() => [...document.querySelectorAll('[href], [src], [action], [formaction]')]
  .map(el => el.getAttribute('href') || el.getAttribute('src') || el.getAttribute('action') || el.getAttribute('formaction'))
  .filter(value => /^\\s*(javascript|data|vbscript):/i.test(value || ''))"""


def assert_inert(page, what: str) -> None:  # type: ignore[no-untyped-def]
    assert page.evaluate("() => typeof window.__pwned") == "undefined", f"{what}: the hostile markup ran"
    assert page.evaluate(NO_JAVASCRIPT_LINKS) == [], f"{what}: a javascript:/data: link"
    assert page.locator("main script, main img[src=x], main [onerror], main [onmouseover]").count() == 0
    assert not [p for p in page.problems if "Content Security Policy" in p], page.problems


def test_hostile_titles_render_as_text_on_the_search_page(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    response = go(page, "/?q=zebraquokka&mode=words")
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp, csp
    titles = hit_titles(page)
    assert titles == [HOSTILE_TITLE], titles  # literally, as text
    hit = page.locator("main ol.hits > li").first
    assert HOSTILE_SOURCE in hit.inner_text()
    assert HOSTILE_URL in hit.inner_text()  # shown as an address, not a link
    assert hit.locator("a[href]").count() <= 1  # at most the link to its story
    page.locator("main ol.hits > li .hit-title").first.hover()
    page.locator("main ol.hits > li .source").first.hover()
    assert_inert(page, "search page")

    # the words of the title are searchable and highlighted without breaking out of the text
    go(page, "/?q=pwned&mode=words")
    assert HOSTILE_TITLE in hit_titles(page)
    assert page.locator("main ol.hits mark").count() >= 1
    assert_inert(page, "search page, highlighted")


def test_hostile_titles_render_as_text_on_the_story_pages(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    response = go(page, f"/stories/{desk.hostile_story}")
    assert "default-src 'self'" in response.headers.get("content-security-policy", "")
    assert page.locator("main h1").inner_text().strip() == HOSTILE_TITLE
    assert page.title().startswith(HOSTILE_TITLE)
    timeline = page.locator("main ol.story-timeline").inner_text()
    assert HOSTILE_TITLE in timeline and HOSTILE_URL in timeline and HOSTILE_SOURCE in timeline
    page.locator("main h1").hover()
    assert_inert(page, "story page")

    go(page, "/stories?q=pwned")
    assert page.locator("main table.stories tbody th[scope=row] a").first.inner_text().strip() == HOSTILE_TITLE
    assert_inert(page, "stories list")


# --- a phone --------------------------------------------------------------------------------------------------

WIDEST = """(limit) => [...document.querySelectorAll('body *')]
  .filter(el => el.getBoundingClientRect().right > limit + 1)
  .filter(el => ![...el.children].some(c => c.getBoundingClientRect().right > limit + 1))
  .slice(0, 8)
  .map(el => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : '') +
             ' right=' + Math.round(el.getBoundingClientRect().right) + ' "' + (el.textContent || '').trim().slice(0, 40) + '"')"""


@pytest.mark.parametrize("path", ["/?q=kaliningrad", "/?q=Estonian+airspace&mode=meaning", "story", "/stories"])
def test_readable_on_a_phone_without_sideways_scrolling(desk, new_page, path) -> None:  # type: ignore[no-untyped-def]
    page = new_page(viewport=PHONE)
    go(page, f"/stories/{desk.big_story}" if path == "story" else path)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"] + 1, f"{path} is {width}px wide at 360px: {page.evaluate(WIDEST, PHONE['width'])}"
    assert page.locator("main h1").is_visible()


# --- axe-core -------------------------------------------------------------------------------------------------

AXE_RUN = """async () => {
  const result = await axe.run(document, { resultTypes: ['violations'] });
  return result.violations.map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 4).map(n => n.target.join(' ') + ' -- ' + (n.failureSummary || '').replace(/\\s+/g, ' ')),
  }));
}"""


@pytest.mark.parametrize("path", [
    "/?q=kaliningrad", "/", "story", "/stories", "/watches", "/feeds", "/api/docs",
])  # fmt: skip
def test_axe_finds_no_serious_violation(desk, new_page, path) -> None:  # type: ignore[no-untyped-def]
    # axe is injected as a script: only this context bypasses the page's CSP to let it in
    page = new_page(bypass_csp=True)
    go(page, f"/stories/{desk.big_story}" if path == "story" else path)
    page.add_script_tag(content=AXE_JS.read_text(encoding="utf-8"))
    violations = page.evaluate(AXE_RUN)
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    assert not serious, f"axe on {path}:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']}\n    " + "\n    ".join(v["nodes"]) for v in serious
    )


# --- every page: no CSP violation, no script error --------------------------------------------------------------


def test_no_page_breaks_its_content_security_policy(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    page = new_page()
    for path in ("/", "/?q=kaliningrad", "/?q=Estonian+airspace&mode=meaning", "/stories",
                 f"/stories/{desk.big_story}", "/watches", "/feeds"):  # fmt: skip
        go(page, path)
        stylesheet = page.evaluate("() => getComputedStyle(document.body).marginTop")
        assert stylesheet == "0px", f"{path}: /static/flankwatch.css did not apply"
    assert not page.problems, page.problems


# --- screenshots for the README -------------------------------------------------------------------------------


@pytest.mark.skipif(os.environ.get("FLANKWATCH_SCREENSHOTS") != "1",
                    reason="FLANKWATCH_SCREENSHOTS=1 writes docs/screenshots/ (not in CI)")  # fmt: skip
def test_screenshots(desk, new_page) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = new_page(viewport=DESKTOP)
    go(page, "/?q=kaliningrad")
    page.screenshot(path=str(SCREENSHOTS / "search.png"))
    go(page, f"/stories/{desk.big_story}")
    page.screenshot(path=str(SCREENSHOTS / "story.png"))
