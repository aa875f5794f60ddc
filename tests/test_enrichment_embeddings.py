"""Embeddings (the real offline model), the embedded text, language detection, light module imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from core.settings import PROJECT_ROOT
from enrichment.embeddings import article_text, get_embedder
from enrichment.language import detect_language

TEXTS = [
    "Germany deploys a brigade to Lithuania",
    "Bundeswehr-Brigade in Litauen nimmt Dienst auf",
    "Литва закрыла транзит в Калининград",
    "",
]


def test_encode_shape_norm_and_dtype(embedder) -> None:
    vectors = embedder.passages(TEXTS)
    assert embedder.dim == 384
    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.passages([]).shape == (0, 384)


def test_encode_is_deterministic(embedder) -> None:
    first = embedder.passages(TEXTS, batch_size=2)
    again = embedder.passages(TEXTS, batch_size=2)
    assert np.array_equal(first, again)
    alone = embedder.passages(TEXTS[:1])
    assert np.allclose(first[0], alone[0], atol=1e-5)  # batching does not change a text's vector


def test_get_embedder_is_cached_and_rejects_unknown_models(embedder) -> None:
    assert get_embedder(embedder.name) is embedder
    with pytest.raises(FileNotFoundError):
        get_embedder("/nonexistent/model/folder")


def test_article_text_is_title_and_capped_lead() -> None:
    assert article_text("Title", "") == "Title"
    assert article_text("Title", "Title. The lead.") == "Title. The lead."  # feeds that repeat the title
    text = article_text("Troops arrive", "word " * 500)
    assert text.startswith("Troops arrive. word") and len(text) <= 600


@pytest.mark.parametrize(
    ("text", "hint", "expected"),
    [
        ("Germany has begun deploying troops to the Baltic state of Lithuania, the first such deployment", None, "en"),
        ("Nausėda perspėja dėl taikos derybų rizikos: Rusijai reikia tik vieno", "lt", "lt"),
        ("Die Bundeswehr stationiert dauerhaft eine Brigade in Litauen, sagte Pistorius am Montag", "en", "de"),
        ("NATO", "de", "de"),  # too short to overrule the feed
        ("Brigade Litauen", "de", "de"),
        ("Литва закрыла транзит в Калининград", "de", "ru"),  # a Latin-script hint cannot be right here
        ("", "en-US", "en"),
        ("", None, None),
    ],
)
def test_detect_language(text: str, hint: str | None, expected: str | None) -> None:
    assert detect_language(text, hint) == expected


def test_stage_modules_import_without_torch() -> None:
    code = (
        "import sys, enrichment.enrich, enrichment.clustering, enrichment.relevance, enrichment.embeddings; "
        "heavy = [m for m in ('torch', 'sentence_transformers') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PROJECT_ROOT)
