"""bench/extract_eval.py scores like the article-extraction benchmark's evaluate.py: 4-token shingles of
`\\w+` tokens, per-page tp/fp/fn normalised, mean page precision and mean page recall, F1 of the two means."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import extract_eval as bench  # tests/conftest.py puts bench/ on sys.path
import pytest


def test_tokens_and_shingles_follow_the_benchmark():
    assert bench.tokenize("Hello, World! it's 4,800") == ["Hello", "World", "it", "s", "4", "800"]
    assert bench.tokenize("Rūdninkai Вильнюс") == ["Rūdninkai", "Вильнюс"]  # Unicode \w
    assert bench.ngrams("a b c d e") == [("a", "b", "c", "d"), ("b", "c", "d", "e")]
    assert bench.ngrams("a b") == [("a", "b")]  # shorter than 4 tokens: one short shingle
    assert bench.ngrams("") == []


def test_identical_text_scores_one():
    text = "The brigade will have 4,800 troops in Lithuania by 2027, about 100 km from the border."
    assert bench.shingle_matching(text, text) == (1.0, 0.0, 0.0)
    m = bench.evaluate({"a": text, "b": "short"}, {"a": text, "b": "short"}, n_bootstrap=0)
    assert m["precision"] == m["recall"] == m["f1"] == m["accuracy"] == 1.0


def test_disjoint_text_scores_zero():
    m = bench.evaluate({"a": "one two three four five"}, {"a": "six seven eight nine ten"}, n_bootstrap=0)
    assert m["precision"] == m["recall"] == m["f1"] == m["accuracy"] == 0.0


def test_case_counts_as_in_the_benchmark():
    # the benchmark's regex has IGNORECASE, which does not lower-case the tokens: case differences count
    assert bench.shingle_matching("a b c d", "A b c d") == (0.0, 0.5, 0.5)


def test_hand_computed_partial_overlap():
    # page 1: truth shingles {abcd, bcde}, prediction {abcd, bcdx}: tp=fp=fn=1 -> 1/3 each, P = R = 1/2
    assert bench.shingle_matching("a b c d e", "a b c d x") == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    # page 2: truth {abcd, bcde, cdef}, prediction {abcd}: tp=1, fp=0, fn=2 -> P = 1, R = 1/3
    assert bench.shingle_matching("a b c d e f", "a b c d") == pytest.approx((1 / 3, 0.0, 2 / 3))
    m = bench.evaluate({"1": "a b c d e", "2": "a b c d e f"}, {"1": "a b c d x", "2": "a b c d"}, n_bootstrap=0)
    # precision and recall are means over pages, F1 is taken of the means (not a mean of page F1s, 0.5)
    assert m["precision"] == pytest.approx(0.75)
    assert m["recall"] == pytest.approx(5 / 12)
    assert m["f1"] == pytest.approx(15 / 28)
    assert m["accuracy"] == 0.0


def test_repeated_shingles_count_as_multisets():
    # the prediction repeats the text: abcd twice (one matches), plus three shingles across the seam -> fp
    true = "a b c d"
    tp, fp, fn = bench.shingle_matching(true, "a b c d a b c d")
    assert (tp, fp, fn) == pytest.approx((1 / 5, 4 / 5, 0.0))


def test_empty_prediction_counts_only_for_recall():
    # tp + fp == 0: the page has no precision (left out of that mean) and a recall of 0
    assert bench.shingle_matching("a b c d e", "") == (0.0, 0.0, 1.0)
    m = bench.evaluate({"1": "a b c d e", "2": "w x y z"}, {"1": "", "2": "w x y z"}, n_bootstrap=0)
    assert m["precision"] == 1.0
    assert m["recall"] == 0.5


def test_bootstrap_std_is_reported_and_reproducible():
    truth = {str(i): f"w{i} a b c d e f g" for i in range(20)}
    pred = {str(i): (truth[str(i)] if i % 2 else "a b c d zz") for i in range(20)}
    first = bench.evaluate(truth, pred, n_bootstrap=200)
    second = bench.evaluate(truth, pred, n_bootstrap=200)
    assert first["f1_std"] > 0 and first == second


def test_mismatched_keys_are_refused():
    with pytest.raises(ValueError):
        bench.evaluate({"a": "x"}, {"b": "x"}, n_bootstrap=0)


def test_main_prints_the_figures_and_one_json_line(shared_data: Path, tmp_path: Path, capsys):
    source = shared_data / "extraction"
    truth = json.loads((source / "ground-truth.json").read_text(encoding="utf-8"))
    (tmp_path / "html").mkdir()
    chosen = sorted(truth)[:2]
    for page_id in chosen:
        (tmp_path / "html" / f"{page_id}.html.gz").write_bytes((source / "html" / f"{page_id}.html.gz").read_bytes())
    (tmp_path / "ground-truth.json").write_text(json.dumps({k: truth[k] for k in chosen}), encoding="utf-8")
    assert gzip.decompress((tmp_path / "html" / f"{chosen[0]}.html.gz").read_bytes())

    assert bench.main([str(tmp_path), "--repeat", "1", "--n-bootstrap", "10"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(out[-1])
    assert set(summary) >= {"pages", "precision", "recall", "f1", "pages_per_s", "fallbacks", "published"}
    assert summary["pages"] == 2
    assert summary["published"]["rs_trafilatura"] == 0.970
    assert summary["published"]["trafilatura 2.0.0"] == 0.958
    assert 0.0 <= summary["f1"] <= 1.0
    assert any("trafilatura 2.0.0 0.958" in line for line in out)
