"""The desk's saved-search and feed-health pages (`flankwatch.web.desk_pages`) through the real app: the
form adds a watch to the state DB and the SQLite archive (as `flankwatch watch add` does), lists it,
deletes it; CSRF on every POST; hostile text escaped; the feed table of `flankwatch feeds`."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import lxml.html
import pytest
from test_web_stories import assert_safe_page, client_of, tree

from alerts.watches import list_watches
from archive.backends import open_archive
from core.db import session_scope
from core.models import Feed, FetchRecord
from core.settings import AlertRoute

ROUTES = [AlertRoute(name="analysts", channel="C0ANALYSTS", digest_at=None),
          AlertRoute(name="ops", channel="C0OPS", digest_at=None, ops=True)]  # fmt: skip


@pytest.fixture
def routed(settings):
    return settings.model_copy(update={"alert_routes": ROUTES})


def csrf_of(response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', response.text)
    assert match, "no CSRF field in the form"
    return match.group(1)


def form(token: str, **fields) -> dict:
    return {"csrf_token": token, "q": "", "mode": "words", "route": "analysts", "name": "", **fields}


def archive_ids(settings) -> set[str]:
    with open_archive(settings) as archive:
        return {saved.id for saved in archive.list_searches()}


def state_ids(settings) -> list[str]:
    with session_scope(settings) as session:
        return [watch.id for watch in list_watches(session)]


def test_add_list_search_and_delete_a_watch_through_the_forms(routed):
    client = client_of(routed)
    page = client.get("/watches")
    assert page.status_code == 200
    assert_safe_page(page)
    assert "No saved search yet" in page.text
    routes = tree(page).xpath("//select[@name='route']/option/@value")
    assert routes == ["analysts", "ops"]  # settings.routes(): a catch-all route leaves no "default"
    token = csrf_of(page)

    added = client.post("/watches", data=form(token, q='brigade "Rukla"', source=["LRT", "Delfi, ERR"],
                                              language="lt", topic="lithuania-brigade", name="Brigade in Rukla"),
                        follow_redirects=False)  # fmt: skip
    assert added.status_code == 303
    location = added.headers["location"]
    assert location.startswith("/watches?added=")
    [watch_id] = state_ids(routed)
    assert watch_id in archive_ids(routed)  # the archive's percolator has it too

    listed = client.get(location)
    assert "Saved search" in listed.text and "added" in listed.text
    assert_safe_page(listed)
    row = tree(listed).xpath(f"//tr[@id='watch-{watch_id}']")[0]
    cells = [" ".join(td.text_content().split()) for td in row.xpath("td")]
    assert cells[0] == 'brigade "Rukla"' and cells[1] == "words"
    assert cells[2] == "source: LRT, Delfi, ERR; language: lt; topic: lithuania-brigade"
    assert cells[3] == "analysts"
    assert "Brigade in Rukla" in row.xpath("string(th)")
    search = row.xpath(".//a[starts-with(text(), 'Search now')]/@href")[0]
    parts = urlsplit(search)
    assert parts.path == "/" and parse_qs(parts.query) == {
        "q": ['brigade "Rukla"'], "mode": ["words"], "source": ["LRT", "Delfi", "ERR"], "language": ["lt"],
        "topic": ["lithuania-brigade"]}  # fmt: skip

    api = client.get("/api/watches").json()
    assert [w["id"] for w in api["watches"]] == [watch_id]
    assert api["watches"][0]["sources"] == ["LRT", "Delfi", "ERR"] and api["watches"][0]["search_url"] == search
    assert api["watches"][0]["route"] == "analysts" and api["routes"][0] == {"name": "analysts", "channel": "C0ANALYSTS"}

    delete_url = row.xpath(".//form/@action")[0]
    assert delete_url == f"/watches/{watch_id}/delete"
    deleted = client.post(delete_url, data={"csrf_token": csrf_of(listed)}, follow_redirects=False)
    assert deleted.status_code == 303 and deleted.headers["location"].startswith("/watches?removed=")
    assert state_ids(routed) == [] and watch_id not in archive_ids(routed)
    after = client.get(deleted.headers["location"])
    assert "deleted" in after.text and "No saved search yet" in after.text
    # deleting it again: nothing there
    again = client.post(delete_url, data={"csrf_token": token}, follow_redirects=False)
    assert again.status_code == 404 and "There is no saved search" in again.text


def test_every_post_needs_the_csrf_token(routed):
    client = client_of(routed)
    token = csrf_of(client.get("/watches"))
    without = form(token, q="brigade")
    del without["csrf_token"]
    assert client.post("/watches", data=without, follow_redirects=False).status_code == 403
    assert client.post("/watches", data=form("forged-token", q="brigade"), follow_redirects=False).status_code == 403
    assert state_ids(routed) == []
    # a request from another site carries no cookie: refused even with a token seen earlier
    assert client_of(routed).post("/watches", data=form(token, q="brigade"), follow_redirects=False).status_code == 403

    assert client.post("/watches", data=form(token, q="brigade"), follow_redirects=False).status_code == 303
    [watch_id] = state_ids(routed)
    assert client.post(f"/watches/{watch_id}/delete", data={}, follow_redirects=False).status_code == 403
    assert client.post(f"/watches/{watch_id}/delete", data={"csrf_token": "x"}, follow_redirects=False).status_code == 403
    assert state_ids(routed) == [watch_id]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"q": "brigade", "route": "nowhere"}, "Unknown route &#39;nowhere&#39;"),
        ({"q": "   ", "mode": "meaning"}, "A search by meaning needs words"),
        ({"q": "", "mode": "hybrid"}, "A search by hybrid needs words"),
        ({"q": ""}, "This search cannot be saved"),  # words, no filters: it would match every article
        ({"q": "brigade", "mode": "telepathy"}, "Mode must be one of words, meaning, hybrid"),
        ({"q": "x" * 1001}, "at most 1000 characters"),
    ],
)
def test_invalid_input_re_renders_the_form_with_a_message_and_400(routed, fields, message):
    client = client_of(routed)
    token = csrf_of(client.get("/watches"))
    response = client.post("/watches", data=form(token, name="kept name", **fields), follow_redirects=False)
    assert response.status_code == 400
    assert message in response.text
    assert_safe_page(response)
    page = tree(response)
    assert page.xpath("string(//p[@role='alert'])")
    assert page.xpath("//input[@name='name']/@value") == ["kept name"]  # what was typed stays
    assert state_ids(routed) == [] and archive_ids(routed) == set()


def test_a_watch_by_meaning_gets_its_vector_and_threshold(routed, embedder):
    client = client_of(routed)
    token = csrf_of(client.get("/watches"))
    response = client.post("/watches", data=form(token, q="Bundeswehr Brigade in Litauen", mode="hybrid",
                                                 route="ops"), follow_redirects=False)  # fmt: skip
    assert response.status_code == 303
    [watch] = client.get("/api/watches").json()["watches"]
    assert watch["mode"] == "hybrid" and watch["route"] == "ops" and watch["min_similarity"] > 0
    listed = client.get("/watches")
    assert f"(≥ {watch['min_similarity']:.3f})" in listed.text


def test_hostile_watch_text_and_feed_names_are_escaped(routed):
    client = client_of(routed)
    token = csrf_of(client.get("/watches"))
    evil_name = "<script>alert('name')</script>"
    evil_query = '"><img src=x onerror=alert(1)>'
    assert client.post("/watches", data=form(token, q=evil_query, name=evil_name, source="<b>RT</b>"),
                       follow_redirects=False).status_code == 303  # fmt: skip
    with session_scope(routed) as session:
        session.add(Feed(url="javascript:alert(2)//x", name='<img src=x onerror="alert(3)">', language="<i>",
                         last_error_class="<script>", last_error="</td><script>alert(4)</script>",
                         last_fetch_at=datetime.now(timezone.utc), health="failing"))  # fmt: skip
    for path in ("/watches", "/feeds"):
        response = client.get(path)
        assert response.status_code == 200
        assert_safe_page(response)
        for raw in ("<script>alert", "<img src=x", "<b>RT</b>", "<i>"):
            assert raw not in response.text, (path, raw)
    watches = client.get("/watches").text
    assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in watches
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in watches
    feeds = tree(client.get("/feeds"))
    assert feeds.xpath("//table[@class='feeds']//a") == []  # a feed's URL is never a link
    assert feeds.xpath("string(//table[@class='feeds']/tbody/tr/th)") == '<img src=x onerror="alert(3)">'


def _feeds(settings, now: datetime) -> None:
    with session_scope(settings) as session:
        ok = Feed(url="https://www.lrt.lt/rss", name="LRT", language="lt", country="LT", key_outlet=True,
                  last_fetch_at=now - timedelta(minutes=5), last_success_at=now - timedelta(minutes=5),
                  last_status="ok", health="ok", items_per_day=48.0, next_fetch_at=now + timedelta(minutes=25),
                  schedule_reason="interval", last_new_item_at=now - timedelta(minutes=30), items_total=900)
        failing = Feed(url="https://ria.example/export/rss2/index.xml", name="RIA Novosti", language="ru",
                       country="RU", state_affiliated=True, last_fetch_at=now - timedelta(minutes=2),
                       last_success_at=now - timedelta(days=2), last_status="error", last_error_class="timeout",
                       last_error="read timeout after 20 s", consecutive_failures=3, health="failing",
                       items_per_day=120.0, next_fetch_at=now + timedelta(hours=1), schedule_reason="backoff",
                       last_new_item_at=now - timedelta(days=2), items_total=5000)
        never = Feed(url="https://new.example/feed", name="New Outlet", language="en")
        off = Feed(url="https://off.example/feed", name="Off Outlet", enabled=False, last_fetch_at=now,
                   health="unhealthy", consecutive_failures=12, last_error_class="http_404")
        session.add_all([ok, failing, never, off])
        session.flush()
        session.add(FetchRecord(run_id="run-1", feed_id=ok.id, started_at=now - timedelta(minutes=5), status="ok",
                                items_new=4))


def test_feeds_page_shows_the_health_columns_and_its_twin(settings):
    now = datetime.now(timezone.utc)
    _feeds(settings, now)
    client = client_of(settings)
    response = client.get("/feeds")
    assert response.status_code == 200
    assert_safe_page(response)
    page = tree(response)
    headers = [th.text_content() for th in page.xpath("//table[@class='feeds']/thead//th")]
    assert headers == ["Feed", "Host", "Language", "Country", "State-affiliated", "Key outlet", "Health", "Last error",
                       "Failures in a row", "Last success", "Items/day", "Next fetch", "Silent", "New last run",
                       "Items"]  # fmt: skip
    assert all(th.get("scope") == "col" for th in page.xpath("//table[@class='feeds']/thead//th"))
    rows = {tr.xpath("string(th)").split(" (")[0].strip(): [" ".join(td.text_content().split()) for td in tr.xpath("td")]
            for tr in page.xpath("//table[@class='feeds']/tbody/tr")}  # fmt: skip
    assert list(rows) == ["LRT", "New Outlet", "RIA Novosti", "Off Outlet"]  # enabled first, by name
    lrt = rows["LRT"]
    assert lrt[:6] == ["www.lrt.lt", "lt", "LT", "no", "yes", "ok"]
    assert lrt[7] == "0" and lrt[9] == "48.0" and lrt[10].endswith("(interval)") and lrt[11] == "–"
    assert lrt[12:] == ["4", "900"]
    ria = rows["RIA Novosti"]
    assert ria[:6] == ["ria.example", "ru", "RU", "⚑ yes", "no", "failing"]
    assert ria[6].startswith("timeout") and "read timeout after 20 s" in ria[6]
    assert ria[7] == "3" and ria[10].endswith("(backoff)") and ria[11] == "silent"
    assert rows["New Outlet"][5] == "never" and rows["New Outlet"][10] == "due"
    assert rows["Off Outlet"][5] == "unhealthy" and rows["Off Outlet"][7] == "12"
    assert "(disabled)" in page.xpath("string(//table[@class='feeds']/tbody/tr[4]/th)")
    summary = " ".join(page.xpath("string(//p[@class='feeds-summary'])").split())
    assert summary == "4 feeds: 1 ok, 1 failing, 1 unhealthy, 1 silent, 1 never polled."

    api = client.get("/api/feeds").json()
    assert [f["name"] for f in api["feeds"]] == list(rows)
    assert api["summary"] == {"feeds": 4, "ok": 1, "failing": 1, "unhealthy": 1, "silent": 1, "never_polled": 1}
    ria_json = api["feeds"][2]
    assert ria_json["health"] == "failing" and ria_json["last_error_class"] == "timeout"
    assert ria_json["failures_in_a_row"] == 3 and ria_json["silent"] is True and ria_json["state_affiliated"]
    assert ria_json["schedule_reason"] == "backoff" and ria_json["host"] == "ria.example"
    assert api["feeds"][0]["new_last_run"] == 4 and api["feeds"][0]["key"] is True and api["last_run"] == "run-1"


def test_every_desk_page_has_labels_and_the_policy(routed):
    client = client_of(routed)
    for path in ("/watches", "/feeds", "/stories", "/stories/none"):
        response = client.get(path)
        assert response.status_code in (200, 404), path
        assert_safe_page(response)
    nav = tree(client.get("/feeds")).xpath("//nav[@aria-label='Main']//a[@aria-current='page']/@href")
    assert nav == ["/feeds"]
    controls = lxml.html.fromstring(client.get("/watches").text).xpath("//form[@action='/watches']//*[@name]")
    assert {c.get("name") for c in controls} >= {"csrf_token", "q", "mode", "source", "language", "topic", "route",
                                                 "name"}  # fmt: skip


def test_the_search_pages_save_form_adds_the_watch_it_shows(routed):
    """The search page's "Save this search" posts here with the same field names; its story and date filters
    are not kept by a watch (it alerts on new articles), and the page that follows says so."""
    client = client_of(routed)
    search = client.get("/?q=brigade&source=LRT&source=Delfi&language=lt&since=2025-03-01&story=s-1")
    assert search.status_code == 200
    saves = tree(search).xpath("//form[@action='/watches']")
    assert saves, "the search page has a Save this search form"
    fields: list[tuple[str, str]] = [(i.get("name"), i.get("value") or "") for i in saves[0].xpath(".//input[@name]")]
    fields += [(s.get("name"), s.xpath("string(option[1]/@value)")) for s in saves[0].xpath(".//select[@name]")]
    data: dict[str, list[str]] = {}
    for name, value in fields:
        data.setdefault(name, []).append(value)
    response = client.post("/watches", data=data, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert "ignored=story" in response.headers["location"] and "ignored=dates" in response.headers["location"]
    [watch] = client.get("/api/watches").json()["watches"]
    assert watch["query"] == "brigade" and watch["sources"] == ["LRT", "Delfi"] and watch["languages"] == ["lt"]
    assert watch["route"] == "analysts"
    notice = client.get(response.headers["location"]).text
    assert "leaves out the search&#39;s story filter and dates" in notice
