"""Meaning search over the articles the static screen left to the static model (flankwatch.search): the
query is embedded by both models and the two lists rank together on one scale."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from archive.base import ArticleDoc, SearchQuery
from archive.sqlite import SQLiteArchive
from core.settings import Settings
from enrichment.embeddings import STATIC_MODEL, article_text, get_embedder
from flankwatch.search import meaning_models, run_search

pytestmark = pytest.mark.slow

T0 = datetime(2026, 12, 1, 9, tzinfo=timezone.utc)
READ = {  # what the transformer read (each names a term of the configured topic)
    "brigade": "Germany's brigade in Lithuania reaches 4,800 troops",
    "jets": "NATO jets intercept Russian aircraft near Estonia's airspace",
    "border": "Poland reinforces its border with Belarus after drone incursions",
}
SCREENED = {  # what it left to the static model
    "football": "Arsenal beat Chelsea 2-0 at the Emirates in the Premier League",
    "phone": "Apple unveils a new iPhone with a faster chip and a better camera",
    "snow": "Heavy snow disrupts flights across Scandinavia for a second day",
}


@pytest.fixture
def archive(tmp_path, embedder):
    static = get_embedder(STATIC_MODEL)
    archive = SQLiteArchive(tmp_path / "archive.db")
    archive.ensure_ready()
    docs = []
    for model, texts in ((embedder, READ), (static, SCREENED)):
        vectors = model.passages([article_text(title, "") for title in texts.values()])
        docs += [ArticleDoc(id=key, url=f"https://x.example/{key}", title=title, summary="", content="",
                            source="x.example", language="en", published_at=T0, embedding=vector,
                            embedding_model=model.name)
                 for (key, title), vector in zip(texts.items(), vectors)]
    archive.index_articles(docs)
    yield archive
    archive.close()


def test_meaning_search_finds_screened_out_articles_beside_the_transformers(archive, tmp_path) -> None:
    settings = Settings(var_dir=tmp_path / "var", embedding_screen="static")
    # the static model reads word pieces, not sentences: its nearest share pieces or their neighbours
    mode, football = run_search(settings, archive, SearchQuery(text="Premier League football", per_page=6), "meaning")
    assert mode == "meaning" and football.hits[0].id == "football"
    assert {hit.id for hit in football.hits} == set(READ) | set(SCREENED)  # both models' vectors, ranked together
    scores = [hit.score for hit in football.hits]
    assert scores == sorted(scores, reverse=True)
    _, troops = run_search(settings, archive, SearchQuery(text="German troops in Lithuania", per_page=3), "meaning")
    assert troops.hits[0].id == "brigade"
    assert all(hit.id in READ for hit in troops.hits)  # the transformer's on-topic articles rank above the rest
    # hybrid: the words ranking and the configured model's vectors; a screened-out article comes by its words
    _, snow = run_search(settings, archive, SearchQuery(text="snow", per_page=3), "hybrid")
    assert snow.hits[0].id == "snow"


def test_the_archive_decides_which_models_a_meaning_search_reads(archive, tmp_path, embedder) -> None:
    """Static vectors are searched wherever the archive holds them (a broad topic makes the screen read every
    article, and the setting may have changed since they were made); an archive without any is asked once."""
    headline = Settings(var_dir=tmp_path / "var", embedding_screen="headline")
    assert meaning_models(headline, archive) == [embedder.name, STATIC_MODEL]
    _, found = run_search(headline, archive, SearchQuery(text="Premier League football", per_page=6), "meaning")
    assert found.hits[0].id == "football"
    archive.delete_articles(list(SCREENED))
    assert not archive.has_vectors(STATIC_MODEL) and archive.has_vectors(embedder.name)
    static = Settings(var_dir=tmp_path / "var", embedding_screen="static")
    assert meaning_models(static, archive) == [embedder.name]
    _, found = run_search(static, archive, SearchQuery(text="Premier League football", per_page=6), "meaning")
    assert {hit.id for hit in found.hits} == set(READ)
