"""Language identification on real short news texts:
`python bench/language_eval.py [--data DIR] [--per-language N] [--detectors a,b,...] [--policy DETECTOR]`.

The labelled set is built from ../shared/data (see shared/README.md); each text is labelled with the language of
the outlet that published it, and only outlets that publish in a single language are used:

- en: WSJ World News (outlets/en/wsj_world*.xml and the replay/wsj-world-items.json stream), the FT and The
  Economist feeds (outlets/en/), and Reddit headlines (replay/reddit-news-headlines.json) whose link goes to one of
  the English-language outlets in `ENGLISH_DOMAINS` (a Reddit title is the submitter's; in these subreddits it is
  the article's headline, in English).
- de: the 13 German outlet feeds of outlets/de/ (tagesschau, Spiegel, n-tv, RND, GEO, Deutschlandfunk) and two
  German outlets in miniflux-testdata/parser/ (heise online, rdf_UTF8.xml; Golem.de, encoding_ISO-8859-1.xml).
- ru: the Russian-language services of outlets/ru/ and replay/ru-independent-media-items.json (BBC Russian, Meduza,
  Radio Svoboda, The Insider, Current Time, Novaya Gazeta, Verstka, iStories, Dossier, The Bell, Vot Tak).
- lt: Delfi.lt home-page headlines (replay/delfi-lt/*.csv); only links to the Lithuanian site (www./m.delfi.lt),
  not to its Russian (ru.delfi.lt) or English (en.delfi.lt) editions.
- lv, et, pl: shared/data holds no real source in these languages; they are in the candidate set of the
  detectors (so an et/lv/pl guess for an en/de/lt text counts as an error) but have no test texts.
- controls (reported apart, not in the accuracy): the French Le Cercle Psy feed and the BBC Urdu feed of
  miniflux-testdata/parser/: what a detector restricted to our languages does with a language outside them.

Feeds are read with the pipeline's own parser (`collectors.parse.parse_feed`, `collectors.normalise.
normalise_entry`), so titles and summaries are the plain text that enrichment sees. Texts are deduplicated per
language (the Deutschlandfunk feeds repeat articles; WSJ items are in both the feeds and the stream). Forms:

- headline: the title alone;
- headline+summary: `f"{title} {summary}"` cut to `TEXT_CHARS`, what enrichment passes to `detect_language`
  (only where the item has a summary different from its title);
- short: the headlines under `SHORT_CHARS` characters (a subset of headline).

At most `--per-language` texts per (language, form), drawn with a fixed seed. Accuracy is exact match of the
ISO 639-1 code; overall accuracy is the macro mean over the labelled languages (en and ru have far more texts than
lt), with the micro figure beside it. An outlet's language is not quite every item's: the Russian-language
outlets carry a few English titles ("Succession") and a Latvian one, which every detector "gets wrong"; the
accuracies are lower bounds by about 0.1 point (`--show-errors N` lists errors).

Each detector runs in its own fresh process, so that its load time (wall clock, including a first call) and
memory (RSS growth of that process over loading and running) are its own. Speed is texts per second of CPU time
on one core, best of SPEED_REPEATS passes over SPEED_TEXTS of the texts, one text per call as enrichment calls it
(the machine is shared: wall-clock rates of one detector varied by half between runs). Detectors that are not
installed are skipped: the candidates are not project dependencies, install them apart, e.g.
`pip install --target /tmp/langbench lingua-language-detector langdetect pycld2` and run with
`PYTHONPATH=/tmp/langbench`. None of them downloads anything at run time; gcld3 and pycld3 do not build with pip
here (they need protoc and libprotobuf), fasttext-langdetect downloads its model at run time: not compared.

`--policy DETECTOR` also evaluates enrichment's fallback to the feed's declared language on that detector's
outputs (`enrichment.language.choose`) over a grid of its constants: how often the outlet's declaration is
overridden (rightly, for the foreign titles above, wrongly otherwise), how often a wrong declaration of the same
script is corrected, and, with no declaration, accuracy and unanswered share per MIN_GUESS; then
`enrichment.language.detect_language` itself, constants included, for each kind of declaration.

Prints one table per form and, as the last line, one JSON object `{"data", "texts", "detectors", "policy"}`.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import random
import re
import resource
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from enrichment.language import FOLLOWED_LANGUAGES

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
# The "-region" detectors are restricted to the languages enrichment follows (config/feeds.yaml's, uk and be).
REGION_LANGUAGES = tuple(sorted(FOLLOWED_LANGUAGES))
SHORT_CHARS = 40
TEXT_CHARS = 600  # as enrichment.enrich.LANGUAGE_TEXT_CHARS (not imported: it loads the embedding stack)
PER_LANGUAGE = 1500
SEED = 4
SPEED_TEXTS = 2000  # timed on every k-th text (both forms, all languages), best of SPEED_REPEATS passes
SPEED_REPEATS = 5
FORMS = ("headline", "headline+summary", "short")
# English-language outlets among the Reddit headlines' domains (each one's site publishes in English only).
ENGLISH_DOMAINS = frozenset({
    "theguardian.com", "reuters.com", "cnn.com", "edition.cnn.com", "nbcnews.com", "apnews.com", "bbc.com",
    "bbc.co.uk", "cnbc.com", "thehill.com", "washingtonpost.com", "independent.co.uk", "abcnews.go.com",
    "cbsnews.com", "news.sky.com", "nytimes.com", "npr.org", "politico.com", "bloomberg.com",
})
_DELFI_LT = re.compile(r"^(?:https?://(?:www\.|m\.)?delfi\.lt)?/", re.IGNORECASE)
_TITLE_COLUMNS = ("title", "antraštė", "text")


@dataclass(frozen=True)
class Sample:
    text: str
    language: str  # the outlet's language: the label
    source: str
    form: str  # "headline" | "headline+summary" | "control"


# ------------------------------------------------------------------------------------------------ the data


def feed_items(path: Path) -> list[tuple[str, str]]:
    """(title, summary) of each entry of a feed file, as the collector stores them."""
    from datetime import UTC, datetime

    from collectors.normalise import SkippedEntry, normalise_entry
    from collectors.parse import parse_feed
    from core.models import Feed

    parsed = parse_feed(path.read_bytes(), url="https://example.org/feed")
    feed = Feed(name=path.stem, url="https://example.org/feed", language=None)
    items = []
    for entry in parsed.entries:
        try:
            article = normalise_entry(entry, feed=feed, feed_language=parsed.language, fetched_at=datetime.now(UTC))
        except SkippedEntry:
            continue
        items.append((article.title, article.summary))
    return items


def stream_items(path: Path) -> list[tuple[str, str]]:
    """(title, description as plain text) of a replay stream (a JSON list of items)."""
    from collectors.text import html_to_text, plain_text

    return [
        (plain_text(item.get("title") or ""), html_to_text(item.get("description") or ""))
        for item in json.loads(path.read_text(encoding="utf-8"))
    ]


def reddit_items(path: Path) -> list[tuple[str, str]]:
    """Headlines of the Reddit stream that link to an English-language outlet."""
    from collectors.text import plain_text

    items = json.loads(path.read_text(encoding="utf-8"))
    return [(plain_text(item.get("title") or ""), "") for item in items if item.get("domain") in ENGLISH_DOMAINS]


def delfi_items(folder: Path) -> list[tuple[str, str]]:
    """Headlines of the Delfi.lt CSVs (their columns differ per file) that link to the Lithuanian site."""
    items = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        header = [name.strip().lower() for name in rows[0]]
        title = next(i for i, name in enumerate(header) if name in _TITLE_COLUMNS)
        link = next(i for i, name in enumerate(header) if name in ("link", "nuoroda"))
        items += [(row[title].strip(), "") for row in rows[1:] if len(row) > link and _DELFI_LT.match(row[link])]
    return items


def sources(data: Path) -> dict[str, list[tuple[str, Callable[[], list[tuple[str, str]]]]]]:
    """Per label: (source name, loader of its (title, summary) items). See the module docstring for why."""
    feeds, replay, miniflux = data / "feeds" / "outlets", data / "replay", data / "feeds" / "miniflux-testdata"

    def from_feeds(paths: Iterable[Path]) -> list[tuple[str, Callable[[], list[tuple[str, str]]]]]:
        return [(path.stem, lambda path=path: feed_items(path)) for path in sorted(paths)]

    return {
        "en": from_feeds((feeds / "en").glob("*.xml"))
        + [
            ("wsj-world-items", lambda: stream_items(replay / "wsj-world-items.json")),
            ("reddit-english-outlets", lambda: reddit_items(replay / "reddit-news-headlines.json")),
        ],
        "de": from_feeds(list((feeds / "de").glob("*.xml")) + [miniflux / "parser" / "rdf_UTF8.xml",
                                                               miniflux / "parser" / "encoding_ISO-8859-1.xml"]),
        "ru": from_feeds((feeds / "ru").glob("*.xml"))
        + [("ru-independent-media-items", lambda: stream_items(replay / "ru-independent-media-items.json"))],
        "lt": [("delfi-lt", lambda: delfi_items(replay / "delfi-lt"))],
    }


# Languages Flankwatch does not follow, under shared/data (see the module docstring).
CONTROLS = {
    "fr": ("feeds/miniflux-testdata/parser/no_encoding_ISO-8859-1.xml",),
    "ur": ("feeds/miniflux-testdata/parser/urdu_UTF8.xml",),
}


def texts_of(title: str, summary: str) -> dict[str, str]:
    """The forms of one item: its headline, and its headline+summary where the summary adds something."""
    forms = {"headline": title}
    if summary and summary != title:
        forms["headline+summary"] = f"{title} {summary}"[:TEXT_CHARS]
    return forms


def build_samples(data: Path, per_language: int = PER_LANGUAGE, seed: int = SEED) -> list[Sample]:
    """The labelled set: deduplicated per (language, form), at most `per_language` of each, seeded."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    for language, loaders in sources(data).items():
        by_form: dict[str, dict[str, str]] = defaultdict(dict)  # form -> text -> source (first one wins)
        for source, load in loaders:
            for title, summary in load():
                for form, text in texts_of(title, summary).items():
                    if text.strip():
                        by_form[form].setdefault(text, source)
        for form, texts in by_form.items():
            chosen = sorted(texts)
            if len(chosen) > per_language:
                chosen = rng.sample(chosen, per_language)
            samples += [Sample(text, language, texts[text], form) for text in chosen]
    for language, paths in CONTROLS.items():
        for path in paths:
            for title, summary in feed_items(data / path):
                forms = texts_of(title, summary)
                samples += [Sample(text, language, Path(path).stem, "control") for text in forms.values()]
    return samples


# ------------------------------------------------------------------------------------------------ detectors
# Each factory loads a detector and returns `predict(text) -> (ISO 639-1 code or None, confidence in [0, 1])`.

Predict = Callable[[str], tuple[str | None, float]]


def _code(value: str | None) -> str | None:
    value = (value or "").strip().lower().replace("_", "-").split("-", 1)[0]
    return value if len(value) == 2 else None


def _py3langid(languages: Sequence[str] | None = None) -> Predict:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    if languages:
        identifier.set_languages(list(languages))

    def predict(text: str) -> tuple[str | None, float]:
        language, probability = identifier.classify(text)
        return _code(language), float(probability)

    return predict


def _lingua(languages: Sequence[str] | None = None, low_accuracy: bool = False) -> Predict:
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    if languages:
        builder = LanguageDetectorBuilder.from_iso_codes_639_1(*(getattr(IsoCode639_1, c.upper()) for c in languages))
    else:
        builder = LanguageDetectorBuilder.from_all_languages()
    if low_accuracy:
        builder = builder.with_low_accuracy_mode()
    detector = builder.with_preloaded_language_models().build()

    def predict(text: str) -> tuple[str | None, float]:
        values = detector.compute_language_confidence_values(text)
        if not values or values[0].value <= 0:
            return None, 0.0
        return values[0].language.iso_code_639_1.name.lower(), float(values[0].value)

    return predict


def _langdetect() -> Predict:
    from langdetect import DetectorFactory, LangDetectException, detect_langs

    DetectorFactory.seed = 0  # langdetect samples n-grams at random: fixed for repeatable figures

    def predict(text: str) -> tuple[str | None, float]:
        try:
            best = detect_langs(text)[0]
        except LangDetectException:
            return None, 0.0
        return _code(best.lang), float(best.prob)

    return predict


def _pycld2() -> Predict:
    import pycld2

    def predict(text: str) -> tuple[str | None, float]:
        try:
            reliable, _, details = pycld2.detect(text)
        except pycld2.error:
            return None, 0.0
        code = details[0][1]
        if code in ("un", "xxx"):
            return None, 0.0
        return _code(code), details[0][2] / 100 * (1.0 if reliable else 0.5)

    return predict


def _flankwatch() -> Predict:
    """What enrichment uses: `enrichment.language.identify` (py3langid restricted to the followed languages, see
    there), without a declared language."""
    from enrichment.language import identify

    return identify


# name -> (factory, the distribution whose installed size is reported)
DETECTORS: dict[str, tuple[Callable[[], Predict], str]] = {
    "flankwatch": (_flankwatch, "py3langid"),
    "py3langid": (_py3langid, "py3langid"),
    "py3langid-region": (lambda: _py3langid(REGION_LANGUAGES), "py3langid"),
    "lingua-all": (_lingua, "lingua-language-detector"),
    "lingua-all-low": (lambda: _lingua(low_accuracy=True), "lingua-language-detector"),
    "lingua-region": (lambda: _lingua(REGION_LANGUAGES), "lingua-language-detector"),
    "lingua-region-low": (lambda: _lingua(REGION_LANGUAGES, low_accuracy=True), "lingua-language-detector"),
    "langdetect": (_langdetect, "langdetect"),
    "pycld2": (_pycld2, "pycld2"),
}


def installed_mb(distribution: str) -> float | None:
    """Disk size of an installed distribution (its RECORD files), in MB."""
    from importlib import metadata

    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return None
    return round(sum(Path(f.locate()).stat().st_size for f in files if Path(f.locate()).is_file()) / 1e6, 1)


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 1e6


def run_detector(name: str, texts: list[str]) -> dict:
    """Load detector `name` and run it over `texts` (call in a fresh process: load time and memory are its own)."""
    factory, distribution = DETECTORS[name]
    before = _rss_mb()
    start = time.perf_counter()
    try:
        predict = factory()
        predict("warm-up")
    except ImportError as exc:
        return {"name": name, "skipped": f"not installed ({exc.name})"}
    load_s = time.perf_counter() - start
    outputs = [predict(text) for text in texts]
    return {
        "name": name,
        "predictions": [language for language, _ in outputs],
        "confidences": [confidence for _, confidence in outputs],
        "load_s": round(load_s, 2),
        "texts_per_s": texts_per_second(predict, texts[:: max(1, len(texts) // SPEED_TEXTS)]),
        "rss_mb": round(_rss_mb() - before),
        "installed_mb": installed_mb(distribution),
    }


def texts_per_second(predict: Predict, texts: list[str], repeats: int = SPEED_REPEATS) -> int:
    """Texts per second of this process's CPU time, best of `repeats` passes: the 2-core machine is shared, and
    wall-clock figures of the same detector varied by half between runs."""
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        for text in texts:
            predict(text)
        best = min(best, time.process_time() - start)
    return round(len(texts) / best)


def run_isolated(name: str, texts: list[str]) -> dict:
    context = multiprocessing.get_context("spawn")
    with context.Pool(1) as pool:
        return pool.apply(run_detector, (name, texts))


# ------------------------------------------------------------------------------------------------ scoring


def accuracy(gold: Sequence[str], predicted: Sequence[str | None]) -> float | None:
    return sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else None


def scores(samples: Sequence[Sample], predicted: Sequence[str | None]) -> dict[str, dict]:
    """Per form (headline, headline+summary, short = headlines under SHORT_CHARS): accuracy per language, their
    macro mean, the micro accuracy and the count; `confusions`: the commonest (gold, predicted) errors. Control
    samples are scored only per language, under "control"."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, sample in enumerate(samples):
        groups[sample.form].append(index)
        if sample.form == "headline" and len(sample.text) < SHORT_CHARS:
            groups["short"].append(index)
    result: dict[str, dict] = {}
    for form, indexes in groups.items():
        by_language: dict[str, list[int]] = defaultdict(list)
        for index in indexes:
            by_language[samples[index].language].append(index)
        per_language = {
            language: accuracy([samples[i].language for i in members], [predicted[i] for i in members])
            for language, members in sorted(by_language.items())
        }
        result[form] = {
            "n": len(indexes),
            "macro": sum(per_language.values()) / len(per_language),
            "micro": accuracy([samples[i].language for i in indexes], [predicted[i] for i in indexes]),
            "per_language": per_language,
        }
    errors = Counter(
        (s.language, p) for s, p in zip(samples, predicted) if s.form != "control" and s.language != p
    )
    result["confusions"] = {f"{g}->{p}": n for (g, p), n in errors.most_common(6)}
    return result


# ------------------------------------------------------------------------------------------------ fallback policy

# A wrong declaration of the same script for each label: a feed that declares English carrying a German item, a
# Lithuanian feed carrying an English one, a Russian feed carrying a Ukrainian... (the reverse: label ru, hint uk).
WRONG_HINT = {"en": "de", "de": "en", "lt": "en", "ru": "uk"}
CROSS_SCRIPT_HINT = {"en": "ru", "de": "ru", "lt": "ru", "ru": "en"}
GRID_LETTERS = (0, 10, 15, 20, 25, 40)
GRID_CONFIDENCE = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
GRID_GUESS = (0.0, 0.3, 0.5, 0.7)


def _labelled(samples: Sequence[Sample], run: dict) -> list[tuple[Sample, str | None, float, int, bool]]:
    from enrichment.language import letter_count, mostly_cyrillic

    return [
        (s, p, c, letter_count(s.text), mostly_cyrillic(s.text))
        for s, p, c in zip(samples, run["predictions"], run["confidences"])
        if s.form != "control"
    ]


def policy_grid(samples: Sequence[Sample], run: dict) -> list[dict]:
    """`enrichment.language.choose` on a detector's outputs over (min_letters, min_confidence): overrides of
    the outlet's (correct) declaration per 1,000 texts, and the share of wrong same-script declarations
    (WRONG_HINT) corrected."""
    labelled = _labelled(samples, run)
    gold = [s.language for s, *_ in labelled]
    rows = []
    for min_letters in GRID_LETTERS:
        for min_confidence in GRID_CONFIDENCE:
            kept = _decided(labelled, lambda language: language, min_letters, min_confidence)
            corrected = _decided(labelled, WRONG_HINT.get, min_letters, min_confidence)
            rows.append({"min_letters": min_letters, "min_confidence": min_confidence,
                         "overrides_per_1000": round((1 - (accuracy(gold, kept) or 0.0)) * 1000, 1),
                         "same_script_corrected": round(accuracy(gold, corrected) or 0.0, 4)})
    return rows


def _decided(
    labelled: list[tuple[Sample, str | None, float, int, bool]],
    hint: Callable[[str], str | None],
    min_letters: int,
    min_confidence: float,
) -> list[str | None]:
    from enrichment.language import choose

    return [
        choose(p, c, letters, cyrillic, hint(s.language), min_letters=min_letters, min_confidence=min_confidence)
        for s, p, c, letters, cyrillic in labelled
    ]


def guess_grid(samples: Sequence[Sample], run: dict) -> list[dict]:
    """`choose` over min_guess, the probability needed to name a language with no declaration (accuracy and
    unanswered share) or against a declaration of the other script (share corrected, CROSS_SCRIPT_HINT)."""
    from enrichment.language import choose

    labelled = _labelled(samples, run)
    gold = [s.language for s, *_ in labelled]
    rows = []
    for min_guess in GRID_GUESS:
        alone = [choose(p, c, n, cyr, None, min_guess=min_guess) for s, p, c, n, cyr in labelled]
        crossed = [choose(p, c, n, cyr, CROSS_SCRIPT_HINT[s.language], min_guess=min_guess)
                   for s, p, c, n, cyr in labelled]
        rows.append({"min_guess": min_guess, "no_declaration_accuracy": round(accuracy(gold, alone) or 0.0, 4),
                     "no_declaration_unanswered": round(sum(x is None for x in alone) / len(alone), 4),
                     "cross_script_corrected": round(accuracy(gold, crossed) or 0.0, 4)})
    return rows


def policy_defaults(samples: Sequence[Sample]) -> dict[str, dict[str, float | None]]:
    """`enrichment.language.detect_language` itself (its detector and constants), on the labelled texts and
    on the controls, when the declaration is correct, wrong in the same script, wrong in the other, or absent."""
    from enrichment.language import detect_language

    out: dict[str, dict[str, float | None]] = {}
    hints: dict[str, Callable[[str], str | None]] = {
        "correct": lambda language: language, "same_script_wrong": WRONG_HINT.get,
        "cross_script_wrong": CROSS_SCRIPT_HINT.get, "none": lambda language: None,
    }
    for group in ("labelled", "control"):
        members = [s for s in samples if (s.form == "control") == (group == "control")]
        gold = [s.language for s in members]
        out[group] = {
            case: round(accuracy(gold, [detect_language(s.text, hint(s.language)) for s in members]) or 0.0, 4)
            for case, hint in hints.items()
            if group == "labelled" or case in ("correct", "none")
        }
    return out


# ------------------------------------------------------------------------------------------------ report


def _pct(value: float | None) -> str:
    return "   -  " if value is None else f"{value * 100:5.1f}%"


def print_tables(samples: Sequence[Sample], runs: list[dict]) -> None:
    languages = sorted({s.language for s in samples if s.form != "control"})
    controls = sorted({s.language for s in samples if s.form == "control"})
    for form in FORMS:
        n = sum(1 for s in samples if s.form == form) if form != "short" else sum(
            1 for s in samples if s.form == "headline" and len(s.text) < SHORT_CHARS)
        print(f"\n== {form} ({n} texts)")
        print(f"{'detector':20s} {'macro':>6s} {'micro':>6s} " + " ".join(f"{x:>6s}" for x in languages))
        for run in runs:
            if "scores" not in run:
                continue
            score = run["scores"].get(form)
            if not score:
                continue
            cells = " ".join(_pct(score["per_language"].get(x)) for x in languages)
            print(f"{run['name']:20s} {_pct(score['macro'])} {_pct(score['micro'])} {cells}")
    print(f"\n== cost, and out-of-set controls ({', '.join(controls)}: accuracy of the control texts)")
    print(f"{'detector':20s} {'texts/s':>8s} {'load s':>7s} {'RSS MB':>7s} {'disk MB':>8s} "
          + " ".join(f"{x:>6s}" for x in controls) + "  commonest errors")
    for run in runs:
        if "skipped" in run:
            print(f"{run['name']:20s} skipped: {run['skipped']}")
            continue
        control = run["scores"].get("control", {}).get("per_language", {})
        print(f"{run['name']:20s} {run['texts_per_s']:8d} {run['load_s']:7.2f} {run['rss_mb']:7d} "
              f"{run['installed_mb'] or 0:8.1f} " + " ".join(_pct(control.get(x)) for x in controls)
              + "  " + ", ".join(f"{k} {v}" for k, v in run["scores"]["confusions"].items()))


def run_summary(run: dict) -> dict:
    """A detector's figures for the JSON line: costs, and per form macro, micro and per-language accuracy."""
    if "skipped" in run:
        return {"skipped": run["skipped"]}
    summary = {key: run[key] for key in ("texts_per_s", "load_s", "rss_mb", "installed_mb")}
    for form in FORMS + ("control",):
        if form in run["scores"]:
            score = run["scores"][form]
            summary[form] = {"macro": round(score["macro"], 4), "micro": round(score["micro"], 4),
                             "per_language": {k: round(v, 4) for k, v in score["per_language"].items()}}
    return summary


def print_policy(policy: dict) -> None:
    print(f"\n== declared-language fallback on {policy['detector']} (enrichment.language.choose); an override of the "
          "outlet's language can be right: an English or Latvian title in a Russian-language outlet")
    print(f"{'min_letters':>11s} {'min_conf':>8s} {'overrides/1000':>15s} {'same-script corrected':>22s}")
    for row in policy["grid"]:
        print(f"{row['min_letters']:11d} {row['min_confidence']:8.2f} {row['overrides_per_1000']:15.1f} "
              f"{_pct(row['same_script_corrected']):>22s}")
    print(f"{'min_guess':>11s} {'no declaration: accuracy':>25s} {'unanswered':>11s} {'cross-script corrected':>23s}")
    for row in policy["guess"]:
        print(f"{row['min_guess']:11.2f} {_pct(row['no_declaration_accuracy']):>25s} "
              f"{_pct(row['no_declaration_unanswered']):>11s} {_pct(row['cross_script_corrected']):>23s}")
    for group, cases in policy["defaults"].items():
        print(f"detect_language on the {group} texts, accuracy when the declaration is:",
              ", ".join(f"{k} {_pct(v)}" for k, v in cases.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/language_eval.py", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--per-language", type=int, default=PER_LANGUAGE)
    parser.add_argument("--detectors", default=",".join(DETECTORS))
    parser.add_argument("--policy", help="detector whose outputs the declared-language fallback is evaluated on")
    parser.add_argument("--show-errors", type=int, default=0, help="print this many errors of each detector")
    args = parser.parse_args(argv)
    names = args.detectors.split(",")
    unknown = [name for name in names if name not in DETECTORS]
    if unknown:
        parser.error(f"unknown detector(s) {', '.join(unknown)}; known: {', '.join(DETECTORS)}")

    samples = build_samples(args.data, args.per_language)
    counts = Counter((s.language, s.form) for s in samples)
    print("texts:", ", ".join(f"{lang}/{form} {n}" for (lang, form), n in sorted(counts.items())))
    texts = [s.text for s in samples]
    runs = []
    for name in names:
        run = run_isolated(name, texts)
        if "predictions" in run:
            run["scores"] = scores(samples, run["predictions"])
            errors = [(s, p) for s, p in zip(samples, run["predictions"]) if s.form != "control" and s.language != p]
            for sample, predicted in errors[: args.show_errors]:
                print(f"  {name}: {sample.language}->{predicted} [{sample.source}] {sample.text[:100]!r}")
        runs.append(run)
        print(f"ran {name}", file=sys.stderr)
    print_tables(samples, runs)

    policy = None
    chosen = next((run for run in runs if run["name"] == args.policy and "predictions" in run), None)
    if chosen is not None:
        policy = {"detector": chosen["name"], "grid": policy_grid(samples, chosen),
                  "guess": guess_grid(samples, chosen), "defaults": policy_defaults(samples)}
        print_policy(policy)

    summary = {
        "data": str(args.data),
        "texts": {f"{lang}/{form}": n for (lang, form), n in sorted(counts.items())},
        "detectors": {run["name"]: run_summary(run) for run in runs},
        "policy": policy,
    }
    print(json.dumps(summary, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
