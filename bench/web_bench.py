"""Server time of the desk's pages on a full-size archive: `python bench/web_bench.py [--articles 100000]
[--queries 50] [--seed 1]` (about 5 minutes to build at full size on two cores, 1 to measure).

Goal (issue 18): with 100,000 articles in the SQLite archive, the search page answers in p95 <= 150 ms for
word queries and <= 300 ms for hybrid ones, and a story page in p95 <= 100 ms.

Data. In a temporary var dir (or `--var-dir`, kept; `--reuse` measures it again without building), a state DB
(`core.db.upgrade`) and the SQLite archive are filled from the real items of ../shared/data
(`flankwatch.replay.load_items`, about 19,000 items in four languages, 1,600 outlets): the items are cycled
over, each copy with a new URL and id and a neutral suffix on its title ("update 3", "aktualisiert 2", ...) so
that no two articles are the same text, at a publication time drawn over the last `--days` (60) days. They are
`Article` rows (bulk inserts in batches of 2,000: bounded memory), each with the `Feed` of its outlet (2 % of
the outlets flagged state-affiliated), grouped into stories of skewed sizes (runs of consecutive articles,
log-normal sizes with mean 16: about N/20 stories holding 80 % of the articles; the rest are unclustered and
not relevant, as in a real run), with `Story` rows, syndicated copies (5 % of a story's articles copy its first
one), `StoryEvent`s (born; development for a third of them; growing for the large ones; merged, with an
absorbed story, for one in 33) and the sent Slack `Alert`s of each story's thread. The real index stage
(`archive.index.index`: `article_doc`/`story_doc`, FTS5, topics, story links) then fills the archive.

Vectors. Embedding 100,000 texts with the real model takes far too long here (10-100 texts/s on two shared
cores), so a sample of distinct real items (`--embed-sample`; default 2,000, fewer for small runs) is embedded
with the configured model (`get_embedder(settings.embedding_model).passages` of `article_text`, what the
enrichment stage embeds). Each article gets the vector of its source item when that was embedded, else the
vector of a sampled item of the same language, plus small Gaussian noise (cosine about 0.98 to it),
renormalised, and stored with the model's name. The archive's kNN and hybrid paths thus do their real work
over N vectors of that model; only the neighbourhoods are approximate.

Measurement. The app runs in-process (`fastapi.testclient.TestClient(create_app(settings))`); each request is
timed with `time.perf_counter` around `client.get` (server time plus the in-process client's small overhead;
no network), with the process's CPU time beside it, and a `Server-Timing` header is read when the app sends
one. Kinds: word queries (`GET /?q=...&mode=words`: names, places, units, phrases, prefix*, a OR b, filters by
language, source and date, sorts, page 2), hybrid queries (`mode=hybrid`) and story pages (`GET /stories/{id}`
of random stories; the largest story apart), and their JSON twins. One warm-up request per kind is left out
(the first hybrid one also loads what the archive keeps in memory; the model's load is reported apart). The
same work is timed without the pages: `flankwatch.search.run_search` on the archive, hybrid's three parts
(query vector, kNN ranking, text ranking) and the story page's data function, which tells the page's cost from
the archive's. Every request runs in `--repeat` (3) rounds and counts with its median, so one slow round of
a shared machine is not taken for the page's speed; the slowest single round is printed as "worst". Last, the
first hybrid search after an index run (the pipeline's cycle) is timed apart (`hybrid_after_index`). If a page
module is not there yet, its kind's goal is taken on the direct calls (and `"http"` says so).

Printed: per kind n, p50, p95, max (ms), p95 / goal, CPU p95 and worst; the slowest requests; build time; state
DB and archive size on disk; the load average. The last line is one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import random
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
from sqlalchemy import insert, select, update

PROJECT_ROOT = Path(__file__).resolve().parents[1]
if str(PROJECT_ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(PROJECT_ROOT))

from archive.base import SearchQuery
from archive.index import index as index_stage
from core.db import session_scope, upgrade
from core.ids import article_id, stable_id
from core.models import Alert, Article, Feed, Story, StoryEvent
from core.settings import Settings
from core.vectors import to_bytes
from enrichment.embeddings import article_text, get_embedder
from flankwatch.replay import ReplayItem, load_items

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
GOALS_MS = {"word": 150.0, "hybrid": 300.0, "story": 100.0}
PAGE_FILES = {"search": "flankwatch/web/search_pages.py", "story": "flankwatch/web/story_pages.py"}
BATCH = 2000  # state DB rows per insert
NOISE = 0.01  # per-dimension noise on a borrowed vector: cosine to its source about 0.98 (384 dimensions)
STORY_MEAN = 16.0  # mean story size (log-normal, sigma 1): N/20 stories hold 80 % of the articles
STORY_SHARE = 0.8
STORY_MAX = 2000
STATE_SHARE = 0.02  # outlets marked state-affiliated (synthetic: the story page lists them)
SYNDICATED_SHARE = 0.05  # articles of a story that copy its first article
MERGED_EVERY = 33  # one story in 33 absorbed a smaller one
SLACK_CHANNEL = "C0FLANKWATCH"
AFTER_INDEX_ARTICLES = 20  # articles re-indexed before each "hybrid_after_index" request

# Neutral words that make each copy of an item a distinct text without adding a searchable topic word.
SUFFIXES = {
    "en": ("update", "latest", "follow-up", "revised", "live"),
    "de": ("aktualisiert", "neu", "Nachtrag", "live"),
    "ru": ("обновлено", "дополнено", "онлайн"),
    "lt": ("atnaujinta", "papildyta"),
}


@dataclass(frozen=True)
class Ask:
    """One search as an analyst types it: the text and the filters of the search form."""

    text: str
    languages: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    days: int | None = None  # the last `days` days
    sort: str = "relevance"
    page: int = 1

    def query(self, now: datetime) -> SearchQuery:
        since = None
        if self.days:  # the page's `since`: from the start of that UTC day
            since = datetime.combine((now - timedelta(days=self.days)).date(), datetime.min.time(), UTC)
        return SearchQuery(text=self.text, languages=self.languages, sources=self.sources, date_from=since,
                           sort=self.sort, page=self.page)  # type: ignore[arg-type]

    def params(self, now: datetime, mode: str) -> list[tuple[str, str]]:
        """The page's GET parameters (the URL holds the whole state of a search)."""
        out = [("q", self.text), ("mode", mode)]
        out += [("language", value) for value in self.languages]
        out += [("source", value) for value in self.sources]
        if self.days:
            out.append(("since", (now - timedelta(days=self.days)).date().isoformat()))
        if self.sort != "relevance":
            out.append(("sort", self.sort))
        if self.page != 1:
            out.append(("page", str(self.page)))
        return out

    def label(self) -> str:
        extra = [f"lang={','.join(self.languages)}"] if self.languages else []
        extra += [f"source={','.join(self.sources)}"] if self.sources else []
        extra += [f"last {self.days} d"] if self.days else []
        extra += [f"sort={self.sort}"] if self.sort != "relevance" else []
        extra += [f"page {self.page}"] if self.page != 1 else []
        return self.text + (f"  [{'; '.join(extra)}]" if extra else "")


# What an analyst of the Baltic flank types: names, places, units, phrases, prefixes, alternatives, filters.
WORD_QUERIES: tuple[Ask, ...] = (
    Ask("brigade"), Ask("Kaliningrad"), Ask("Rukla"), Ask("Suwałki"), Ask("Bundeswehr"), Ask("NATO"),
    Ask("drone"), Ask("Lithuania"), Ask("Estonia airspace"), Ask('"German brigade"'), Ask("Litau*"),
    Ask("Kaliningrad OR Königsberg"), Ask("NATO", languages=("en",)), Ask("Bundeswehr", languages=("de",)),
    Ask("Литва"), Ask("Калининград"), Ask("Lietuva", languages=("lt",)), Ask("Ukraine"), Ask("Russia sanctions"),
    Ask("Putin"), Ask("troops"), Ask('"Baltic Sea"'), Ask("missile*"), Ask("airspace violation"),
    Ask("Poland border"), Ask("Belarus"), Ask("Wagner"), Ask("Zelensky"), Ask("Pistorius"), Ask("Vilnius"),
    Ask('"Suwałki gap"'), Ask("cable sabotage"), Ask("Gotland"), Ask("Finland NATO"), Ask("drone OR drones"),
    Ask("Iskander"), Ask("military exercise"), Ask("Bundeswehr", days=7), Ask("Ukraine", sources=("WSJ World News",)),
    Ask("Russia", sort="newest"), Ask("ceasefire"), Ask("Trump"), Ask("nuclear"), Ask("Estonia OR Latvia"),
    Ask("Panzerbrigade"), Ask("Kaliningrad transit"), Ask("submarine"), Ask('"air defense"'), Ask("Litauen"),
    Ask("Russia", page=2), Ask("war", days=14, languages=("en",)), Ask("Россия", languages=("ru",)),
)
# Hybrid: what is asked by meaning (no operators), in several languages.
HYBRID_QUERIES: tuple[Ask, ...] = (
    Ask("German brigade in Lithuania"), Ask("Kaliningrad transit ban"), Ask("drone over airport"),
    Ask("NATO eastern flank troops"), Ask("Suwałki gap defence"), Ask("Russian military exercise near border"),
    Ask("Estonia airspace violation"), Ask("Baltic Sea cable damage"), Ask("sanctions against Russia"),
    Ask("Bundeswehr Litauen Brigade"), Ask("Калининград блокада"), Ask("ceasefire talks Ukraine"),
    Ask("Poland border Belarus migrants"), Ask("submarine in the Baltic"), Ask("air defence missiles"),
    Ask("nuclear weapons Belarus"), Ask("Lietuvos kariuomenė"), Ask("election results"),
    Ask("drone attack on refinery", languages=("en",)), Ask("NATO summit", days=30),
)
WARM_UP = {"word": Ask("warm-up query"), "hybrid": Ask("a first question to load the model")}


# --- building the archive -----------------------------------------------------------------------------


@dataclass
class Built:
    articles: int = 0
    stories: int = 0
    events: int = 0
    alerts: int = 0
    merged: int = 0
    clustered: int = 0
    largest_story: tuple[str, int] = ("", 0)
    story_ids: list[str] = field(default_factory=list)
    model: str = ""
    embedded: int = 0
    figures: dict[str, float] = field(default_factory=dict)


def _story_sizes(rng: random.Random, total: int) -> list[int]:
    """Story sizes until they hold `total` articles: log-normal (mean STORY_MEAN), at least 2."""
    mu = math.log(STORY_MEAN) - 0.5
    sizes: list[int] = []
    held = 0
    while held < total:
        size = min(max(2, round(rng.lognormvariate(mu, 1.0))), STORY_MAX, total - held)
        sizes.append(size)
        held += size
    return sizes


def _vectors(settings: Settings, items: list[ReplayItem], sample: int, rng: random.Random,
             built: Built) -> tuple[np.ndarray, np.ndarray]:
    """(vectors of the embedded sample, for each item the row of the vector it takes)."""
    embedder = get_embedder(settings.embedding_model)
    started = time.perf_counter()
    embedder.passages(["warm-up"])
    built.figures["model_load_s"] = time.perf_counter() - started
    chosen = sorted(rng.sample(range(len(items)), min(sample, len(items))))
    started = time.perf_counter()
    matrix = embedder.passages([article_text(items[i].title, items[i].description) for i in chosen],
                               batch_size=settings.embedding_batch_size)
    built.figures["embed_s"] = time.perf_counter() - started
    built.model, built.embedded = embedder.name, len(chosen)
    by_language: dict[str, list[int]] = defaultdict(list)
    row_of = {item: row for row, item in enumerate(chosen)}
    for row, i in enumerate(chosen):
        by_language[items[i].language].append(row)
    every = list(range(len(chosen)))
    source = np.empty(len(items), dtype=np.int64)
    for i, item in enumerate(items):
        source[i] = row_of[i] if i in row_of else rng.choice(by_language.get(item.language) or every)
    return matrix.astype(np.float32), source


def _plan(n: int, items: list[ReplayItem], rng: random.Random, now: datetime, days: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each article (in time order): its item, its copy number and its publication time (epoch s)."""
    order = np.empty(n, dtype=np.int64)
    copy = np.empty(n, dtype=np.int64)
    for start in range(0, n, len(items)):
        cycle = list(range(len(items)))
        rng.shuffle(cycle)
        take = min(len(items), n - start)
        order[start : start + take] = cycle[:take]
        copy[start : start + take] = start // len(items)
    end = now.timestamp()
    published = np.array([end - rng.random() * days * 86400 for _ in range(n)])
    by_time = np.argsort(published, kind="stable")
    return order[by_time], copy[by_time], published[by_time]


def _title(item: ReplayItem, copy: int, rng: random.Random) -> str:
    if copy == 0:
        return item.title
    words = SUFFIXES.get(item.language, SUFFIXES["en"])
    return f"{item.title} ({rng.choice(words)} {copy})"


def _place(rng: random.Random, n: int, sizes: list[int]) -> np.ndarray:
    """Each article's story number (-1: none): the stories are runs of consecutive articles (in time order)
    at random, non-overlapping places."""
    member = np.full(n, -1, dtype=np.int64)
    slots = n - sum(sizes) + len(sizes)  # a story takes one slot among the unclustered articles
    offset = 0
    for number, (slot, size) in enumerate(zip(sorted(rng.sample(range(slots), len(sizes))), sizes)):
        member[slot + offset : slot + offset + size] = number
        offset += size - 1
    return member


@dataclass
class Tally:
    """A story as its articles make it (the counts enrichment keeps on the Story row)."""

    headline: str = ""
    first: datetime | None = None
    last: datetime | None = None
    first_id: str = ""
    size: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    copies: Counter[str] = field(default_factory=Counter)
    languages: Counter[str] = field(default_factory=Counter)


def _url(item: ReplayItem, number: int, copy: int) -> str:
    # one link may be in two outlets' feeds (one item each): the item's number keeps the URLs distinct
    return f"{item.link}{'&' if '?' in item.link else '?'}fw-bench={number}-{copy}"


def build(settings: Settings, data: Path, n: int, sample: int, days: int, seed: int, now: datetime,
          progress: Callable[[str], None]) -> Built:
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    built = Built()
    items = load_items(data)
    progress(f"{len(items)} real items from {data}")
    matrix, vector_of = _vectors(settings, items, sample, rng, built)
    progress(f"embedded {built.embedded} distinct items with {built.model} in {built.figures['embed_s']:.1f} s")
    topic = settings.topics[0].name if settings.topics else "baltic-deployments"

    started = time.perf_counter()
    which, copies, published = _plan(n, items, rng, now, days)
    ids = [article_id(_url(items[int(which[p])], int(which[p]), int(copies[p]))) for p in range(n)]
    sizes = _story_sizes(rng, round(n * STORY_SHARE))
    member = _place(rng, n, sizes)
    story_id = [stable_id("bench-story", str(seed), str(number)) for number in range(len(sizes))]
    built.stories, built.story_ids, built.clustered = len(sizes), story_id, int((member >= 0).sum())
    largest = max(range(len(sizes)), key=lambda number: sizes[number])
    built.largest_story = (story_id[largest], sizes[largest])

    # One feed per outlet; a few marked state-affiliated (the story page names them).
    outlets = sorted({item.outlet for item in items})
    feed_of = {outlet: number + 1 for number, outlet in enumerate(outlets)}
    state = {outlet for outlet in outlets if rng.random() < STATE_SHARE}
    # Syndicated copies: some articles of a story copy its first article (wire text in another outlet).
    tallies = [Tally() for _ in sizes]
    copy_of: dict[int, str] = {}
    for position in np.flatnonzero(member >= 0):
        position = int(position)
        item, tally = items[int(which[position])], tallies[int(member[position])]
        at = datetime.fromtimestamp(float(published[position]), tz=UTC)
        if tally.size == 0:
            tally.headline, tally.first, tally.first_id = item.title, at, ids[position]
        elif rng.random() < SYNDICATED_SHARE:
            copy_of[position] = tally.first_id
            tally.copies[item.outlet] += 1
        tally.last = at
        tally.size += 1
        tally.sources[item.outlet] += 1
        tally.languages[item.language] += 1

    with session_scope(settings) as session:  # feeds and stories first (articles refer to them)
        feeds = [{"id": number, "url": f"https://feeds.bench.invalid/{number}", "name": outlet,
                  "state_affiliated": outlet in state, "country": "ru" if outlet in state else None,
                  "origin": "demo", "enabled": True} for outlet, number in feed_of.items()]
        for chunk in _chunked(feeds, BATCH):
            session.execute(insert(Feed), chunk)
        stories, events, alerts = [], [], []
        for number, tally in enumerate(tallies):
            sid = story_id[number]
            independent = sum(1 for outlet, count in tally.sources.items() if count > tally.copies.get(outlet, 0))
            stories.append({
                "id": sid, "topic": topic, "headline": tally.headline, "representative_article_id": tally.first_id,
                "first_seen": tally.first, "last_seen": tally.last, "article_count": tally.size,
                "source_count": independent, "sources": dict(tally.sources), "copy_sources": dict(tally.copies),
                "syndicated_outlets": len(tally.copies), "language_counts": dict(tally.languages),
                "terms": _facts(tally.headline), "centroid": b"\x00" * 4 * matrix.shape[1],
                "centroid_model": built.model, "born_at": tally.first, "created_at": tally.first,
                "updated_at": tally.last,
            })
            assert tally.first is not None and tally.last is not None
            events.append(_event(sid, "born", tally.first, {"articles": min(3, tally.size),
                                                             "sources": min(2, len(tally.sources))}))
            parent = _alert(sid, "new_story", tally.first, tally.size, tally.headline)
            alerts.append(parent)
            if number % 3 == 0 and (facts := _facts(tally.headline)):
                events.append(_event(sid, "development", tally.last, {"replaces": {}}, facts))
                alerts.append(_alert(sid, "story_update", tally.last, tally.size, tally.headline, parent))
            if tally.size >= 50:
                events.append(_event(sid, "growing", tally.last, {"articles_in_window": tally.size // 3,
                                                                  "window_hours": 6, "per_hour": 8.0,
                                                                  "usual_per_hour": 0.5}))
            if number % MERGED_EVERY == 1:  # a smaller story found to be this one, absorbed
                absorbed = stable_id("bench-absorbed", sid)
                stories.append({**stories[-1], "id": absorbed, "headline": f"{tally.headline} (first reports)",
                                "article_count": 2, "last_seen": tally.first, "merged_into": sid})
                events.append(_event(sid, "merged", tally.first, {"absorbed": absorbed, "articles": 2,
                                                                  "headline": tally.headline}))
        for rows, model in ((stories, Story), (events, StoryEvent), (alerts, Alert)):
            for chunk in _chunked(rows, BATCH):
                session.execute(insert(model), chunk)
        built.events, built.alerts = len(events), len(alerts)
        built.merged = len(stories) - len(tallies)

    batch: list[dict[str, Any]] = []
    for position in range(n):
        number, copy = int(which[position]), int(copies[position])
        item = items[number]
        at = datetime.fromtimestamp(float(published[position]), tz=UTC)
        url = _url(item, number, copy)
        vector = matrix[int(vector_of[number])] + noise.normal(0.0, NOISE, matrix.shape[1])
        vector = (vector / np.linalg.norm(vector)).astype(np.float32)
        story = int(member[position])
        batch.append({
            "id": ids[position], "feed_id": feed_of[item.outlet], "source": item.outlet, "url": url,
            "canonical_url": url, "guid": f"{item.guid}#{copy}", "title": _title(item, copy, rng),
            "summary": item.description, "content": None, "language": item.language, "published_at": at,
            "fetched_at": at, "updated_at": at, "content_hash": stable_id("bench-content", url),
            "text_source": "summary", "text_length": len(item.description or item.title),
            "embedding": to_bytes(vector), "embedding_model": built.model, "enriched_at": at,
            "topic": topic if story >= 0 else None,
            "relevance": round(0.5 + 0.5 * rng.random(), 3) if story >= 0 else None,
            "relevant": story >= 0, "story_id": story_id[story] if story >= 0 else None,
            "syndicated_from": copy_of.get(position),
        })
        if len(batch) >= BATCH:
            _write_articles(settings, batch)
            batch = []
    _write_articles(settings, batch)
    built.articles = n
    built.figures["state_db_s"] = time.perf_counter() - started
    progress(f"state DB: {n} articles from {len(outlets)} feeds, {built.stories} stories ({built.clustered} "
             f"articles in them, {len(copy_of)} syndicated copies; {built.merged} absorbed stories), "
             f"{built.events} story events, {built.alerts} alerts in {built.figures['state_db_s']:.1f} s")

    started = time.perf_counter()
    last = [0.0]

    def report(done: int, total: int) -> None:
        if time.perf_counter() - last[0] > 15 or done == total:
            last[0] = time.perf_counter()
            progress(f"  indexed {done}/{total}")

    summary = index_stage(settings, progress=report)
    built.figures["index_s"] = time.perf_counter() - started
    if summary.failed:
        raise SystemExit(f"indexing failed for {len(summary.failed)} documents: {list(summary.failed.items())[:3]}")
    progress(f"archive: {summary.articles_indexed} articles, {summary.stories_indexed} stories indexed in "
             f"{built.figures['index_s']:.1f} s")
    return built


def _write_articles(settings: Settings, rows: list[dict[str, Any]]) -> None:
    if rows:
        with session_scope(settings) as session:
            session.execute(insert(Article), rows)


def _chunked(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _event(story: str, kind: str, at: datetime, detail: dict[str, Any], facts: list[str] | None = None
           ) -> dict[str, Any]:
    return {"id": stable_id("story-event", story, kind, at.isoformat()), "story_id": story, "kind": kind,
            "at": at, "article_id": None, "facts": facts or [], "detail": detail, "created_at": at}


def _alert(story: str, kind: str, at: datetime, size: int, headline: str, parent: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """A sent Slack alert about the story (a reply in the story's thread when it has a `parent`)."""
    sent = at + timedelta(minutes=2)
    return {"id": stable_id("bench-alert", story, kind), "kind": kind, "story_id": story, "route": "default",
            "severity": "normal", "channel": SLACK_CHANNEL, "story_article_count": size,
            "payload": {"text": headline}, "detail": {}, "status": "sent", "thread_key": story,
            "parent_id": parent["id"] if parent else None, "delivery": "slack", "remote_channel": SLACK_CHANNEL,
            "remote_id": f"{sent.timestamp():.6f}", "thread_ts": parent["remote_id"] if parent else None,
            "created_at": at, "sent_at": sent}


def _facts(headline: str) -> list[str]:
    """A development's new facts: the headline's numbers and capitalised names (at most four)."""
    return re.findall(r"\b(?:\d[\d,.]*|[A-ZÀ-ÞА-Я][\w-]{3,})\b", headline)[:4]


# --- measuring ----------------------------------------------------------------------------------------


def pages_present() -> dict[str, bool]:
    """Which page modules exist (they are written alongside this benchmark)."""
    return {kind: (PROJECT_ROOT / path).exists() and importlib.util.find_spec(
        path.removesuffix(".py").replace("/", ".")) is not None for kind, path in PAGE_FILES.items()}


def _server_timing(header: str | None) -> float | None:
    """The largest `dur` of a Server-Timing header (the total, where the app reports parts), in ms."""
    if not header:
        return None
    durations = [float(d) for d in re.findall(r"dur=([0-9.]+)", header)]
    return max(durations) if durations else None


@dataclass
class Probe:
    """One request (or direct call), timed once per round: wall time, and the process's CPU time (all its
    threads: the in-process server's, the model's), which the other loads of a shared machine leave alone."""

    kind: str
    label: str
    run: Callable[[], Any]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    server_timing: list[float] = field(default_factory=list)
    errors: int = 0

    def once(self) -> float:
        wall, cpu = time.perf_counter(), time.process_time()
        result = self.run()
        self.wall.append((time.perf_counter() - wall) * 1000)
        self.cpu.append((time.process_time() - cpu) * 1000)
        status = getattr(result, "status_code", None)
        if status is not None:
            if status != 200:
                self.errors += 1
                print(f"  ! {self.kind} {self.label}: HTTP {status} {result.text[:200]!r}", file=sys.stderr)
            timing = _server_timing(result.headers.get("server-timing"))
            if timing is not None:
                self.server_timing.append(timing)
        return self.wall[-1]

    @property
    def ms(self) -> float:
        """The request's figure: the median over the rounds (one slow round of a busy machine is noise)."""
        return statistics.median(self.wall)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): the smallest value with at least q % of the samples at or below."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


def summarise(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": statistics.median(values), "p95": percentile(values, 95), "max": max(values)}


def _cycle(asks: tuple[Ask, ...], count: int) -> list[Ask]:
    return [asks[i % len(asks)] for i in range(count)]


def measure(settings: Settings, built: Built, args: argparse.Namespace, now: datetime) -> dict[str, Any]:
    """Warm-ups (one per kind, left out), then `args.repeat` rounds over every probe."""
    from archive.backends import open_archive
    from archive.base import MAX_PER_PAGE, RRF_WINDOW
    from flankwatch.search import run_search

    rng = random.Random(args.seed + 1)
    words = _cycle(WORD_QUERIES, args.queries)
    hybrid = _cycle(HYBRID_QUERIES, args.hybrid if args.hybrid is not None else max(2, round(args.queries * 0.4)))
    stories = rng.sample(built.story_ids, min(args.queries, len(built.story_ids)))
    warm_story = next((s for s in built.story_ids if s not in set(stories)), built.story_ids[0])
    present = pages_present()
    out: dict[str, Any] = {"pages": present, "loadavg": {"before": round(os.getloadavg()[0], 2)}}
    probes: list[Probe] = []

    def page(path: str, params: list[tuple[str, str]] | None = None) -> Callable[[], Any]:
        url = path + ("?" + urlencode(params) if params else "")
        return lambda: client.get(url)

    with ExitStack() as stack:
        started = time.perf_counter()
        embedder = get_embedder(settings.embedding_model)
        embedder.queries(["warm-up"])
        out["model_load_ms"] = built.figures.get("model_load_s", 0.0) * 1000 or \
            (time.perf_counter() - started) * 1000
        archive = stack.enter_context(open_archive(settings))
        if any(present.values()):
            from fastapi.testclient import TestClient

            from flankwatch.web.app import create_app

            client = stack.enter_context(TestClient(create_app(settings)))
        if present["search"]:
            Probe("word", "warm-up", page("/", WARM_UP["word"].params(now, "words"))).once()
            out["hybrid_warmup_ms"] = Probe("hybrid", "warm-up", page("/", WARM_UP["hybrid"].params(now, "hybrid"))
                                            ).once()
            probes += [Probe("word", ask.label(), page("/", ask.params(now, "words"))) for ask in words]
            probes += [Probe("word_api", ask.label(), page("/api/search", ask.params(now, "words"))) for ask in words]
            probes += [Probe("hybrid", ask.label(), page("/", ask.params(now, "hybrid"))) for ask in hybrid]
        if present["story"]:
            Probe("story", "warm-up", page(f"/stories/{warm_story}")).once()
            probes += [Probe("story", story, page(f"/stories/{story}")) for story in stories]
            probes += [Probe("story_api", story, page(f"/api/stories/{story}")) for story in stories]
            probes.append(Probe("largest_story", built.largest_story[0], page(f"/stories/{built.largest_story[0]}")))

        # The same work without the pages: the archive calls of `run_search`, and hybrid's three parts (the
        # query's vector, the kNN ranking and the text ranking, as `ArchiveBackend.hybrid` asks for them).
        run_search(settings, archive, WARM_UP["word"].query(now), "words")
        run_search(settings, archive, WARM_UP["hybrid"].query(now), "hybrid")
        probes += [Probe("word_direct", ask.label(),
                         lambda ask=ask: run_search(settings, archive, ask.query(now), "words")) for ask in words]
        probes += [Probe("hybrid_direct", ask.label(),
                         lambda ask=ask: run_search(settings, archive, ask.query(now), "hybrid")) for ask in hybrid]
        window = max(20, RRF_WINDOW)
        for ask in hybrid:
            query = ask.query(now)
            vector = embedder.queries([ask.text])[0]
            probes.append(Probe("hybrid_embed", ask.label(), lambda ask=ask: embedder.queries([ask.text])))
            probes.append(Probe("hybrid_knn", ask.label(), lambda q=query, v=vector: archive.nearest(
                v, k=window, query=replace(q, text=""), model=embedder.name)))
            probes.append(Probe("hybrid_text", ask.label(), lambda q=query: archive.search(
                replace(q, page=1, per_page=min(window, MAX_PER_PAGE), facets=()))))
        reads = _story_reads(present["story"])
        reads(settings, archive, warm_story)
        probes += [Probe("story_direct", story, lambda story=story: reads(settings, archive, story))
                   for story in stories]

        for number in range(args.repeat):
            started = time.perf_counter()
            for probe in probes:
                probe.once()
            print(f"round {number + 1}/{args.repeat}: {len(probes)} requests and calls in "
                  f"{time.perf_counter() - started:.1f} s", flush=True)

        # After an index run the archive's vectors changed: the next hybrid search of a process reloads what
        # it keeps of them. A pipeline indexes every few minutes, so this is paid once per cycle per process.
        for number, ask in enumerate(hybrid[: args.repeat]):
            _reindex_some(settings, AFTER_INDEX_ARTICLES, args.seed + number)
            run = page("/", ask.params(now, "hybrid")) if present["search"] else \
                (lambda ask=ask: run_search(settings, archive, ask.query(now), "hybrid"))
            after = Probe("hybrid_after_index", ask.label(), run)
            after.once()
            probes.append(after)
    out["loadavg"]["after"] = round(os.getloadavg()[0], 2)  # 1-minute load averages: how shared the CPUs were
    out["probes"] = probes
    return out


def _reindex_some(settings: Settings, count: int, seed: int) -> None:
    """Change `count` articles in the state DB and run the real index stage over them (the pipeline's cycle)."""
    with session_scope(settings) as session:
        ids = list(session.scalars(select(Article.id).order_by(Article.id).offset(seed * 997 % 5000).limit(count)))
        session.execute(update(Article).where(Article.id.in_(ids)).values(updated_at=datetime.now(UTC)))
    index_stage(settings)


def _story_reads(page: bool) -> Callable[[Settings, Any, str], Any]:
    """The reads of a story page without the page: the story page's own data function (`story_data`, from
    the state DB) when it is there, else the story, its newest articles with facets, and its events."""
    if page:
        from flankwatch.web.story_pages import story_data

        def data(settings: Settings, archive: Any, story: str) -> Any:
            with session_scope(settings) as session:
                return story_data(session, settings, story)

        return data

    def reads(settings: Settings, archive: Any, story: str) -> Any:
        archive.get_story(story)
        archive.search(SearchQuery(story_ids=(story,), sort="newest", highlight=False))
        with session_scope(settings) as session:
            return list(session.scalars(select(StoryEvent).where(StoryEvent.story_id == story)
                                        .order_by(StoryEvent.at)))

    return reads


def _size(path: Path) -> float:
    """MiB on disk of a SQLite file, its WAL checkpointed first (what stays once the writers are done)."""
    if path.exists():
        db = sqlite3.connect(path)
        try:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists()) / 2**20


@contextmanager
def _var_dir(given: Path | None, reuse: bool) -> Iterator[Path]:
    if given is not None:  # kept afterwards, for a look at what was measured (or another measurement)
        given.mkdir(parents=True, exist_ok=reuse)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="flankwatch-web-bench-") as tmp:
        yield Path(tmp)


KINDS = ("word", "hybrid", "story", "word_api", "story_api", "word_direct", "hybrid_direct", "hybrid_embed",
         "hybrid_knn", "hybrid_text", "story_direct", "hybrid_after_index")


def report(built: Built, build_s: float, sizes: tuple[float, float], measured: dict[str, Any], repeat: int
           ) -> dict[str, Any]:
    """Print the table; the figures of the JSON line."""
    present = measured["pages"]
    http = {"word": present["search"], "hybrid": present["search"], "story": present["story"]}
    missing = [PAGE_FILES[kind] for kind, ok in present.items() if not ok]
    if missing:
        print(f"not there yet: {', '.join(missing)}; their goals are taken on the direct calls ('http' false)")
    figures: dict[str, Any] = {
        "articles": built.articles, "stories": built.stories, "story_events": built.events,
        "alerts": built.alerts, "embedded_sample": built.embedded, "embedding_model": built.model,
        "http": http, "repeat": repeat, "build_s": round(build_s, 1),
        "index_s": round(built.figures.get("index_s", 0.0), 1), "state_db_mib": round(sizes[0], 1),
        "archive_mib": round(sizes[1], 1), "model_load_ms": round(measured["model_load_ms"], 1),
        "loadavg": measured["loadavg"], "cpus": os.cpu_count(),
    }
    if "hybrid_warmup_ms" in measured:
        figures["hybrid_warmup_ms"] = round(measured["hybrid_warmup_ms"], 1)
    by_kind: dict[str, list[Probe]] = defaultdict(list)
    for probe in measured["probes"]:
        by_kind[probe.kind].append(probe)
    print(f"each figure: the median of {repeat} rounds per request; n requests per kind; cpu: process CPU time "
          "(all threads)")
    print(f"{'kind':<19}{'n':>4}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'p95/goal':>9}{'cpu p95':>9}"
          f"{'worst':>9}")
    for kind in KINDS:
        probes = by_kind.get(kind)
        if not probes:
            continue
        stats = summarise([probe.ms for probe in probes])
        cpu = percentile([statistics.median(probe.cpu) for probe in probes], 95)
        worst = max(max(probe.wall) for probe in probes)  # the slowest single round
        goal = GOALS_MS[kind.split("_")[0]]
        shown = kind in GOALS_MS or kind.endswith("_direct")
        ratio = f"{stats['p95'] / goal:>9.2f}" if shown else f"{'':>9}"
        print(f"{kind:<19}{stats['n']:>4}{stats['p50']:>9.1f}{stats['p95']:>9.1f}{stats['max']:>9.1f}{ratio}"
              f"{cpu:>9.1f}{worst:>9.1f}")
        for name in ("p50", "p95", "max"):
            figures[f"{kind}_{name}_ms"] = round(stats[name], 1)
        figures[f"{kind}_cpu_p95_ms"] = round(cpu, 1)
        timings = [statistics.median(probe.server_timing) for probe in probes if probe.server_timing]
        if timings:
            figures[f"{kind}_server_timing_p95_ms"] = round(percentile(timings, 95), 1)
    if by_kind.get("largest_story"):
        figures["largest_story"] = built.largest_story[1]
        figures["largest_story_ms"] = round(by_kind["largest_story"][0].ms, 1)
        print(f"largest story page ({built.largest_story[1]} articles): {figures['largest_story_ms']} ms")
    for kind in GOALS_MS:
        slowest = sorted(by_kind.get(kind) or by_kind.get(f"{kind}_direct") or [], key=lambda p: -p.ms)[:3]
        print(f"slowest {kind}: " + "; ".join(f"{probe.label} {probe.ms:.0f} ms" for probe in slowest))
    print(f"model load {figures['model_load_ms']:.0f} ms; first hybrid page (left out) "
          f"{figures.get('hybrid_warmup_ms', float('nan')):.0f} ms; 1-minute load average {measured['loadavg']['before']} "
          f"before, {measured['loadavg']['after']} after, on {os.cpu_count()} CPUs")
    for kind in GOALS_MS:  # the goals are on the pages; a page not there yet: on its direct calls
        measured_kind = kind if http[kind] else f"{kind}_direct"
        for name in ("p50", "p95", "max"):
            figures[f"{kind}_{name}_ms"] = figures.get(f"{measured_kind}_{name}_ms")
    errors = Counter({kind: sum(p.errors for p in probes) for kind, probes in by_kind.items()})
    figures["errors"] = {kind: count for kind, count in errors.items() if count}
    figures["goals"] = {f"{kind}_p95_ms": goal for kind, goal in GOALS_MS.items()}
    figures["ratios"] = {kind: round(figures[f"{kind}_p95_ms"] / goal, 3) for kind, goal in GOALS_MS.items()}
    figures["met"] = {kind: figures[f"{kind}_p95_ms"] <= goal and not errors.get(kind)
                      for kind, goal in GOALS_MS.items()}
    return figures


BUILT_FILE = "web_bench_built.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=50, help="word queries, and story pages (each)")
    parser.add_argument("--hybrid", type=int, default=None, help="hybrid queries (default: 40 %% of --queries)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds over every request; each request's figure "
                                                              "is its median")
    parser.add_argument("--embed-sample", type=int, default=None,
                        help="distinct items embedded with the real model (default: min(2000, articles / 50))")
    parser.add_argument("--days", type=int, default=60, help="publication dates spread over this many days")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--var-dir", type=Path, default=None,
                        help="build in this new folder and keep it (default: a temporary one, removed)")
    parser.add_argument("--reuse", action="store_true",
                        help="measure again what an earlier run built in --var-dir (no build)")
    args = parser.parse_args()
    if args.articles < 100 or args.queries < 1 or args.repeat < 1:
        parser.error("--articles must be at least 100, --queries and --repeat at least 1")
    if args.reuse and args.var_dir is None:
        parser.error("--reuse needs --var-dir")
    sample = args.embed_sample or max(20, min(2000, args.articles // 50))

    def progress(message: str) -> None:
        print(message, flush=True)

    now = datetime.now(UTC).replace(microsecond=0)
    with _var_dir(args.var_dir, args.reuse) as var:
        # no feeds file (nothing is polled); topics and the embedding model as configured
        settings = Settings(var_dir=var, feeds_file=var / "none.yaml")
        saved = var / BUILT_FILE
        if args.reuse:
            built = Built(**{**json.loads(saved.read_text()), "figures": {}})
            built.largest_story = tuple(built.largest_story)  # type: ignore[assignment]
            build_s = 0.0
            now = datetime.fromisoformat(json.loads(saved.read_text())["figures"]["now"])
            progress(f"reusing {var}: {built.articles} articles, {built.stories} stories (built before)")
        else:
            upgrade(settings)
            started = time.perf_counter()
            built = build(settings, args.data, args.articles, sample, args.days, args.seed, now, progress)
            build_s = time.perf_counter() - started
            saved.write_text(json.dumps({**asdict(built), "figures": {"now": now.isoformat()}}))
        sizes = (_size(Path(settings.database_url.split("///", 1)[-1])),
                 _size(Path(settings.archive_path or var / "archive.db")))
        if not args.reuse:
            print(f"build: {build_s:.1f} s (model load {built.figures['model_load_s']:.1f} s, embedding "
                  f"{built.figures['embed_s']:.1f} s, state DB {built.figures['state_db_s']:.1f} s, index "
                  f"{built.figures['index_s']:.1f} s)")
        print(f"on disk: state DB {sizes[0]:.1f} MiB, archive {sizes[1]:.1f} MiB")
        print(f"vectors: {built.embedded} distinct real items embedded with {built.model}; every article carries "
              "its source item's vector (or, not embedded, a same-language sampled item's) + noise, renormalised")
        measured = measure(settings, built, args, now)
    figures = report(built, build_s, sizes, measured, args.repeat)
    print(json.dumps(figures, ensure_ascii=False))


if __name__ == "__main__":
    main()
