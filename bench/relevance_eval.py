"""Topic relevance evaluation on labelled categories:
`python bench/relevance_eval.py PATH [--profiles FILE] [--limit N]`.

PATH is a UCI News Aggregator CSV (`ID,TITLE,URL,PUBLISHER,CATEGORY,STORY,HOSTNAME,TIMESTAMP`, read with
bench/clustering_data.py's loader; CATEGORY b/t/e/m). FILE (default bench/relevance_profiles.yaml) holds one
topic profile per category under `topics:` (the schema of `topics:` in config/flankwatch.yaml) and a
`labels:` map from CATEGORY codes to topic names.

Every article is embedded with the pipeline's own model (`get_embedder(Settings().embedding_model)` of
`article_text(title, text)`) and scored against every profile with the pipeline's own
`enrichment.relevance.TopicProfile.score`. An article always belongs to exactly one category here, so the
prediction is the profile with the highest score (ties, e.g. all profiles at 0, are broken by the
`closeness` -- mean cosine to the nearest seeds -- the same `Relevance` reports, then by profile order). Two
baselines in the same run:

- keyword: `keyword_evidence` of the same profile's `TermMatcher` matches only; argmax, ties (including no
  match anywhere) go to the first category in the profile file.
- embedding: cosine of the same article embedding to each profile's seeds and description (the best one);
  argmax.

Prints per-category precision/recall/F1, macro F1 and accuracy for each, articles/s, the system's macro F1 if
every gold story took the category most of its articles got (`story_majority_macro_f1`: how much of the error
is whole stories), and as the last line one JSON object
`{"file", "articles", "system", "baselines": {"keyword", "embedding"}}`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))  # clustering_data, when imported from elsewhere

from clustering_data import Record, load_uci, sample

from core.settings import Settings, TopicConfig
from enrichment.embeddings import Embedder, article_text, get_embedder
from enrichment.relevance import TopicProfile, keyword_evidence

DEFAULT_PROFILES = Path(__file__).resolve().parent / "relevance_profiles.yaml"
THRESHOLD = 0.5  # TopicProfile needs one; the argmax here does not use it


# ---------------------------------------------------------------------------------------------- metrics


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def classification_scores(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> dict:
    """Per-label precision/recall/F1/support/predicted count, macro F1 and accuracy. Macro F1 is the unweighted
    mean F1 over the labels present in `gold` (`macro_over`): a category the file has no article of cannot be
    recalled, but predicting it still costs the other categories recall. A label never predicted has
    precision 0."""
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    per_category = {}
    for label in labels:
        tp = sum(1 for g, p in zip(gold, predicted) if g == label and p == label)
        n_pred = sum(1 for p in predicted if p == label)
        n_gold = sum(1 for g in gold if g == label)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        per_category[label] = {
            "precision": round(precision, 4),
            "recall": round(recall, 4),
            "f1": round(_f1(precision, recall), 4),
            "support": n_gold,
            "predicted": n_pred,
        }
    present = [label for label in labels if per_category[label]["support"]]
    macro = float(np.mean([per_category[label]["f1"] for label in present])) if present else 0.0
    accuracy = sum(1 for g, p in zip(gold, predicted) if g == p) / len(gold) if gold else 0.0
    return {"macro_f1": round(macro, 4), "macro_over": present, "accuracy": round(accuracy, 4),
            "per_category": per_category}


# ----------------------------------------------------------------------------------------------- inputs


def load_profiles(path: Path = DEFAULT_PROFILES) -> tuple[list[TopicConfig], dict[str, str]]:
    """(topics, {CATEGORY code: topic name}) from a profile file."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    topics = [TopicConfig(**item) for item in data.get("topics") or []]
    labels = {str(code): str(name) for code, name in (data.get("labels") or {}).items()}
    names = {topic.name for topic in topics}
    unknown = sorted(set(labels.values()) - names)
    if unknown:
        raise ValueError(f"labels name topics that are not in {path}: {unknown}")
    return topics, labels


def load_labelled(path: Path) -> list[tuple[Record, str]]:
    """(record, CATEGORY code) for every row the clustering loader keeps (same rows, same order)."""
    return [(record, record.category) for record in load_uci(path)]


# ------------------------------------------------------------------------------------------- classifiers


def system_predict(
    profiles: Sequence[TopicProfile], records: Sequence[Record], vectors: np.ndarray,
    per_record: Sequence[Sequence[TopicProfile]] | None = None,
) -> tuple[list[str], int]:
    """(topic per article by the highest TopicProfile score, articles whose top score was tied).
    `per_record`: the profiles each article is scored with (those of the model that made its vector)."""
    predicted, ties = [], 0
    for index, (record, vector) in enumerate(zip(records, vectors)):
        own = per_record[index] if per_record is not None else profiles
        results = [p.score(record.title, record.text, vector, language=record.language) for p in own]
        best = max(r.score for r in results)
        if sum(1 for r in results if r.score == best) > 1:
            ties += 1
        # max() keeps the first of equal keys: profile order last
        predicted.append(max(results, key=lambda r: (r.score, r.closeness)).topic)
    return predicted, ties


def story_majority(stories: Sequence[str], predicted: Sequence[str]) -> list[str]:
    """Each article relabelled with the topic most of its gold story's articles were given (ties: the first
    given). A diagnostic, not a classifier: the macro F1 of this says how much of the error is scattered
    headlines (which it fixes) and how much is whole stories put in another category (which it cannot)."""
    votes: dict[str, Counter[str]] = defaultdict(Counter)
    for story, topic in zip(stories, predicted):
        votes[story][topic] += 1
    return [votes[story].most_common(1)[0][0] for story in stories]


def keyword_predict(profiles: Sequence[TopicProfile], records: Sequence[Record]) -> tuple[list[str], int]:
    """(topic per article by keyword evidence alone, ties -> first profile; articles without any match)."""
    predicted, unmatched = [], 0
    for record in records:
        text = f"{record.title or ''}\n{record.text or ''}"
        evidence = [keyword_evidence(p.matcher.find(text)) for p in profiles]
        if max(evidence) == 0.0:
            unmatched += 1
        predicted.append(profiles[int(np.argmax(evidence))].name)  # argmax: first of ties
    return predicted, unmatched


def embedding_predict(
    topics: Sequence[TopicConfig], embedder: Embedder, vectors: np.ndarray
) -> list[str]:
    """Topic per article by the best cosine to the topic's seeds and description."""
    columns = []
    for topic in topics:
        texts = [*topic.seeds, *([topic.description] if topic.description else [])] or [topic.name]
        columns.append((vectors @ embedder.passages(texts).T).max(axis=1))
    best = np.argmax(np.stack(columns, axis=1), axis=1)
    return [topics[i].name for i in best]


# ---------------------------------------------------------------------------------------------------- run


def evaluate(path: Path, profiles_path: Path = DEFAULT_PROFILES, limit: int | None = None,
             embedder: Embedder | None = None, screen: str = "full") -> dict:
    """`screen`: `full` (every article read in full by the model, the default) or an `embedding_screen` of
    enrichment.screen (`static`: the static model first, the transformer on candidates only); the system's
    scores are then those of the pipeline, each article against the topics compiled for its vector's model,
    and the baselines still use every article's full vector."""
    topics, labels = load_profiles(profiles_path)
    rows = load_labelled(path)
    if limit:
        keep = {id(record) for record in sample([record for record, _ in rows], limit)}
        rows = [(record, code) for record, code in rows if id(record) in keep]
    unknown = sorted({code for _, code in rows if code not in labels})
    if unknown:
        raise ValueError(f"{path}: CATEGORY codes without a profile label: {unknown}")
    records = [record for record, _ in rows]
    gold = [labels[code] for _, code in rows]
    names = [topic.name for topic in topics]

    embedder = embedder or get_embedder(Settings().embedding_model)
    profiles = [TopicProfile(topic, embedder, THRESHOLD) for topic in topics]

    start = time.perf_counter()
    vectors = embedder.passages([article_text(r.title, r.text) for r in records])
    embed_s = time.perf_counter() - start
    screened: dict = {}
    per_record = None
    system_vectors = vectors
    if screen != "full":
        from enrichment.screen import Screen

        start = time.perf_counter()
        screening = Screen(Settings(), embedder, profiles, mode=screen, topics=topics)
        embedded = screening.embed([(r.title, r.text, r.language) for r in records])
        screened_s = time.perf_counter() - start
        system_vectors = np.stack([item.vector for item in embedded])
        per_record = [screening.profiles_for(item.model) for item in embedded]
        transformer = sum(1 for item in embedded if item.model == embedder.name)
        screened = {"screen": screen, "transformer_share": round(transformer / max(1, len(records)), 4),
                    "screen_articles_per_s": round(len(records) / screened_s, 1) if screened_s else None}
    start = time.perf_counter()
    system, ties = system_predict(profiles, records, system_vectors, per_record)
    score_s = time.perf_counter() - start
    start = time.perf_counter()
    keyword, unmatched = keyword_predict(profiles, records)
    keyword_s = time.perf_counter() - start
    start = time.perf_counter()
    embedding = embedding_predict(topics, embedder, vectors)
    embedding_s = time.perf_counter() - start

    def rate(seconds: float) -> float | None:
        return round(len(records) / seconds, 1) if seconds > 0 else None

    system_block = classification_scores(gold, system, names)
    system_block.update(tied_top_scores=ties, articles_per_s=rate(embed_s + score_s),
                        scoring_articles_per_s=rate(score_s), model=embedder.name, **screened)
    majority = classification_scores(gold, story_majority([record.story for record in records], system), names)
    system_block["story_majority_macro_f1"] = majority["macro_f1"]
    keyword_block = classification_scores(gold, keyword, names)
    keyword_block.update(no_keyword_match=unmatched, articles_per_s=rate(keyword_s))
    embedding_block = classification_scores(gold, embedding, names)
    embedding_block.update(articles_per_s=rate(embed_s + embedding_s))
    return {
        "file": str(path),
        "articles": len(records),
        "system": system_block,
        "baselines": {"keyword": keyword_block, "embedding": embedding_block},
    }


def format_table(result: dict) -> str:
    methods = [("system", result["system"]), ("keyword", result["baselines"]["keyword"]),
               ("embedding", result["baselines"]["embedding"])]
    categories = list(result["system"]["per_category"])
    lines = [f"{result['file']}: {result['articles']} articles"]
    header = f"{'category':<20} {'support':>7}  " + "  ".join(f"{name:^17}" for name, _ in methods)
    lines += [header, f"{'':<20} {'':>7}  " + "  ".join(f"{'P':>5} {'R':>5} {'F1':>5}" for _ in methods)]
    for category in categories:
        cells = []
        for _, block in methods:
            c = block["per_category"][category]
            cells.append(f"{c['precision']:>5.3f} {c['recall']:>5.3f} {c['f1']:>5.3f}")
        support = result["system"]["per_category"][category]["support"]
        lines.append(f"{category:<20} {support:>7}  " + "  ".join(cells))
    lines.append(f"{'macro F1':<20} {'':>7}  " + "  ".join(f"{block['macro_f1']:>17.3f}" for _, block in methods))
    lines.append(f"{'accuracy':<20} {'':>7}  " + "  ".join(f"{block['accuracy']:>17.3f}" for _, block in methods))
    lines.append(f"{'articles/s':<20} {'':>7}  " + "  ".join(f"{block['articles_per_s']!s:>17}" for _, block in methods))
    system = result["system"]
    lines.append("macro F1 over the categories present in the file: " + ", ".join(system["macro_over"]))
    absent = [c for c in categories if not system["per_category"][c]["support"]]
    if absent:
        lines.append("absent from the file, predicted anyway (errors): " + ", ".join(
            f"{c} (system {system['per_category'][c]['predicted']}, keyword "
            f"{result['baselines']['keyword']['per_category'][c]['predicted']}, embedding "
            f"{result['baselines']['embedding']['per_category'][c]['predicted']})" for c in absent))
    lines.append(f"system: scoring alone {system['scoring_articles_per_s']} articles/s (rates include embedding "
                 f"except keyword's); {system['tied_top_scores']} articles with a tied top score "
                 "(broken by closeness to the seeds)")
    lines.append(f"system, each gold story relabelled with the category most of its articles got (a diagnostic: "
                 f"what is left are whole stories put elsewhere): macro F1 {system['story_majority_macro_f1']:.3f}")
    lines.append(f"keyword: {result['baselines']['keyword']['no_keyword_match']} articles match no keyword "
                 "(-> first category)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", type=Path, help="UCI News Aggregator CSV with a CATEGORY column")
    parser.add_argument("--profiles", type=Path, default=DEFAULT_PROFILES, help="topic profiles (YAML)")
    parser.add_argument("--limit", type=int, default=None, help="a seeded random sample of N articles")
    parser.add_argument("--model", default=None, help="embedding model (default: the embedding_model setting)")
    parser.add_argument("--screen", default="full", choices=["full", "static"],
                        help="what the model reads (enrichment.screen; default full: every article in full)")
    args = parser.parse_args(argv)
    embedder = get_embedder(args.model) if args.model else None
    result = evaluate(args.path, args.profiles, args.limit, embedder, args.screen)
    print(format_table(result), flush=True)
    print(flush=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
