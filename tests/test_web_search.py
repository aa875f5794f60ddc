"""The desk's search page (`GET /`) and its twins (`/api/search`, `/api/search.csv`, `/api/search.json`), through
FastAPI's TestClient on a real state DB and SQLite archive: articles and stories are written to the state DB
and sent to the archive by the real index stage (with the real model's vectors where meaning is tested)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from archive.index import index
from core.db import session_scope
from core.ids import stable_id
from core.models import Article, Story
from core.vectors import to_bytes
from flankwatch.web.app import create_app
from flankwatch.web.chart import day_chart, day_series
from flankwatch.web.search_pages import csv_cell

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=timezone.utc)
BRIGADE = "st-brigade"
TRANSIT = "st-transit"
HOSTILE_STORY = "st-hostile"
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
JS_URL = "javascript:alert(1)"

ARTICLES = [  # (key, source, language, hours after T0, title, summary, story, topic)
    ("brigade-en", "LRT English", "en", 0, "German brigade moves 5,000 troops to Rukla",
     "The Bundeswehr's 45th Panzer Brigade will be based near Rukla and Rūdninkai in Lithuania.", BRIGADE,
     "lithuania-brigade"),
    ("brigade-de", "Tagesschau", "de", 5, "Bundeswehr-Brigade in Litauen: erste Soldaten in Rukla",
     "Die Panzerbrigade 45 soll bis 2027 einsatzbereit sein.", BRIGADE, "lithuania-brigade"),
    ("brigade-en2", "ERR News", "en", 26, "Lithuania readies Rūdninkai range for the German brigade",
     "Construction of barracks for the brigade goes on at Rūdninkai.", BRIGADE, "lithuania-brigade"),
    ("transit-en", "Reuters", "en", 30, "Lithuania bans Kaliningrad rail transit of sanctioned goods",
     "Vilnius halted the transit of steel and coal to the Russian exclave of Kaliningrad.", TRANSIT, "kaliningrad"),
    ("transit-ru", "Meduza", "ru", 31, "Литва запретила транзит подсанкционных товаров в Калининград",
     "Литовские железные дороги прекратили перевозку стали и угля в российский эксклав.", TRANSIT, "kaliningrad"),
    ("transit-lt", "LRT", "lt", 49, "Lietuva uždraudė sankcionuotų prekių tranzitą į Kaliningradą",
     "Geležinkeliai nutraukė plieno ir anglies gabenimą į Rusijos eksklavą.", TRANSIT, "kaliningrad"),
    ("football", "BBC", "en", 50, "Champions League final tickets sell out in minutes",
     "Fans queued online for hours.", None, None),
    ("hostile", SCRIPT, "en", 52, f"{IMG} brigade {SCRIPT}", f"{SCRIPT} the brigade {IMG}", HOSTILE_STORY,
     "lithuania-brigade"),
    ("formula", "=cmd|' /C calc'!A0", "en", 53, "=HYPERLINK(\"https://evil.example\",\"brigade\")",
     "-2+3 brigade", None, None),
]
HEADLINES = {BRIGADE: "German brigade moves 5,000 troops to Rukla", TRANSIT: "Lithuania bans Kaliningrad transit",
             HOSTILE_STORY: f"{SCRIPT} story {IMG}"}
URLS = {"hostile": JS_URL, "formula": "https://formula.example/1"}


def article_id(key: str) -> str:
    return stable_id("web-search", key)


def put_archive(settings, embedder=None) -> None:
    """The articles and stories above in the state DB (enriched, with the model's vectors when `embedder` is
    given: title and lead as the enrich stage embeds them), then the real index stage."""
    vectors = {}
    if embedder is not None:
        from enrichment.embeddings import article_text

        texts = [article_text(title, summary) for _, _, _, _, title, summary, _, _ in ARTICLES]
        vectors = dict(zip([a[0] for a in ARTICLES], embedder.passages(texts)))
    with session_scope(settings) as session:
        for story_id, headline in HEADLINES.items():
            session.add(Story(id=story_id, topic="lithuania-brigade", headline=headline, first_seen=T0,
                              last_seen=T0, centroid=b"\x00" * 16, created_at=T0, updated_at=T0))
        session.flush()
        for key, source, language, hours, title, summary, story, topic in ARTICLES:
            at = T0 + timedelta(hours=hours)
            url = URLS.get(key, f"https://{source.lower().replace(' ', '-')}.example/{key}")
            vector = vectors.get(key)
            session.add(Article(
                id=article_id(key), source=source, url=url, canonical_url=f"https://canonical.example/{key}",
                title=title, summary=summary, language=language, published_at=at, fetched_at=at, updated_at=at,
                content_hash=stable_id("hash", key), enriched_at=at, topic=topic, relevance=0.9 if topic else 0.1,
                relevant=topic is not None, story_id=story,
                embedding=to_bytes(vector) if vector is not None else None,
                embedding_model=embedder.name if vector is not None else None,
            ))  # fmt: skip
    done = index(settings)
    assert done.articles_indexed == len(ARTICLES) and not done.failed


@pytest.fixture
def client(settings):
    put_archive(settings)
    return TestClient(create_app(settings))


class Controls(HTMLParser):
    """Form controls, labels, links and tags of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str | None]] = []
        self.label_for: set[str] = set()
        self.links: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.rels: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):  # type: ignore[no-untyped-def]
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag in ("input", "select", "textarea") and attributes.get("type") not in ("hidden", "submit"):
            self.controls.append(attributes)
        if tag == "label" and attributes.get("for"):
            self.label_for.add(attributes["for"] or "")
        if tag == "a" and attributes.get("href") is not None:
            self.links.append(attributes["href"] or "")
            if attributes.get("rel"):
                self.rels[attributes["rel"] or ""] = attributes["href"] or ""


def parsed(html: str) -> Controls:
    page = Controls()
    page.feed(html)
    return page


def query_of(link: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(link).query)


# --- the page --------------------------------------------------------------------------------------------------


def test_hits_are_highlighted_with_their_source_language_date_and_story(client):
    page = client.get("/", params={"q": "brigade"})
    assert page.status_code == 200
    html = page.text
    assert "<mark>brigade</mark>" in html and "<mark>Brigade</mark>" in html
    assert 'href="https://lrt-english.example/brigade-en"' in html  # the title links to the article
    assert "LRT English" in html and "English (en)" in html and "2025-03-03 08:00 UTC" in html
    assert f'<a href="/stories/{BRIGADE}">German brigade moves 5,000 troops to Rukla</a>' in html
    assert "Champions League" not in html  # not a match
    other = client.get("/", params={"q": "Kaliningrad", "mode": "words"}).text
    assert "<mark>Kaliningrad</mark>" in other and "Reuters" in other


def test_empty_query_browses_the_newest_articles(client):
    page = client.get("/")
    assert page.status_code == 200
    assert "Newest articles" in page.text and f"{len(ARTICLES)} articles in the archive" in page.text
    positions = [page.text.find(word) for word in ("Champions League", "Lietuva uždraudė", "Литва запретила")]
    assert -1 not in positions and positions == sorted(positions)  # newest first
    assert "<mark>" not in page.text
    assert "Fans queued online for hours." in page.text  # the summary stands in for highlights


def test_filters_narrow_and_paging_links_keep_every_parameter(client):
    params = {"q": "brigade", "mode": "words", "language": "en", "since": "2025-03-03", "until": "2025-03-06",
              "sort": "newest", "per_page": "1"}
    page = client.get("/", params=params)
    assert page.status_code == 200
    html = page.text
    assert "Tagesschau" not in html.split('id="facets-heading"')[0]  # German article filtered out of the hits
    assert "4 articles" in html  # en: two brigade reports, the hostile one, the formula one
    links = parsed(html).links
    nexts = [link for link in links if "page=2" in link]
    assert nexts, "a next-page link"
    kept = query_of(nexts[0])
    assert kept == {"q": ["brigade"], "mode": ["words"], "language": ["en"], "since": ["2025-03-03"],
                    "until": ["2025-03-06"], "sort": ["newest"], "page": ["2"], "per_page": ["1"]}
    second = parsed(client.get(nexts[0]).text)
    assert second.rels["next"] and query_of(second.rels["next"])["page"] == ["3"]
    back = query_of(second.rels["prev"])
    assert "page" not in back and {k: v for k, v in kept.items() if k != "page"} == back
    # a date range: only the first day
    first_day = client.get("/", params={"q": "brigade", "mode": "words", "until": "2025-03-03"}).text
    assert "2 articles" in first_day


def test_facets_show_outlets_and_story_headlines_and_add_filters(client):
    page = client.get("/", params={"q": "brigade", "mode": "words"})
    html = page.text
    facets = html.split('id="facets-heading"')[1]
    assert "LRT English" in facets and "Tagesschau" in facets and "ERR News" in facets
    assert "German brigade moves 5,000 troops to Rukla" in facets  # the headline, not the id
    assert f">{BRIGADE}<" not in facets
    assert "lithuania-brigade" in facets and "German (de)" in facets
    links = parsed(facets).links
    story_links = [link for link in links if query_of(link).get("story") == [BRIGADE]]
    assert story_links and query_of(story_links[0])["q"] == ["brigade"]
    source_links = [link for link in links if query_of(link).get("source") == ["Tagesschau"]]
    narrowed = client.get(source_links[0])
    assert narrowed.status_code == 200 and "1 article" in narrowed.text
    assert "Outlet: Tagesschau" in narrowed.text  # the active filter, with a link that removes it
    assert '<input type="hidden" name="source" value="Tagesschau">' in narrowed.text  # kept by the form
    story_page = client.get(story_links[0]).text
    assert "Story: German brigade moves 5,000 troops to Rukla" in story_page and "3 articles" in story_page


def test_chart_of_articles_per_day_is_inline_svg_with_a_table(client):
    html = client.get("/", params={"q": "brigade", "mode": "words"}).text
    assert "<svg" in html and 'role="img"' in html
    assert '<title id="day-chart-title">Matching articles per day</title>' in html
    assert "<desc id=\"day-chart-desc\">" in html
    assert '<th scope="row"><a href="/?q=brigade&amp;mode=words&amp;since=2025-03-03&amp;until=2025-03-03">' \
           "2025-03-03</a></th><td>2</td>" in html
    assert "<script" not in html and "style=" not in html


def test_chart_fills_missing_days_and_escapes():
    assert day_series({"2025-03-01": 2, "2025-03-04": 1}) == [
        ("2025-03-01", 2), ("2025-03-02", 0), ("2025-03-03", 0), ("2025-03-04", 1)]
    svg = str(day_chart({"2025-03-01": 3}, SCRIPT))
    assert SCRIPT not in svg and "&lt;script&gt;" in svg
    assert str(day_chart({}, "x")) == ""


def test_every_control_has_a_label_and_the_save_form_carries_the_search(client):
    html = client.get("/", params={"q": "brigade", "mode": "words", "source": "LRT English"}).text
    page = parsed(html)
    assert page.controls
    for control in page.controls:
        assert control.get("id") in page.label_for, f"no <label> for {control}"
    save = html.split('id="save-heading"')[1]
    assert '<form method="post" action="/watches"' in save
    assert '<input type="hidden" name="csrf_token" value="' in save
    assert '<input type="hidden" name="q" value="brigade">' in save
    assert '<input type="hidden" name="mode" value="words">' in save
    assert '<input type="hidden" name="source" value="LRT English">' in save
    assert 'name="route"' in save and 'name="name"' in save


def test_export_links_keep_the_search(client):
    html = client.get("/", params={"q": "brigade", "language": "en", "mode": "words"}).text
    links = parsed(html).links
    csv_links = [link for link in links if link.startswith("/api/search.csv")]
    json_links = [link for link in links if link.startswith("/api/search.json")]
    assert len(csv_links) == len(json_links) == 2
    for link in csv_links + json_links:
        assert query_of(link)["q"] == ["brigade"] and query_of(link)["language"] == ["en"]
    assert any(query_of(link).get("all") == ["1"] for link in csv_links)
    assert "Up to 1000 results" in html


# --- errors and hostile feed text --------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "message"), [
    ({"q": "brigade", "since": "yesterday"}, "is not a date"),
    ({"q": "brigade", "mode": "nonsense"}, "mode must be one of"),
    ({"q": "brigade", "sort": "best"}, "sort must be one of"),
    ({"q": "brigade", "page": "0"}, "page must be within"),
    ({"q": "brigade", "per_page": "5000"}, "per_page must be within"),
    ({"q": "brigade", "page": "two"}, "is not a whole number"),
    ({"since": "2025-03-05", "until": "2025-03-01"}, "is after until"),
    ({"q": "x" * 600}, "longer than"),
])
def test_a_bad_query_is_a_400_with_a_message(client, params, message):
    page = client.get("/", params=params)
    assert page.status_code == 400
    assert 'class="error" role="alert"' in page.text and message in page.text
    assert 'id="q"' in page.text  # the form is there to fix it
    api = client.get("/api/search", params=params)
    assert api.status_code == 400 and message in api.json()["detail"]
    assert client.get("/api/search.csv", params=params).status_code == 400


def test_hostile_feed_text_is_escaped_and_never_a_tag_or_a_link(client):
    for params in ({"q": "brigade", "mode": "words"}, {}, {"source": SCRIPT}, {"story": HOSTILE_STORY}):
        page = client.get("/", params=params)
        assert page.status_code == 200
        html = page.text
        assert SCRIPT not in html and IMG not in html and "<img" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        tags = parsed(html).tags
        assert not [tag for tag, _ in tags if tag in ("script", "img", "iframe")]
        assert not [a for tag, a in tags for value in a.values() if value and value.lower().startswith("javascript:")]
        assert not [a for tag, a in tags if any(name.startswith("on") for name in a)]
    html = client.get("/", params={"q": "brigade", "mode": "words"}).text
    assert f"Address (not a web link): <span class=\"url\">{JS_URL}</span>" in html  # shown as text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; story &#34;&gt;&lt;img" in html  # the hostile headline
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt; <mark>brigade</mark>" in html  # highlighted, escaped


def test_every_response_has_the_content_security_policy(client):
    for url in ("/", "/?q=brigade", "/?since=bad", "/api/search?q=brigade", "/api/search.csv?q=brigade",
                "/api/search.json?q=brigade&all=1", "/api/search?page=0"):
        response = client.get(url)
        policy = response.headers.get("content-security-policy", "")
        assert "default-src 'self'" in policy and "unsafe-inline" not in policy, url
        assert response.headers.get("x-content-type-options") == "nosniff"


# --- the JSON twin and the downloads ----------------------------------------------------------------------------


def test_json_twin_has_hits_facets_and_story_headlines(client):
    data = client.get("/api/search", params={"q": "brigade", "mode": "words", "per_page": "2"}).json()
    assert data["mode"] == "words" and data["total"] == 5 and data["page"] == 1 and data["per_page"] == 2
    assert len(data["hits"]) == 2
    hit = data["hits"][0]
    assert set(hit) >= {"id", "title", "url", "source", "language", "published_at", "story_id", "story_headline",
                        "highlights"}
    assert "\ue000brigade\ue001" in json.dumps(data["hits"], ensure_ascii=False)
    assert data["facets"]["source"]["LRT English"] == 1 and data["facets"]["day"]["2025-03-03"] == 2
    assert data["story_headlines"][BRIGADE] == HEADLINES[BRIGADE]
    browse = client.get("/api/search").json()
    assert browse["total"] == len(ARTICLES) and browse["hits"][0]["title"].startswith("=HYPERLINK")


def test_a_search_beyond_the_window_says_what_it_counted(client, monkeypatch):
    import archive.sqlite as sqlite_archive

    monkeypatch.setattr(sqlite_archive, "SEARCH_WINDOW", 3)
    page = client.get("/", params={"q": "brigade", "source": ["LRT English", "Tagesschau", "ERR News", SCRIPT]})
    assert "more than 3 articles; ranked, counted and shown: the newest 3" in page.text
    data = client.get("/api/search", params={"q": "brigade", "mode": "words"}).json()
    assert (data["total"], data["total_exact"], data["window"], data["pages"]) == (5, True, 3, 1)
    assert len(data["hits"]) == 3 and sum(data["facets"]["source"].values()) == 3


def test_csv_download_with_the_formula_guard(client):
    response = client.get("/api/search.csv", params={"q": "brigade", "mode": "words", "all": "1"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith('attachment; filename="flankwatch-search-')
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == ["id", "published_at", "source", "language", "title", "url", "story_id", "story_headline"]
    assert len(rows) == 1 + 5
    by_id = {row[0]: row for row in rows[1:]}
    formula = by_id[article_id("formula")]
    assert formula[2] == "'=cmd|' /C calc'!A0" and formula[4].startswith("'=HYPERLINK(")
    brigade = by_id[article_id("brigade-en")]
    assert brigade[2] == "LRT English" and brigade[6] == BRIGADE and brigade[7] == HEADLINES[BRIGADE]
    assert brigade[1] == "2025-03-03T08:00:00+00:00"
    assert [csv_cell(v) for v in ("-1", "+1", "@x", "\tx", "ok", None)] == ["'-1", "'+1", "'@x", "'\tx", "ok", ""]
    page = client.get("/api/search.csv", params={"q": "brigade", "mode": "words", "per_page": "2"})
    assert len(list(csv.reader(io.StringIO(page.content.decode("utf-8-sig"))))) == 1 + 2


def test_json_download(client):
    response = client.get("/api/search.json", params={"q": "Kaliningrad", "mode": "words", "all": "1"})
    assert response.status_code == 200
    assert response.headers["content-disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["all"] is True and data["exported"] == data["total"] == 1
    assert data["hits"][0]["story_headline"] == HEADLINES[TRANSIT]


# --- meaning ------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_meaning_finds_the_russian_report_for_an_english_query(settings, embedder):
    put_archive(settings, embedder)
    client = TestClient(create_app(settings))
    words = client.get("/api/search", params={"q": "Kaliningrad rail transit", "mode": "words"}).json()
    assert words["hits"] and all(hit["language"] == "en" for hit in words["hits"])
    data = client.get("/api/search", params={"q": "Kaliningrad rail transit", "mode": "meaning",
                                             "per_page": "3"}).json()
    assert data["mode"] == "meaning"
    assert "ru" in [hit["language"] for hit in data["hits"]]
    page = client.get("/", params={"q": "Kaliningrad rail transit", "mode": "meaning", "per_page": "3"})
    assert page.status_code == 200 and "Литва запретила транзит" in page.text
    assert "the best 3 by meaning" in page.text
    default = client.get("/", params={"q": "Kaliningrad rail transit"})  # vectors of the model: hybrid
    assert 'id="mode-hybrid" name="mode" value="hybrid" checked' in default.text
    assert "by words and meaning" in default.text


def test_an_unreachable_archive_is_a_503_with_a_message(settings):
    from feedserver import closed_port_url

    down = settings.model_copy(update={"archive_backend": "elasticsearch", "elasticsearch_url": closed_port_url("")})
    client = TestClient(create_app(down))
    page = client.get("/", params={"q": "brigade", "mode": "words"})
    assert page.status_code == 503 and "The archive cannot be reached" in page.text and 'id="q"' in page.text
    assert client.get("/api/search", params={"q": "brigade"}).status_code == 503
    assert client.get("/api/search.csv").status_code == 503
