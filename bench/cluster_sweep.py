"""How robust the clustering settings are on labelled data:
`python bench/cluster_sweep.py PATH... [--set NAME=V1,V2,...]... [--seeds 13,1,2] [--halves 3] [--limit N]`.

`bench/cluster_eval.py` scores one run of one file. Settings chosen on a dev file should also hold on data
they were not chosen on, so this runs the enrichment stage (`enrichment.enrich.enrich`, with the embeddings
stored, as cluster_eval's clustering-only run) for the configured settings and for each variant that
`--set` gives (every combination of the values given), on:

- full: the whole file, interleaved, once per seed of `--seeds` (each seed another jitter of the arrivals);
- halves: random halves of the file's stories (`--halves` splits, both halves of each, interleaved with the
  first seed). The held-out data the settings are checked on is a dev file's other half, split by story;
  the spread over halves says how much one such half can differ from the dev file;
- narrow, where the file gives each story a `topic` (ECB+: two different events of one kind): each topic's
  stories streamed alone, their articles in turn `NARROW_GAP_S` apart, with their text and with the
  headline only. That is a narrow topic like Flankwatch's own, where every story resembles every other, and
  a feed that gives headlines only.

Prints, per file and variant, pairwise F1 / B-cubed F1: the mean over seeds, the mean and minimum over
halves, the mean over narrow topics (text, headline only), and the birth F1 of the full runs; then one JSON
object per file; the last line is the last file's.
"""

from __future__ import annotations

import argparse
import itertools
import random
import shutil
import sqlite3
import sys
import tempfile
from collections import defaultdict
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # clustering_data and cluster_eval, when imported

from cluster_eval import (
    eval_database,
    eval_settings,
    keyed_stream,
    report,
    run_stage,
    scores,
    store_stream,
)
from clustering_data import Record, arrival_order, load, sample

from core.db import upgrade
from core.settings import Settings
from enrichment.embeddings import article_text, get_embedder

NARROW_GAP_S = 1800.0  # narrow streams: one article every 30 minutes, the topic's stories in turn
SCORED = ("pairwise_f1", "bcubed_f1")


def parse_sets(values: list[str]) -> dict[str, list[float | int]]:
    """`["cluster_threshold=0.27,0.3"]` -> {"cluster_threshold": [0.27, 0.3]}; ValueError for a name that is
    not a numeric setting or a value that is not a number (a whole number for an integer setting)."""
    fields = Settings.model_fields
    parsed: dict[str, list[float | int]] = {}
    for value in values:
        name, sep, numbers = value.partition("=")
        name = name.strip()
        if not sep or not numbers.strip():
            raise ValueError(f"--set wants NAME=V1,V2,...: {value!r}")
        kind = fields[name].annotation if name in fields else None
        if kind not in (float, int):
            raise ValueError(f"--set: {name!r} is not a numeric setting")
        try:
            parsed[name] = [kind(number) for number in numbers.split(",")]  # type: ignore[misc]
        except ValueError:
            raise ValueError(f"--set {name}: not a {kind.__name__} in {numbers!r}") from None
    return parsed


def variants(sets: dict[str, list[float | int]]) -> list[dict[str, float | int]]:
    """The configured settings ({}), then every combination of the values of `sets`."""
    names = sorted(sets)
    combos = [dict(zip(names, values)) for values in itertools.product(*(sets[name] for name in names))]
    return [{}] + [combo for combo in combos if combo]


def halves(records: list[Record], splits: int, seed: int) -> list[list[Record]]:
    """Both halves of `splits` random splits of the records' stories (each split seeded by `seed` + its
    number)."""
    stories = sorted({record.story for record in records})
    out = []
    for split in range(splits):
        order = stories[:]
        random.Random(seed + split).shuffle(order)
        for part in (set(order[: len(order) // 2]), set(order[len(order) // 2:])):
            out.append([record for record in records if record.story in part])
    return out


def narrow_streams(records: list[Record]) -> list[list[tuple[Record, float]]]:
    """Per topic with two stories or more: its articles, the stories' in turn (each story in file order),
    `NARROW_GAP_S` apart from the topic's earliest publication time."""
    topics: dict[str, dict[str, list[Record]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        if record.topic:
            topics[record.topic][record.story].append(record)
    streams = []
    for topic in sorted(topics):
        stories = [topics[topic][story] for story in sorted(topics[topic])]
        if len(stories) < 2:
            continue
        start = min(record.published for story in stories for record in story)
        turns = [record for group in itertools.zip_longest(*stories) for record in group if record is not None]
        streams.append([(record, start + NARROW_GAP_S * n) for n, record in enumerate(turns)])
    return streams


def _copy_database(source: Path, target: Path) -> None:
    """A copy of a SQLite database, WAL included (a file copy could miss what the WAL still holds)."""
    with closing(sqlite3.connect(source)) as src, closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


class Runner:
    """Runs the stage on streams whose embeddings are computed once; each run on a copy of one migrated DB."""

    def __init__(self, workdir: Path, model: str | None) -> None:
        self.workdir = workdir
        self.model = model
        template_dir = workdir / "template"
        template_dir.mkdir()
        template = eval_settings(template_dir, model)
        upgrade(template)
        self.template_db = eval_database(template_dir)
        self.embedder = get_embedder(template.embedding_model)
        self.batch_size = template.embedding_batch_size
        self.vectors: dict[tuple[str, str], np.ndarray] = {}
        self.runs = 0

    def embed(self, records: list[Record]) -> None:
        """Embed what the stage would (title + lead) for records not embedded yet (in one call)."""
        todo = {
            (r.title, r.text): article_text(r.title, r.text) for r in records if (r.title, r.text) not in self.vectors
        }
        if todo:
            encoded = self.embedder.passages(list(todo.values()), batch_size=self.batch_size)
            self.vectors.update(zip(todo, encoded))

    def labels(
        self, arrivals: list[tuple[Record, float]], overrides: dict[str, float | int]
    ) -> tuple[list[str], list[str]]:
        """(gold, predicted) story labels of the stage over `arrivals` with `overrides` applied."""
        ids, stream = keyed_stream(arrivals)
        self.embed([record for record, _ in stream])
        self.runs += 1
        var = self.workdir / f"run-{self.runs}"
        var.mkdir()
        _copy_database(self.template_db, eval_database(var))
        settings = eval_settings(var, self.model).model_copy(update=overrides)
        vectors = np.stack([self.vectors[(record.title, record.text)] for record, _ in stream])
        store_stream(settings, stream, ids, vectors, self.embedder.name)
        predicted, _, _ = run_stage(settings, stream, ids)
        shutil.rmtree(var)
        return [record.story for record, _ in stream], predicted


def _mean(blocks: list[dict], key: str) -> float | None:
    return round(float(np.mean([block[key] for block in blocks])), 4) if blocks else None


def sweep_file(
    path: Path, sets: dict[str, list[float | int]], seeds: list[int], splits: int, limit: int | None, model: str | None
) -> dict:
    records = sample(load(path), limit, seeds[0])
    narrow = narrow_streams(records)
    headline_only = [[(replace(record, text=""), at) for record, at in stream] for stream in narrow]
    parts = halves(records, splits, seeds[0])
    rows = []
    with tempfile.TemporaryDirectory(prefix="cluster-sweep-") as tmp:
        runner = Runner(Path(tmp), model)
        for overrides in variants(sets):

            def score(arrivals: list[tuple[Record, float]], overrides: dict[str, float | int] = overrides) -> dict:
                return scores(*runner.labels(arrivals, overrides), seconds=1.0)

            full = [score(arrival_order(records, "interleaved", seed)) for seed in seeds]
            halved = [score(arrival_order(part, "interleaved", seeds[0])) for part in parts]
            narrow_text = [score(stream) for stream in narrow]
            narrow_headline = [score(stream) for stream in headline_only]
            row: dict = {"settings": overrides or "configured"}
            for key in SCORED:
                row[f"full_{key}"] = _mean(full, key)
                row[f"full_{key}_by_seed"] = [block[key] for block in full]
                row[f"halves_{key}"] = _mean(halved, key)
                row[f"halves_{key}_min"] = min((block[key] for block in halved), default=None)
                row[f"narrow_{key}"] = _mean(narrow_text, key)
                row[f"narrow_headline_{key}"] = _mean(narrow_headline, key)
            row["full_birth_f1"] = _mean(full, "birth_f1")
            rows.append(row)
    return {
        "file": str(path), "articles": len(records), "seeds": seeds, "halves": len(parts),
        "narrow_topics": len(narrow), "variants": rows,
    }


def format_table(result: dict) -> str:
    columns = [
        ("full", "full_{}"), ("halves", "halves_{}"), ("halves min", "halves_{}_min"),
        ("narrow", "narrow_{}"), ("narrow hl", "narrow_headline_{}"),
    ]
    names = [
        row["settings"] if isinstance(row["settings"], str)
        else " ".join(f"{key}={value:g}" for key, value in row["settings"].items())
        for row in result["variants"]
    ]
    width = max(len(name) for name in names + ["settings"]) + 2
    lines = [
        (
            f"== {result['file']}  articles={result['articles']}  seeds={result['seeds']}  "
            f"halves={result['halves']}  narrow topics={result['narrow_topics']}  (cells: pairwise F1 / B-cubed F1)"
        ),
        f"{'settings':<{width}}" + "".join(f"{name:>15}" for name, _ in columns) + f"{'birth F1':>10}",
    ]
    for name, row in zip(names, result["variants"]):
        cells = []
        for _, pattern in columns:
            pair = [row[pattern.format(key)] for key in SCORED]
            cells.append("-" if None in pair else f"{pair[0]:.3f} / {pair[1]:.3f}")
        lines.append(f"{name:<{width}}" + "".join(f"{cell:>15}" for cell in cells) + f"{row['full_birth_f1']:>10.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=V1,V2",
        help="a numeric setting and the values to try (repeat for several: every combination is run)",
    )
    parser.add_argument("--seeds", default="13,1,2", help="interleaving seeds of the full runs (default 13,1,2)")
    parser.add_argument("--halves", type=int, default=3, help="random story splits (two halves each; default 3)")
    parser.add_argument("--limit", type=int, default=None, help="a seeded random sample of N articles per file")
    parser.add_argument("--model", default=None, help="embedding model (default: the embedding_model setting)")
    args = parser.parse_args(argv)
    try:
        sets = parse_sets(args.set)
        seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError as error:
        parser.error(str(error))
    if args.halves < 0:
        parser.error("--halves must be 0 or more")
    return report(
        (sweep_file(path, sets, seeds, args.halves, args.limit, args.model) for path in args.paths), format_table
    )


if __name__ == "__main__":
    main()
