"""The real news of ../shared/data replayed at any size, for `bench/pipeline_bench.py --items N`.

Every item is a real item of `flankwatch.replay.load_items` (the base; its own duplicates left out), copied
as many times as N needs, each copy with its own URL, GUID, date and wording, so that the collectors' dedup
keeps it and the syndication detector does not take it for a copy:

- **rounds**: one round is every non-topical item once (the background noise) plus every topical item (the
  demo's pre-selection, `flankwatch.demo.topical_filter`: a strong term, or a place with a keyword) `copies`
  times, so that the topical share is `share` (default 10 %, the demo replay's own; the enrichment stage
  finds ~9 % relevant). The i-th item of the replay is slot `i % S` of round `i // S` (S items a round),
  through a seeded permutation of each round: a replay smaller than a round is a random sample of it with
  the same share. Round r is dated `r * ROUND_SHIFT` (8 days) earlier: more than the title dedup window
  (7 days) and the story window (72 h), so round r re-tells round 0's news at another time (a backfill of
  a year of news at 1,000,000 items) instead of growing its stories without end.
- **copies of a topical item** within a round are reports of the same event by other outlets of its
  language (their own host in the URL), 5 minutes to 12 hours before the original: stories get the sources
  real stories have (the same event covered by up to `copies` outlets).
- **wording**: round 0's originals are served as they are. Every other copy gets a kicker ("Update:",
  "Analysis:", ...; per language) and a filler word ("reportedly", "also", ...) at one word gap in four of
  its title and of its summary; which kicker, gaps and fillers follows from the copy's number, so that the
  copies of one item in a round differ from each other as much as from their original. The title-hash dedup
  sees new titles; the MinHash of word 3-shingles (`enrichment.syndication`) estimates ~0.27 against the
  original and ~0.12 between two copies (at most ~0.43 on 10,000 items), under its `THRESHOLD` of 0.5. No
  filler goes inside a topic term of several words ("eastern flank", "brigade in Lithuania") or an HTML tag,
  and none is a topic term: a copy keeps its original's keyword evidence.
- **feeds**: an outlet's items (all rounds) in time order, cut into feeds of `feed_items` (default 30, the
  real outlet feeds' size): "WSJ World News", "WSJ World News (2)", ...

Memory stays bounded: the plan holds ~30 bytes of numpy per item (which base, round, copy, outlet, date)
and the base items once; the server renders a feed's items when it is asked for them
(`ScaledReplayServer`, the demo's `ReplayServer` with lazy feeds and a remembered ETag per feed, so a 304
costs the server no rendering).

Command line (the benchmark starts the server in a subprocess of its own):
    python bench/replay_scale.py serve --items N --ready FILE     # serves until stdin closes
    python bench/replay_scale.py materialise --items N            # what N items cost the demo's ReplayServer
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import sys
import time
from bisect import bisect_right
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from core.settings import PROJECT_ROOT, Settings
from flankwatch.replay import ReplayItem, load_items
from flankwatch.replay_server import ReplayServer, render_rss

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
ROUND_SHIFT = timedelta(days=8)
COPY_JITTER = (timedelta(minutes=5), timedelta(hours=12))
STEP = 4  # a filler at one word gap in 4
FEED_ITEMS = 30
SHARE = 0.10
SEED = 19

KICKERS: dict[str, tuple[str, ...]] = {
    "en": ("Update:", "Analysis:", "Live:", "Report:", "Explainer:", "Breaking:", "Latest:", "Watch:",
           "Exclusive:", "In brief:", "Opinion:", "Factbox:"),
    "ru": ("Обновлено:", "Главное:", "Срочно:", "Анализ:", "Подробности:", "Мнение:", "Репортаж:", "Коротко:",
           "Хроника:", "Видео:", "Эксклюзив:", "Итоги:"),
    "de": ("Update:", "Eilmeldung:", "Analyse:", "Kommentar:", "Liveblog:", "Hintergrund:", "Bericht:",
           "Meinung:", "Video:", "Exklusiv:", "Überblick:", "Kurz:"),
    "lt": ("Atnaujinta:", "Svarbu:", "Skubiai:", "Analizė:", "Nuomonė:", "Reportažas:", "Trumpai:", "Vaizdo įrašas:",
           "Išskirtinai:", "Apžvalga:", "Naujiena:", "Kronika:"),
}
FILLERS: dict[str, tuple[str, ...]] = {
    "en": ("reportedly", "now", "also", "again", "officially", "meanwhile", "still", "today", "indeed",
           "once more", "so far", "apparently"),
    "ru": ("также", "теперь", "снова", "официально", "между тем", "уже", "сегодня", "как сообщается", "всё ещё",
           "вновь", "при этом", "по данным СМИ"),
    "de": ("auch", "nun", "erneut", "offiziell", "inzwischen", "bereits", "heute", "laut Berichten", "weiterhin",
           "wieder", "zudem", "jetzt"),
    "lt": ("taip pat", "dabar", "vėl", "oficialiai", "tuo metu", "jau", "šiandien", "pranešama", "vis dar",
           "iš naujo", "be to", "netrukus"),
}

_WORD = re.compile(r"\w+")
_TAG = re.compile(r"<[^>]*>")
_SEPARATOR = re.compile(r"[^\w<>]*\s")  # spaces, after punctuation or not ("word, word"; not "4,800")
_NO_GAPS: frozenset[int] = frozenset()


# --- the base items ----------------------------------------------------------------------------------------


def topic_matchers(settings: Settings) -> list:  # list[TermMatcher]
    """The configured topics' term matchers, as `enrichment.relevance.TopicProfile` builds them (without
    embedding their seeds: no model is needed to find terms)."""
    from enrichment.terms import Term, TermMatcher, compile_term

    matchers = []
    for topic in settings.topics:
        terms = [compile_term(label, "strong") for label in topic.strong_keywords]
        terms += [compile_term(label, "place") for label in topic.places]
        terms += [compile_term(label, "keyword") for label in topic.keywords]
        unique: dict[tuple, Term] = {}
        for term in terms:
            if term is not None:
                unique.setdefault((term.tokens, term.prefixes), term)
        matchers.append(TermMatcher(list(unique.values())))
    return matchers


def _protected(matchers: list, text: str) -> frozenset[int]:
    """Word gaps (gap g: before word g of `_WORD`) inside a topic term of several words."""
    gaps: set[int] = set()
    for matcher in matchers:
        for match in matcher.find(text):
            gaps.update(range(match.position + 1, match.position + len(match.term.tokens)))
    return frozenset(gaps) if gaps else _NO_GAPS


def distinct(items: list[ReplayItem]) -> list[ReplayItem]:
    """The items the collectors would store, in time order: without the later ones of a canonical URL, of a
    GUID in one outlet or of a title in one outlet (3 % of ../shared/data: one link under several Reddit
    domains, re-posts), so that a replay of N items stores N articles. Titles too short for the title dedup
    count too: a copy's title is long enough, and two copies of one title in one outlet would be one."""
    from collectors.normalise import title_key
    from collectors.urls import canonical_url

    seen: set[object] = set()
    kept = []
    for item in items:
        keys = [("url", canonical_url(item.link)), ("guid", item.outlet, item.guid),
                ("title", item.outlet, title_key(item.title))]
        if not any(key in seen for key in keys):
            kept.append(item)
        seen.update(keys)
    return kept


@dataclass
class Pool:
    """The base items, which are topical, their protected word gaps, and the outlets by language."""

    items: list[ReplayItem]
    topical: list[int]
    noise: list[int]
    title_gaps: list[frozenset[int]]
    summary_gaps: list[frozenset[int]]
    outlets: list[str]  # outlet names; index = outlet id
    outlet_language: list[str]
    outlet_host: list[str]  # scheme://netloc of the outlet's links
    by_language: dict[str, list[int]]  # language -> outlet ids
    outlet_index: dict[str, int]  # outlet name -> id

    @classmethod
    def load(cls, data_dir: Path, settings: Settings) -> Pool:
        from enrichment.relevance import PLACE_AND_KEYWORD, keyword_evidence

        items = distinct(load_items(data_dir))
        matchers = topic_matchers(settings)
        topical: list[int] = []
        noise: list[int] = []
        title_gaps: list[frozenset[int]] = []
        summary_gaps: list[frozenset[int]] = []
        for index, item in enumerate(items):
            strong = any(keyword_evidence(m.find(item.text)) >= PLACE_AND_KEYWORD for m in matchers)
            (topical if strong else noise).append(index)
            title_gaps.append(_protected(matchers, item.title))
            summary_gaps.append(_protected(matchers, item.description) if item.description else _NO_GAPS)
        names: dict[str, int] = {}
        languages: dict[int, Counter[str]] = defaultdict(Counter)
        hosts: dict[int, str] = {}
        for item in items:
            outlet = names.setdefault(item.outlet, len(names))
            languages[outlet][item.language] += 1
            if outlet not in hosts:
                parts = urlsplit(item.link)
                hosts[outlet] = f"{parts.scheme}://{parts.netloc}"
        outlet_language = [languages[i].most_common(1)[0][0] for i in range(len(names))]
        by_language: dict[str, list[int]] = defaultdict(list)
        for outlet, language in enumerate(outlet_language):
            by_language[language].append(outlet)
        return cls(items, topical, noise, title_gaps, summary_gaps, list(names), outlet_language,
                   [hosts[i] for i in range(len(names))], dict(by_language), names)


# --- wording ------------------------------------------------------------------------------------------------


def _gaps(text: str, protected: frozenset[int]) -> list[int]:
    """Character offsets where a word can go: before a word that follows a space (after punctuation or not),
    outside tags and outside a protected term."""
    tags = [m.span() for m in _TAG.finditer(text)] if "<" in text else []
    starts = [a for a, _ in tags]

    def in_tag(offset: int) -> bool:
        k = bisect_right(starts, offset) - 1
        return k >= 0 and tags[k][0] <= offset < tags[k][1]

    spans = [m.span() for m in _WORD.finditer(text)]
    usable = []
    for g in range(1, len(spans)):
        end, start = spans[g - 1][1], spans[g][0]
        if g in protected or not _SEPARATOR.fullmatch(text, end, start) or (tags and in_tag(start)):
            continue
        usable.append(start)
    return usable


def _insert(text: str, at: list[int], words: list[str]) -> str:
    pieces, last = [], 0
    for offset, word in sorted(zip(at, words)):
        pieces += [text[last:offset], word, " "]
        last = offset
    pieces.append(text[last:])
    return "".join(pieces)


def _every(gaps: list[int], step: int, phase: int) -> list[int]:
    """Every `step`-th gap from the `phase`-th (at least one gap when there is any)."""
    if not gaps:
        return []
    return gaps[phase % min(step, len(gaps)):: step]


def _fillers(language: str, offset: int, count: int) -> list[str]:
    fillers = FILLERS.get(language, FILLERS["en"])
    return [fillers[(offset + k) % len(fillers)] for k in range(count)]


def vary_title(title: str, language: str, variant: int, protected: frozenset[int]) -> str:
    """A kicker, and a filler at one word gap in `STEP` (at least one). Kicker, gaps and fillers follow from
    the variant: the titles of variants 1 .. 47 of one title differ (kicker `variant % 12`, gaps
    `variant % 4`, fillers from `variant // 4 % 12`)."""
    kickers = KICKERS.get(language, KICKERS["en"])
    at = _every(_gaps(title, protected), STEP, variant % STEP)
    words = _fillers(language, variant // STEP, max(1, len(at)))
    body = _insert(title, at, words) if at else f"{title} ({words[0]})"
    return f"{kickers[variant % len(kickers)]} {body}"


def vary_summary(summary: str, language: str, variant: int, protected: frozenset[int]) -> str:
    """A filler at one word gap in `STEP`: two variants of one summary among 48 in a row either put their
    fillers at other gaps or put other fillers at every gap."""
    if not summary:
        return summary
    at = _every(_gaps(summary, protected), STEP, variant % STEP + 1)
    return _insert(summary, at, _fillers(language, variant // STEP + 5, len(at)))


def vary_link(link: str, host: str | None, base: int, round_: int, copy: int) -> str:
    parts = urlsplit(link)
    scheme, netloc = (urlsplit(host)[:2] if host else (parts.scheme, parts.netloc))
    return urlunsplit((scheme, netloc, f"/replay/{base}-{round_}-{copy}{parts.path}", parts.query, ""))


# --- the plan: which base item, round, copy, outlet and date each replayed item has -----------------------


@dataclass
class FeedSpec:
    name: str
    language: str
    start: int  # range of `Plan.order`
    stop: int


@dataclass
class Plan:
    pool: Pool
    n: int
    copies: int  # of each topical item in a round
    round_size: int
    base: np.ndarray  # int32, per item
    round: np.ndarray  # int32
    copy: np.ndarray  # int16
    outlet: np.ndarray  # int32
    published: np.ndarray  # int64 epoch seconds
    order: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # by outlet, then date
    feeds: list[FeedSpec] = field(default_factory=list)

    @classmethod
    def build(cls, pool: Pool, n: int, *, share: float = SHARE, feed_items: int = FEED_ITEMS, seed: int = SEED,
              now: datetime | None = None) -> Plan:
        topical, noise = np.asarray(pool.topical, dtype=np.int32), np.asarray(pool.noise, dtype=np.int32)
        copies = max(1, round(share * len(noise) / ((1 - share) * max(1, len(topical))))) if len(topical) else 0
        topical_slots = len(topical) * copies
        size = topical_slots + len(noise)
        base_published = np.array([int(item.published.timestamp()) for item in pool.items], dtype=np.int64)
        base_outlet = np.array([pool.outlet_index[item.outlet] for item in pool.items], dtype=np.int32)
        rounds = -(-n // size)
        parts: dict[str, list[np.ndarray]] = defaultdict(list)
        for r in range(rounds):
            count = min(size, n - r * size)
            rng = np.random.default_rng([seed, r])
            slots = rng.permutation(size)[:count]
            is_topical = slots < topical_slots
            base = np.where(is_topical, topical[slots % max(1, len(topical))] if len(topical) else 0,
                            noise[np.maximum(slots - topical_slots, 0) % max(1, len(noise))])
            copy = np.where(is_topical, slots // max(1, len(topical)), 0).astype(np.int16)
            outlet = base_outlet[base].copy()
            published = base_published[base] - r * int(ROUND_SHIFT.total_seconds())
            jitter = rng.integers(int(COPY_JITTER[0].total_seconds()), int(COPY_JITTER[1].total_seconds()),
                                  size=count)
            moved = np.flatnonzero(copy > 0)
            published[moved] -= jitter[moved]
            picks = rng.random(count)
            for k in moved:  # another outlet of the same language reports the event
                own = int(outlet[k])
                others = pool.by_language[pool.outlet_language[own]]
                choice = others[int(picks[k] * len(others))]
                if choice == own and len(others) > 1:
                    choice = others[(others.index(own) + 1) % len(others)]
                outlet[k] = choice
            parts["base"].append(base.astype(np.int32))
            parts["round"].append(np.full(count, r, dtype=np.int32))
            parts["copy"].append(copy)
            parts["outlet"].append(outlet)
            parts["published"].append(published)
        arrays = {key: np.concatenate(value) if value else np.zeros(0, dtype=np.int64) for key, value in parts.items()}
        plan = cls(pool, n, copies, size, **{k: arrays.get(k, np.zeros(0, dtype=np.int64)) for k in
                                             ("base", "round", "copy", "outlet", "published")})
        # the newest item an hour ago at the latest: a date more than a day ahead is no date to the collectors
        now = now or datetime.now(timezone.utc)
        if n:
            ahead = int(plan.published.max()) - int((now - timedelta(hours=1)).timestamp())
            if ahead > 0:
                plan.published -= ahead
        plan._cut_feeds(feed_items)
        return plan

    def _cut_feeds(self, feed_items: int) -> None:
        self.order = np.lexsort((np.arange(self.n), self.published, self.outlet)) if self.n else self.order
        names: set[str] = set()
        feeds: list[FeedSpec] = []
        outlets = self.outlet[self.order]
        bounds = np.flatnonzero(np.diff(outlets)) + 1 if self.n else np.zeros(0, dtype=np.int64)
        starts = [0, *bounds.tolist()]
        stops = [*bounds.tolist(), self.n]
        for start, stop in zip(starts, stops):
            if start >= stop:
                continue
            outlet = int(outlets[start])
            name = self.pool.outlets[outlet]
            for k, chunk in enumerate(range(start, stop, feed_items)):
                candidate = name if k == 0 else f"{name} ({k + 1})"
                while candidate in names:
                    candidate += "'"
                names.add(candidate)
                feeds.append(FeedSpec(candidate[:200], self.pool.outlet_language[outlet], chunk,
                                      min(chunk + feed_items, stop)))
        self.feeds = feeds

    def item(self, index: int) -> ReplayItem:
        """The index-th replayed item (in generation order)."""
        pool = self.pool
        b, r, q = int(self.base[index]), int(self.round[index]), int(self.copy[index])
        original = pool.items[b]
        outlet = pool.outlets[int(self.outlet[index])]
        published = datetime.fromtimestamp(int(self.published[index]), tz=timezone.utc)
        variant = r * max(1, self.copies) + q
        if variant == 0:
            return ReplayItem(outlet, original.language, original.country, original.title, original.link,
                              original.description, published, original.guid)
        host = pool.outlet_host[int(self.outlet[index])] if q else None
        return ReplayItem(
            outlet, original.language, original.country,
            vary_title(original.title, original.language, variant, pool.title_gaps[b]),
            vary_link(original.link, host, b, r, q),
            vary_summary(original.description, original.language, variant, pool.summary_gaps[b]),
            published,
            f"{original.guid}#replay-{r}-{q}",
        )

    def feed_items(self, spec: FeedSpec) -> list[ReplayItem]:
        """A feed's items, newest first."""
        return [self.item(int(i)) for i in self.order[spec.start:spec.stop][::-1]]

    def stats(self) -> dict[str, object]:
        sizes = [f.stop - f.start for f in self.feeds]
        topical = set(self.pool.topical)
        return {
            "items": self.n, "feeds": len(self.feeds), "feed_items_mean": round(self.n / max(1, len(self.feeds)), 1),
            "feed_items_max": max(sizes, default=0), "base_items": len(self.pool.items),
            "base_topical": len(self.pool.topical), "topical_copies_per_round": self.copies,
            "round_size": self.round_size, "rounds": -(-self.n // max(1, self.round_size)),
            "topical_items": int(np.isin(self.base, list(topical)).sum()) if self.n else 0,
            "originals": int(((self.round == 0) & (self.copy == 0)).sum()) if self.n else 0,
            "oldest": _iso(self.published.min()) if self.n else None,
            "newest": _iso(self.published.max()) if self.n else None,
        }


def _iso(seconds: object) -> str:
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).isoformat()  # type: ignore[call-overload]


def wording_check(plan: Plan, sample: int = 300, seed: int = SEED) -> dict[str, object]:
    """How far the copies are from their originals, on a sample of replayed copies with a summary: the MinHash
    Jaccard estimate of `enrichment.syndication` (a copy at 0.5 or more would be taken for syndication) and
    whether the title key is new (the title-hash dedup)."""
    from collectors.normalise import title_key
    from collectors.text import html_to_text
    from enrichment.syndication import THRESHOLD, item_signature

    def summary(text: str) -> str:  # as the collectors store it
        return html_to_text(text) if "<" in text else text

    copies = np.flatnonzero((plan.round > 0) | (plan.copy > 0)) if plan.n else np.zeros(0, dtype=np.int64)
    rng = random.Random(seed)
    picked = rng.sample(list(copies), min(sample, len(copies))) if len(copies) else []
    jaccards, same_titles = [], 0
    for index in picked:
        copy = plan.item(int(index))
        original = plan.pool.items[int(plan.base[index])]
        same_titles += title_key(copy.title) == title_key(original.title)
        first = item_signature(original.title, summary(original.description))
        second = item_signature(copy.title, summary(copy.description))
        if first is not None and second is not None:
            jaccards.append(first.jaccard(second))
    jaccards.sort()
    return {
        "copies_checked": len(picked), "with_signature": len(jaccards), "same_title_key": same_titles,
        "jaccard_median": round(jaccards[len(jaccards) // 2], 3) if jaccards else None,
        "jaccard_max": round(jaccards[-1], 3) if jaccards else None,
        "at_or_over_threshold": sum(j >= THRESHOLD for j in jaccards),
    }


# --- the server -------------------------------------------------------------------------------------------


class ScaledReplayServer(ReplayServer):
    """The demo's replay server over a `Plan`: one feed per `FeedSpec`, rendered when asked for (nothing of
    the N items is kept), with the ETag of each feed's last body remembered so that a matching
    If-None-Match is answered 304 without rendering it again."""

    def __init__(self, plan: Plan) -> None:
        super().__init__([], window=max((f.stop - f.start for f in plan.feeds), default=1))
        self.plan = plan
        self.outlets = {spec.name: spec for spec in plan.feeds}  # type: ignore[assignment]
        self._slugs = {spec.name: f"f{i}" for i, spec in enumerate(plan.feeds)}
        self._by_slug = {slug: name for name, slug in self._slugs.items()}
        self._etags: dict[str, str] = {}
        self.not_modified = 0

    def language(self, outlet: str) -> str:
        return self.outlets[outlet].language  # type: ignore[attr-defined]

    def visible(self, outlet: str) -> list[ReplayItem]:
        items = self.plan.feed_items(self.outlets[outlet])  # type: ignore[arg-type]
        if self.clock is not None:
            items = [i for i in items if i.published <= self.clock]
        return items[: self.window]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        server = self

        class Handler(base):  # type: ignore[misc, valid-type]
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with server._lock:
                    server.requests += 1
                match = re.fullmatch(r"/feeds/([a-z0-9-]+)\.xml", self.path)
                slug = match.group(1) if match else ""
                outlet = server._by_slug.get(slug)
                if outlet is None:
                    self.send_error(404)
                    return
                known = server._etags.get(slug)
                if known is not None and self.headers.get("If-None-Match") == known:
                    with server._lock:
                        server.not_modified += 1
                    self.send_response(304)
                    self.send_header("ETag", known)
                    self.end_headers()
                    return
                items = server.visible(outlet)
                body = render_rss(outlet, server.language(outlet), items)
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                server._etags[slug] = etag
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/rss+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                if items:
                    self.send_header("Last-Modified", format_datetime(items[0].published, usegmt=True))
                self.end_headers()
                self.wfile.write(body)

        return Handler


# --- command line -----------------------------------------------------------------------------------------


def _rss_mib() -> float:
    import psutil

    return round(psutil.Process().memory_info().rss / 2**20, 1)


def serve(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    pool = Pool.load(args.data, Settings())
    loaded = time.perf_counter()
    plan = Plan.build(pool, args.items, share=args.share, feed_items=args.feed_items, seed=args.seed)
    built = time.perf_counter()
    info: dict[str, object] = {"plan": plan.stats(), "load_s": round(loaded - t0, 2),
                               "plan_s": round(built - loaded, 2), "wording": wording_check(plan)}
    with ScaledReplayServer(plan) as server:
        info["base_url"] = server.base_url
        info["feeds"] = [[spec.name, server.feed_url(spec.name), spec.language] for spec in plan.feeds]
        info["rss_mib"] = _rss_mib()
        tmp = Path(f"{args.ready}.tmp")
        tmp.write_text(json.dumps(info), encoding="utf-8")
        os.replace(tmp, args.ready)
        print("ready", flush=True)
        sys.stdin.read()  # the benchmark closes our stdin (or ends us) when it is done


def materialise(args: argparse.Namespace) -> None:
    """Every item in memory at once, then the demo's `ReplayServer` over them (which groups them per outlet
    in lists): what holding a replay of N items costs."""
    pool = Pool.load(args.data, Settings())
    plan = Plan.build(pool, args.items, share=args.share, feed_items=args.feed_items, seed=args.seed)
    before = _rss_mib()
    t0 = time.perf_counter()
    items = [plan.item(i) for i in range(plan.n)]
    made = time.perf_counter()
    with_items = _rss_mib()
    server = ReplayServer(items, window=args.feed_items)
    grouped = time.perf_counter()
    with_server = _rss_mib()
    server._httpd.server_close()
    print(json.dumps({"items": plan.n, "rss_before_mib": before, "rss_with_items_mib": with_items,
                      "rss_with_server_mib": with_server, "items_mib": round(with_items - before, 1),
                      "server_mib": round(with_server - with_items, 1), "make_items_s": round(made - t0, 1),
                      "server_init_s": round(grouped - made, 1), "outlets": len(server.outlets)}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("serve", "materialise"))
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--share", type=float, default=SHARE, help="topical share of a round")
    parser.add_argument("--feed-items", type=int, default=FEED_ITEMS, help="items per feed")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--ready", type=Path, help="serve: where to write the feed list once listening")
    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.ready is None:
            parser.error("serve needs --ready FILE")
        serve(args)
    else:
        materialise(args)


if __name__ == "__main__":
    main()
