"""Stories and search across languages, on real text from the corpora and the real multilingual model."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select

from archive.base import ArticleDoc, SearchQuery
from archive.sqlite import SQLiteArchive
from core.db import session_scope
from core.models import Story
from enrichment.embeddings import article_text
from enrichment.facts import fact_keys, numbers
from enrichment.relevance import compile_topics
from flankwatch.search import run_search
from test_enrichment_clustering import T0, add_and_assign

pytestmark = pytest.mark.slow


def _pairs(shared_data, *ids):
    rows = {}
    for line in (shared_data / "pairs" / "semeval2022-task8-dev.jsonl").open(encoding="utf-8"):
        row = json.loads(line)
        if row["id"] in ids:
            rows[row["id"]] = row
    return [rows[i] for i in ids]


def _wmt(shared_data, *stories):
    rows = [json.loads(line) for line in (shared_data / "clustering" / "wmt-ru-en-dev.jsonl").open(encoding="utf-8")]
    return {(r["story"], r["language"]): r for r in rows if r["story"] in stories}


def test_a_german_and_an_english_article_on_one_event_join_one_story(settings, embedder, shared_data) -> None:
    # SemEval-2022 Task 8 pairs judged the same event (Overall 1.0): Captain Tom Moore knighted (de, en) and
    # Cardinal Pell's appeal (de, en), interleaved: one story each, in two languages.
    tom, pell = _pairs(shared_data, "1611733117_1612084103", "1544736457_1545760741")
    items = [(pair[side]["title"], f"{side}-{n}.example", pair[side]["language"], pair[side]["text"])
             for side in "ab" for n, pair in enumerate((tom, pell))]
    assignments = add_and_assign(settings, embedder, items)
    tom_stories = {assignments[0].story_id, assignments[2].story_id}
    pell_stories = {assignments[1].story_id, assignments[3].story_id}
    assert len(tom_stories) == 1 and len(pell_stories) == 1 and tom_stories != pell_stories
    with session_scope(settings) as session:
        story = session.get(Story, assignments[0].story_id)
        assert story.language_counts == {"de": 1, "en": 1}


def test_two_events_in_one_place_in_two_languages_stay_apart(settings, embedder, shared_data) -> None:
    # WMT23 ru-en: two reports on Ukraine of one day (Lithuania sends Bofors L70 guns; explosions in the Kiev
    # region), each as the Russian original and its English translation, in crossed order: the translation
    # joins its original, never the other event.
    rows = _wmt(shared_data, "rt-russian.115491", "rt-russian.115506")
    order = [("rt-russian.115491", "en"), ("rt-russian.115506", "ru"), ("rt-russian.115491", "ru"),
             ("rt-russian.115506", "en")]
    items = [(rows[key]["title"], f"{key[1]}.example", key[1], rows[key]["text"]) for key in order]
    assignments = add_and_assign(settings, embedder, items, step=timedelta(minutes=20))
    guns, blasts = {assignments[0].story_id, assignments[2].story_id}, {assignments[1].story_id, assignments[3].story_id}
    assert len(guns) == 1 and len(blasts) == 1 and guns != blasts
    with session_scope(settings) as session:
        counts = {s.id: s.language_counts for s in session.scalars(select(Story))}
        assert counts == {next(iter(guns)): {"en": 1, "ru": 1}, next(iter(blasts)): {"en": 1, "ru": 1}}


def test_names_and_numbers_match_across_scripts_and_inflections() -> None:
    for spellings in (("Pistorius", "Писториус", "Pistoriusas", "Pistoriaus"), ("Vilnius", "Вильнюс", "Vilniuje"),
                      ("Scholz", "Шольц"), ("Tallinn", "Таллин"), ("Jūrmala", "Юрмала"), ("Kaliningrad", "Калининград")):
        assert len({fact_keys(name) for name in spellings}) == 1, spellings
    assert fact_keys("Pistorius") != fact_keys("Pärnu")
    for text in ("4 800 troops", "4.800 Soldaten", "4,800 karių", "4800 военных", "4\u00a0800"):
        assert numbers(text) == ["4800"], text


def test_a_non_english_article_without_keywords_is_found_by_its_meaning(settings, embedder) -> None:
    # Russian, about the German brigade in Lithuania, naming no term of the topic ("Вильнюс" and "Руднинкай"
    # in Cyrillic are not among its places, "танкисты" is not "бригад*" or "бундесвер*")
    title = "Первые немецкие танкисты разместились под Вильнюсом, в Руднинкай строят казармы на 4800 человек"
    profile = compile_topics(settings, embedder)[0]
    assert not profile.matcher.find(title)
    relevance = profile.score(title, None, embedder.passages([article_text(title)])[0], "ru")
    assert relevance.relevant and relevance.reason.startswith("no terms; nearest seed: ")
    unrelated = "В кафе Вильнюса в эти выходные – новые десерты и дегустации кофе"
    other = profile.score(unrelated, None, embedder.passages([unrelated])[0], "ru")
    assert not other.relevant


def test_a_russian_query_finds_the_english_article_in_hybrid_search(settings, embedder, shared_data, tmp_path) -> None:
    # the English side of the WMT23 dev stories in the archive; a Russian query (the first words of a
    # Russian original's title) finds its English translation, with which it shares no word
    rows = [json.loads(line) for line in (shared_data / "clustering" / "wmt-ru-en-dev.jsonl").open(encoding="utf-8")]
    english = [r for r in rows if r["language"] == "en"]
    vectors = embedder.passages([article_text(r["title"], r["text"]) for r in english])
    archive = SQLiteArchive(tmp_path / "archive.db")
    archive.ensure_ready()
    archive.index_articles(
        ArticleDoc(id=r["id"], url=f"https://en.example/{n}", title=r["title"], summary=r["text"][:300], content="",
                   source="en.example", language="en", published_at=T0, embedding=vector,
                   embedding_model=embedder.name)
        for n, (r, vector) in enumerate(zip(english, vectors))
    )
    russian = next(r for r in rows if r["story"] == "rt-russian.115491" and r["language"] == "ru")
    query = SearchQuery(text=" ".join(russian["title"].split()[:5]), per_page=3)  # Литва отправила на Украину зенитные
    words_mode, words = run_search(settings, archive, query, "words")
    assert words_mode == "words" and words.total == 0  # no word in common
    mode, found = run_search(settings, archive, query)  # hybrid: the archive holds vectors of the model
    assert mode == "hybrid"
    assert found.hits[0].id == "rt-russian.115491:en"
    archive.close()


def test_search_mode_falls_back_to_words_without_vectors_of_the_model(settings, tmp_path) -> None:
    archive = SQLiteArchive(tmp_path / "archive.db")
    archive.ensure_ready()
    archive.index_articles([
        ArticleDoc(id="a", url="https://x.example/a", title="Brigade arrives", summary="", content="", source="x",
                   language="en", published_at=T0, embedding=np.ones(384, dtype=np.float32),
                   embedding_model="another-model"),
    ])
    mode, result = run_search(settings, archive, SearchQuery(text="brigade"))
    assert mode == "words" and result.total == 1
    meaning_mode, meaning = run_search(settings, archive, SearchQuery(text="brigade"), "meaning")
    assert meaning_mode == "meaning" and meaning.hits == []  # another model's vector is never compared
    archive.close()
