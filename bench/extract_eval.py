"""Article body extraction on the article-extraction benchmark: `python bench/extract_eval.py [DIR]
[--repeat 3] [--compare] [--n-bootstrap 1000] [--json-out FILE]`.

DIR (default `../shared/data/extraction/`) holds `html/<id>.html.gz` and `ground-truth.json`
(`{id: {"articleBody": ..., "url": ...}}`), as in github scrapinghub/article-extraction-benchmark.
Every page goes through `collectors.extract.extract_body` (the code the collect stage calls) and is
scored with the benchmark's own metric, reimplemented here from its `evaluate.py` (commit 4a3bc979):

- text -> tokens: the regex `\\w+` (Unicode), case kept; tokens -> 4-token shingles (a text of fewer than
  4 tokens is one shorter shingle; an empty text has none);
- per page: shingle multisets of truth and prediction give tp = sum of min counts, fp / fn = the excess
  counts, then tp, fp, fn are divided by tp + fp + fn, so that a long article weighs no more than a
  short one;
- precision = mean over pages with tp + fp > 0 of the page precision, recall = mean over pages with
  tp + fn > 0 of the page recall (both 1.0 for a page with fp = fn = 0, i.e. both texts empty or equal);
  F1 = harmonic mean of these two means (not a mean of page F1s); accuracy = share of pages whose token
  lists are identical; the ± figures are standard deviations over bootstrap resamples of the pages.

Printed: precision, recall, F1 (± bootstrap std), accuracy, pages/s of the extraction alone (best of
`--repeat` passes; reading and gunzipping are not timed), the total time, the pages that fell back to the
summary and those flagged truncated, next to the figures the benchmark publishes; the last line is one JSON
object. `--compare` first prints the trade-off table of trafilatura options and post-processing steps
that chose `collectors.extract.DEFAULT_OPTIONS`.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import gzip
import json
import random
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collectors.extract import DEFAULT_OPTIONS, Extraction, ExtractOptions, extract_body

DEFAULT_DIR = ROOT.parent / "shared" / "data" / "extraction"
# The benchmark's README (4a3bc979): F1 of the article body.
PUBLISHED = {
    "rs_trafilatura": 0.970,
    "trafilatura 2.0.0": 0.958,
    "newspaper4k": 0.949,
    "readability-lxml": 0.922,
}
NGRAM_N = 4

TpFpFn = tuple[float, float, float]

# ---- the benchmark's metric (evaluate.py) -------------------------------------------------------------------

_TOKEN_RE = re.compile(r"\w+", re.UNICODE | re.MULTILINE | re.IGNORECASE | re.DOTALL)


def tokenize(text: str | None) -> list[str]:
    return _TOKEN_RE.findall(text or "")


def ngrams(text: str | None, n: int = NGRAM_N) -> list[tuple[str, ...]]:
    tokens = tokenize(text)
    result = []
    for i in range(max(1, len(tokens) - n + 1)):
        shingle = tuple(tokens[i : i + n])
        if shingle:
            result.append(shingle)
    return result


def shingle_matching(true: str | None, pred: str | None, n: int = NGRAM_N) -> TpFpFn:
    """tp, fp, fn of one page over shingle multisets, normalised to sum to 1 (when not all 0)."""
    true_counts = Counter(ngrams(true, n))
    pred_counts = Counter(ngrams(pred, n))
    tp = fp = fn = 0.0
    for key in set(true_counts) | set(pred_counts):
        t, p = true_counts.get(key, 0), pred_counts.get(key, 0)
        tp += min(t, p)
        fp += max(0, p - t)
        fn += max(0, t - p)
    total = tp + fp + fn
    if total > 0:
        return tp / total, fp / total, fn / total
    return tp, fp, fn


def precision_score(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fp == 0:
        return 0.0
    return tp / (tp + fp)


def recall_score(tp: float, fp: float, fn: float) -> float:
    if fp == fn == 0:
        return 1.0
    if tp == fn == 0:
        return 0.0
    return tp / (tp + fn)


def metrics_from_tp_fp_fns(tp_fp_fns: list[TpFpFn]) -> dict[str, float]:
    """Mean page precision and mean page recall, and the F1 of these two means."""
    precision = statistics.mean([precision_score(*x) for x in tp_fp_fns if x[0] + x[1] > 0])
    recall = statistics.mean([recall_score(*x) for x in tp_fp_fns if x[0] + x[2] > 0])
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"f1": f1, "precision": precision, "recall": recall}


def accuracy(true: str | None, pred: str | None) -> float:
    return float(tokenize(true) == tokenize(pred))


def evaluate(
    ground_truth: dict[str, str], prediction: dict[str, str], n_bootstrap: int = 1000, seed: int = 0
) -> dict[str, float]:
    """The benchmark's figures for predicted bodies (page id -> text) against the true ones, with the
    bootstrap standard deviations (`f1_std`, ...) when n_bootstrap > 1."""
    if ground_truth.keys() != prediction.keys():
        raise ValueError("prediction keys do not match ground truth")
    keys = list(ground_truth)
    tp_fp_fns = [shingle_matching(ground_truth[k], prediction[k]) for k in keys]
    accuracies = [accuracy(ground_truth[k], prediction[k]) for k in keys]
    metrics = metrics_from_tp_fp_fns(tp_fp_fns)
    metrics["accuracy"] = statistics.mean(accuracies)
    if n_bootstrap > 1:
        rng = random.Random(seed)
        samples: dict[str, list[float]] = {}
        n = len(keys)
        for _ in range(n_bootstrap):
            indices = [rng.randint(0, n - 1) for _ in range(n)]
            sample = metrics_from_tp_fp_fns([tp_fp_fns[i] for i in indices])
            sample["accuracy"] = statistics.mean([accuracies[i] for i in indices])
            for key, value in sample.items():
                samples.setdefault(key, []).append(value)
        for key, values in samples.items():
            metrics[f"{key}_std"] = statistics.stdev(values)
    return metrics


# ---- running the extractor ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Corpus:
    pages: dict[str, bytes]  # page id -> raw HTML
    truth: dict[str, str]  # page id -> true article body
    urls: dict[str, str | None]


def load_corpus(directory: Path) -> Corpus:
    """The benchmark's pages (read and gunzipped once, before any timing); pages without ground truth are
    left out."""
    truth_raw = json.loads((directory / "ground-truth.json").read_text(encoding="utf-8"))
    pages: dict[str, bytes] = {}
    for path in sorted((directory / "html").glob("*.html.gz")):
        page_id = path.name.split(".")[0]
        if page_id in truth_raw:
            pages[page_id] = gzip.decompress(path.read_bytes())
    return Corpus(
        pages=pages,
        truth={page_id: truth_raw[page_id].get("articleBody") or "" for page_id in pages},
        urls={page_id: truth_raw[page_id].get("url") for page_id in pages},
    )


def run_pass(
    pages: dict[str, bytes], urls: dict[str, str | None], options: ExtractOptions, progress: Any = None
) -> tuple[dict[str, Extraction], float, float]:
    """One extraction of every page: results, wall seconds and CPU seconds spent in `extract_body` alone."""
    results: dict[str, Extraction] = {}
    wall = cpu = 0.0
    gc.collect()
    for page_id, html in pages.items():
        w0, c0 = time.perf_counter(), time.process_time()
        results[page_id] = extract_body(html, url=urls.get(page_id), options=options)
        wall += time.perf_counter() - w0
        cpu += time.process_time() - c0
        if progress is not None:
            progress()
    return results, wall, cpu


def measure(
    corpus: Corpus,
    options: ExtractOptions,
    *,
    repeat: int,
    n_bootstrap: int,
    progress: Any = None,
) -> dict[str, Any]:
    best_wall = best_cpu = float("inf")
    results: dict[str, Extraction] = {}
    extract_body("<html><body><p>warm-up</p></body></html>")  # imports trafilatura outside the timing
    for _ in range(max(1, repeat)):
        results, wall, cpu = run_pass(corpus.pages, corpus.urls, options, progress)
        best_wall, best_cpu = min(best_wall, wall), min(best_cpu, cpu)
    metrics = evaluate(corpus.truth, {k: r.text for k, r in results.items()}, n_bootstrap)
    pages = len(corpus.pages)
    return {
        "pages": pages,
        **metrics,
        "pages_per_s": pages / best_wall if best_wall else 0.0,
        "pages_per_cpu_s": pages / best_cpu if best_cpu else 0.0,
        "seconds_extraction": best_wall,
        "fallbacks": sum(1 for r in results.values() if r.method != "trafilatura"),
        "truncated": sum(1 for r in results.values() if r.truncated),
        "results": results,
    }


# The trade-off table: trafilatura's switches first (no post-processing), then the post-processing steps on
# the chosen switches.
_BARE = ExtractOptions(fast=False, favor_recall=False, drop_title=False, drop_boilerplate=False)
COMPARE: list[tuple[str, ExtractOptions]] = [
    ("trafilatura defaults (comments in)", dataclasses.replace(_BARE, include_comments=True)),
    ("include_comments=False (benchmark's run)", _BARE),
    ("+ favor_precision", dataclasses.replace(_BARE, favor_precision=True)),
    ("+ favor_recall", dataclasses.replace(_BARE, favor_recall=True)),
    ("+ include_tables=False", dataclasses.replace(_BARE, include_tables=False)),
    ("+ deduplicate", dataclasses.replace(_BARE, deduplicate=True)),
    ("+ fast (no_fallback)", dataclasses.replace(_BARE, fast=True)),
    ("+ fast + favor_precision", dataclasses.replace(_BARE, fast=True, favor_precision=True)),
    ("+ fast + favor_recall", dataclasses.replace(_BARE, fast=True, favor_recall=True)),
    ("fast + favor_recall + drop_title", dataclasses.replace(DEFAULT_OPTIONS, drop_boilerplate=False)),
    ("fast + favor_recall + drop_boilerplate", dataclasses.replace(DEFAULT_OPTIONS, drop_title=False)),
    ("favor_precision + both post-steps", dataclasses.replace(DEFAULT_OPTIONS, fast=False, favor_recall=False,
                                                              favor_precision=True)),
    ("DEFAULT_OPTIONS (fast + favor_recall + both)", DEFAULT_OPTIONS),
]


def compare(corpus: Corpus, *, repeat: int) -> None:
    """The trade-off table. The passes are interleaved (every variant once, then again...) so that load from
    other processes on a shared machine spreads over all rows; each row keeps its fastest pass."""
    best: dict[str, dict[str, Any]] = {}
    for _ in range(max(1, repeat)):
        for name, options in COMPARE:
            m = measure(corpus, options, repeat=1, n_bootstrap=0)
            if name in best:
                m["pages_per_s"] = max(m["pages_per_s"], best[name]["pages_per_s"])
                m["pages_per_cpu_s"] = max(m["pages_per_cpu_s"], best[name]["pages_per_cpu_s"])
            best[name] = m
    print(f"{'options':<46} {'F1':<6}  {'P':<5}  {'R':<5}  {'pages/s':>7}  {'p/cpu-s':>7}  {'fb':>4}")
    for name, _ in COMPARE:
        print(_row(name, best[name]))
    print(flush=True)


def _row(name: str, m: dict[str, Any]) -> str:
    return (
        f"{name:<46} {m['f1']:.4f}  {m['precision']:.3f}  {m['recall']:.3f}  "
        f"{m['pages_per_s']:7.1f}  {m['pages_per_cpu_s']:7.1f}  {m['fallbacks']:>4}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--repeat", type=int, default=3, help="extraction passes; the fastest is reported")
    parser.add_argument("--n-bootstrap", type=int, default=1000)
    parser.add_argument("--compare", action="store_true", help="print the options trade-off table first")
    parser.add_argument("--json-out", type=Path, help="also write per-page results here")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if not (args.directory / "ground-truth.json").exists():
        parser.error(f"no ground-truth.json in {args.directory}")
    corpus = load_corpus(args.directory)
    if not corpus.pages:
        parser.error(f"no html/*.html.gz pages with ground truth in {args.directory}")

    if args.compare:
        compare(corpus, repeat=args.repeat)

    progress_cm: Any = None
    if sys.stderr.isatty():
        from rich.progress import Progress

        progress_cm = Progress(transient=True)
    if progress_cm is not None:
        with progress_cm:
            task = progress_cm.add_task("extracting", total=len(corpus.pages) * max(1, args.repeat))
            m = measure(corpus, DEFAULT_OPTIONS, repeat=args.repeat, n_bootstrap=args.n_bootstrap,
                        progress=lambda: progress_cm.advance(task))
    else:
        m = measure(corpus, DEFAULT_OPTIONS, repeat=args.repeat, n_bootstrap=args.n_bootstrap)
    total = time.perf_counter() - started
    results: dict[str, Extraction] = m.pop("results")

    def pm(key: str) -> str:
        std = m.get(f"{key}_std")
        return f"{m[key]:.3f}" + (f" ± {std:.3f}" if std is not None else "")

    print(f"collectors.extract on {m['pages']} pages of {args.directory}")
    print(f"  options     {DEFAULT_OPTIONS}")
    print(f"  F1          {pm('f1')}")
    print(f"  precision   {pm('precision')}")
    print(f"  recall      {pm('recall')}")
    print(f"  accuracy    {pm('accuracy')}")
    print(f"  speed       {m['pages_per_s']:.1f} pages/s (extraction only, best of {args.repeat}; "
          f"{m['pages_per_cpu_s']:.1f} pages per CPU-second)")
    print(f"  fallbacks   {m['fallbacks']} pages used the summary / nothing; {m['truncated']} flagged truncated")
    print(f"  total       {total:.1f} s (reading, {args.repeat} passes, scoring)")
    print("published (benchmark README, F1):  " + "  ".join(f"{k} {v:.3f}" for k, v in PUBLISHED.items()))
    if args.json_out:
        args.json_out.write_text(
            json.dumps({k: dataclasses.asdict(r) for k, r in results.items()}, ensure_ascii=False, indent=1),
            encoding="utf-8",
        )
    summary = {
        "pages": m["pages"],
        "precision": round(m["precision"], 4),
        "recall": round(m["recall"], 4),
        "f1": round(m["f1"], 4),
        "f1_std": round(m.get("f1_std", 0.0), 4),
        "accuracy": round(m["accuracy"], 4),
        "pages_per_s": round(m["pages_per_s"], 1),
        "pages_per_cpu_s": round(m["pages_per_cpu_s"], 1),
        "fallbacks": m["fallbacks"],
        "truncated": m["truncated"],
        "seconds_total": round(total, 1),
        "published": PUBLISHED,
    }
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
