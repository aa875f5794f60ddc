"""Same-story decisions on human-judged article pairs: `python bench/pair_eval.py PATH... [--model M]`.

Reads the pair files of ../shared/data/pairs/ (one JSON object a line: `id`, `same`, `a` and `b` with
`language`, `title`, `text`) and decides each pair with the system's own same-story decision,
`enrichment.clustering.StoryClusterer.pair_decision`: the combined similarity (embedding, same-language
TF-IDF, facts) of `b` to a story that `a` started, against `b`'s join threshold, with the configured settings
and embedding model; each article's language as the enrichment stage detects it (the file's as the feed's
hint). The file's other articles stand for the stream around the pair: document frequencies are counted on
every text of the file first, and the mean vector of its articles is what the topic's stories share
(`ActiveStories` removes half of it from both sides of a cosine, as it does in a stream).

Prints, per file: precision, recall and F1 at the system's own threshold, ROC AUC of its margin (similarity
minus threshold), a row per language pair, and in the same run the baselines at their best thresholds on
the file (an optimistic figure for them): bare cosine of all-MiniLM-L6-v2, bare cosine of the system's model,
and TF-IDF cosine, all of the same text (title and lead, `article_text`). The last line is one JSON object:
`{"file", "pairs", "system": {"p", "r", "f1", "auc"}, "by_language": {...}, "baselines": {...}}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cluster_eval, when imported from elsewhere

from cluster_eval import report

from core.settings import Settings
from enrichment.clustering import PairArticle, StoryClusterer
from enrichment.embeddings import PACKAGED_MODEL, article_text, get_embedder
from enrichment.language import detect_language
from enrichment.lexical import lead_text, tokens


def load_pairs(path: Path) -> list[dict]:
    with Path(path).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """ROC AUC (the Mann-Whitney statistic, ties counted half)."""
    values = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(labels, dtype=bool)
    positives, negatives = values[truth], values[~truth]
    if not len(positives) or not len(negatives):
        return None
    greater = (positives[:, None] > negatives[None, :]).sum()
    ties = (positives[:, None] == negatives[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(positives) * len(negatives)))


def prf(decisions: Sequence[bool], labels: Sequence[bool]) -> dict[str, float]:
    tp = sum(1 for d, y in zip(decisions, labels) if d and y)
    fp = sum(1 for d, y in zip(decisions, labels) if d and not y)
    fn = sum(1 for d, y in zip(decisions, labels) if not d and y)
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"p": round(p, 4), "r": round(r, 4), "f1": round(f1, 4)}


def best_threshold(scores: Sequence[float], labels: Sequence[bool]) -> dict[str, float]:
    """P/R/F1 at the threshold that maximises F1 on these pairs, with the threshold and the AUC."""
    best = {"p": 0.0, "r": 0.0, "f1": -1.0, "threshold": 0.0}
    for threshold in sorted(set(scores)):
        block = prf([s >= threshold for s in scores], labels)
        if block["f1"] > best["f1"]:
            best = {**block, "threshold": round(float(threshold), 4)}
    return {**best, "auc": _round(auc(scores, labels))}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _cosines(model: str, first: list[str], second: list[str]) -> list[float]:
    embedder = get_embedder(model)
    a, b = embedder.passages(first), embedder.passages(second)
    return [float(x) for x in (a * b).sum(axis=1)]


def _tfidf_cosines(first: list[str], second: list[str]) -> list[float]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    matrix = TfidfVectorizer(sublinear_tf=True).fit_transform(first + second)
    a, b = matrix[: len(first)], matrix[len(first) :]
    return [float(x) for x in np.asarray(a.multiply(b).sum(axis=1)).ravel()]


def evaluate(path: Path, model: str | None = None) -> dict:
    rows = load_pairs(path)
    settings = Settings(**({"embedding_model": model} if model else {}))
    embedder = get_embedder(settings.embedding_model)
    sides = {side: [row[side] for row in rows] for side in ("a", "b")}
    texts = {side: [article_text(x["title"], x["text"]) for x in items] for side, items in sides.items()}
    vectors = {side: embedder.passages(texts[side], batch_size=settings.embedding_batch_size) for side in sides}
    languages = {
        side: [detect_language(f"{x['title']} {x['text']}"[:600], hint=x.get("language")) or "und" for x in items]
        for side, items in sides.items()
    }
    clusterer = StoryClusterer.for_embedder(settings, embedder)
    for items in sides.values():  # document frequencies of the whole file, as a stream would have them
        for x in items:
            clusterer.frequencies.observe(tokens(lead_text(x["title"], x["text"])))

    # the file's articles stand for a stream's active ones: what they all share is no evidence of one story
    topic_mean = np.concatenate([vectors["a"], vectors["b"]]).mean(axis=0)
    labels = [bool(row["same"]) for row in rows]
    margins, decisions = [], []
    for i in range(len(rows)):
        first, second = (
            PairArticle(sides[s][i]["title"], sides[s][i]["text"], languages[s][i], vectors[s][i]) for s in "ab"
        )
        score, threshold = clusterer.pair_decision(first, second, topic_mean)
        margins.append(score - threshold)
        decisions.append(score >= threshold)
    system = {**prf(decisions, labels), "auc": _round(auc(margins, labels))}

    by_language: dict[str, dict] = {}
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups["-".join(sorted((row["a"]["language"], row["b"]["language"])))].append(i)
    for key in sorted(groups, key=lambda k: (-len(groups[k]), k)):
        index = groups[key]
        by_language[key] = {
            "pairs": len(index), "same": sum(labels[i] for i in index),
            **prf([decisions[i] for i in index], [labels[i] for i in index]),
            "auc": _round(auc([margins[i] for i in index], [labels[i] for i in index])),
        }

    baselines = {
        "minilm_cosine": best_threshold(_cosines(PACKAGED_MODEL, texts["a"], texts["b"]), labels),
        "tfidf_cosine": best_threshold(_tfidf_cosines(texts["a"], texts["b"]), labels),
    }
    if settings.embedding_model != PACKAGED_MODEL:
        baselines[f"{settings.embedding_model}_cosine"] = best_threshold(
            _cosines(settings.embedding_model, texts["a"], texts["b"]), labels
        )
    return {"file": str(path), "pairs": len(rows), "same": sum(labels), "model": settings.embedding_model,
            "system": system, "by_language": by_language, "baselines": baselines}


def format_table(result: dict) -> str:
    lines = [f"== {result['file']}  pairs={result['pairs']} (same {result['same']})  model={result['model']}",
             f"{'':<26}{'pairs':>7}{'P':>8}{'R':>8}{'F1':>8}{'AUC':>8}"]

    def row(name: str, block: dict, pairs: int | str = "") -> str:
        cells = "".join(
            f"{block[k]:>8.3f}" if block.get(k) is not None else f"{'-':>8}" for k in ("p", "r", "f1", "auc")
        )
        return f"{name:<26}{pairs!s:>7}{cells}"

    lines.append(row("system (own threshold)", result["system"], result["pairs"]))
    for key, block in result["by_language"].items():
        lines.append(row(f"  {key}", block, block["pairs"]))
    for name, block in result["baselines"].items():
        lines.append(row(f"{name} @{block['threshold']:.2f}", block, result["pairs"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--model", default=None, help="embedding model (default: the embedding_model setting)")
    args = parser.parse_args(argv)
    return report((evaluate(path, args.model) for path in args.paths), format_table)


if __name__ == "__main__":
    main()
