"""Syndication detection (enrichment.syndication) on real news text.

The texts are excerpts copied from ../shared/data so that this file does not depend on that folder:
- ECB+ dev (clustering/ecbplus-dev.jsonl, Cybulska & Vossen 2014, CC BY 3.0): headline + start of the article
  text of documents 35_10ecbplus / 35_7ecbplus (one AP story on two sites, lightly edited), 37_13ecbplus /
  37_1ecbplus (the Aceh earthquake written up independently by AP and AFP), 45_3ecbplus / 45_2ecbplus (the
  plea, then the verdict months later: a new wire story that reuses the first one's background sentences);
- German outlet feeds, Dec 2024 (feeds/outlets/de/: geo.xml, rnd.xml, deutschlandfunk-kulturportal.xml):
  one teaser run by GEO and RND under different headlines; one Deutschlandfunk article published under two
  URLs;
- UCI News Aggregator dev (clustering/uci-news-aggregator-dev.csv, CC BY 4.0): headlines.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from datasketch import MinHash

from enrichment import syndication as syn
from enrichment.syndication import (
    Match,
    Signature,
    SyndicationIndex,
    shingles,
    signature,
    syndication_text,
    words,
)

T0 = datetime(2024, 12, 19, 13, 0, tzinfo=UTC)

# ECB+ 35_10ecbplus and 35_7ecbplus: the same AP story, headline rewritten, "drunken" -> "drunk",
# "downtown San Diego" -> "the city's downtown area", different endings.
CHARGERS_A = (
    "San Diego lineman arrested on suspicion of DUI. San Diego Chargers defensive tackle Jamal Williams was "
    "arrested on suspicion of drunken driving, the team ’ s second such arrest in less than a month. Williams "
    "was pulled over for speeding early Sunday on a freeway outside downtown San Diego, the California Highway "
    "Patrol said. Williams gave a blood sample for a blood - alcohol test, but the results were not yet known. "
    "Williams was booked into county jail and later released on bail. The City Attorney ’ s office said the "
    "case hadn ’ t been submitted as of Tuesday."
)
CHARGERS_B = (
    "CHARGERS' WILLIAMS ARRESTED ON SUSPICION OF DUI. San Diego Chargers defensive tackle Jamal Williams was "
    "arrested on suspicion of drunk driving, the team's second such arrest in less than a month. Williams was "
    "pulled over for speeding early Sunday on a freeway outside the city's downtown area, the California "
    "Highway Patrol said. Williams gave a blood sample for a blood - alcohol test, but the results were not "
    "yet known. Williams was booked into county jail and later released on bail. The City Attorney's office "
    "said the case hadn't been submitted as of Tuesday. Chargers general manager A.J. Smith did not return"
)

# ECB+ 37_13ecbplus (AP) and 37_1ecbplus (AFP): one earthquake, two independent write-ups.
QUAKE_AP = (
    "Strong earthquake hits Indonesia's Aceh province. A strong earthquake struck off Indonesia's Aceh "
    "province on Tuesday, damaging houses and injuring at least five people. The U.S. Geological Survey said "
    "the magnitude 6.1 quake struck at a depth of 10 kilometers (6 miles) and its epicenter was located 55 "
    "kilometers (34 miles) west of the town of Bireun on the western tip of Sumatra island. At least five "
    "people were reportedly injured and 10 houses were damaged in Takengon, the capital of Central Aceh "
    "district, said Sutopo Purwo Nugroho of the National"
)
QUAKE_AFP = (
    "Five dead, dozens injured in Indonesia quake. A powerful earthquake in Indonesia's Aceh province "
    "flattened buildings and sparked landslides Tuesday, killing at least five people and injuring dozens in "
    "a region devastated by the quake - triggered tsunami of 2004. The 6.1 - magnitude quake struck inland at "
    "a depth of just 10 kilometers in the mountainous Bener Meriah district in the heart of Aceh, the US "
    "Geological Survey said. It destroyed houses in the district, some 320 kilometers from the provincial "
    "capital Banda Aceh, and triggered several landslides. Police and troops"
)

# ECB+ 45_3ecbplus (the plea) and 45_2ecbplus (the verdict, months later): a new story reusing background.
PLEA = (
    "Oklahoma man pleads not guilty in deaths of Arkansas woman and her fetus. An Oklahoma man has pleaded "
    "not guilty to two first - degree murder charges for the deaths of an Arkansas woman and her fetus. Trial "
    "is set for June 17 for 26 - year - old Christopher Kenyon Simpson of Fort Coffee, who is accused of "
    "fatally shooting Ka'Loni Marie Flynn of Fort Smith, Ark. A local newspaper reports that Simpson has been "
    "held without bond at the LeFlore County Jail since his arrest on June 21. Flynn's body was found in a "
    "car near"
)
VERDICT = (
    "Okla. man guilty of killing pregnant girlfriend. An Oklahoma man was found guilty Thursday on two first "
    "- degree murder charges for the deaths of an Arkansas woman and her fetus, according to Crawford County "
    "Deputy Prosecuting Attorney Jacob Howell. Christopher Kenyon Simpson of Fort Coffee is accused of "
    "fatally shooting Ka'Loni Marie Flynn of Fort Smith, Ark. Prosecutors allege Simpson shot Flynn after she "
    "told him she was pregnant. Flynn's body was found in a car near Spiro on April 9. Simpson faces life in "
    "prison. He will be sentenced November"
)

# geo.xml (19 Dec 2024) and rnd.xml (21 Dec 2024): one teaser, one word changed, two headlines.
GEO_TITLE = "Braunkohletagebau: Hunderte neue Seen: Wie aus gigantischen Baggerlöchern wieder Natur wird"
GEO_SUMMARY = (
    "Während des Braunkohletagebaus wirkten viele Gegenden wie Mondlandschaften. Hunderte ehemalige Tagebaue "
    "werden nun geflutet. Welche Zukunft haben diese künstlichen Seen?"
)
RND_TITLE = "Bergbau: Wie aus einem Tagebau ein Badesee entsteht"
RND_SUMMARY = (
    "Während des Braunkohletagebaus wirkten viele Gegenden wie Mondlandschaften. Hunderte ehemalige Tagebaue "
    "werden nun geflutet. Doch welche Ökobilanz haben diese künstlichen Seen?"
)

# deutschlandfunk-kulturportal.xml: one article under .../das-gespenst-der-ordnung-100.html and
# .../das-gespenst-der-ordnung-dlf-b99fb151-100.html (the repeat broadcast).
DLF_TITLE = "Das Chaos bändigen - Das Gespenst der Ordnung"
DLF_SUMMARY_1 = (
    "Ordnung ist nicht nur das halbe Leben, sondern auch die ganze Gesellschaft. Ein Haufen von Individuen "
    "würde keinen sozialen Verband formen. Was aber sind Ordnungen? Sind sie der Welt abgetrotzt oder eine "
    "genuine Kulturtechnik? Von Thomas Palzer"
)
DLF_SUMMARY_2 = (
    "Ordnung ist nicht nur das halbe Leben, sondern auch die ganze Gesellschaft. Ein Haufen von Individuen "
    "würde keinen sozialen Verband formen. Was aber sind Ordnungen? Sind sie der Welt abgetrotzt oder eine "
    "genuine Kulturtechnik? (Wdh. vom 1.1.2024) Thomas Palzer"
)


def sig(text: str) -> Signature:
    result = signature(text)
    assert result is not None, text
    return result


# ------------------------------------------------------------------------------------------- text, hashing


def test_words_fold_case_diacritics_and_keep_numbers() -> None:
    assert words("Suwałki: 4,800 troops (5,000?) by 2027; a 6.1-magnitude quake") == [
        "suwalki", "4,800", "troops", "5,000", "by", "2027", "a", "6.1", "magnitude", "quake",
    ]
    assert words("Калининград, Ёлки") == ["калининград", "елки"]
    # a changed figure changes the shingles that contain it
    a = shingles("Germany will station 4,800 troops in Lithuania by 2027")
    b = shingles("Germany will station 5,000 troops in Lithuania by 2027")
    assert a != b
    assert "station 4,800 troops" in a and "station 5,000 troops" in b


def test_shingles_compare_only_the_start() -> None:
    long_text = " ".join(f"w{i}" for i in range(500))
    assert len(shingles(long_text)) == syn.MAX_WORDS - syn.SHINGLE_WORDS + 1


def test_signature_is_datasketch_minhash_of_the_shingles() -> None:
    items = shingles(CHARGERS_A)
    reference = MinHash(num_perm=syn.NUM_PERM, seed=syn.SEED, hashfunc=syn._hash32, scheme="affine32")
    reference.update_batch(list(items))
    assert np.array_equal(sig(CHARGERS_A).values, reference.hashvalues)
    assert sig(CHARGERS_A).minhash().jaccard(sig(CHARGERS_B).minhash()) == sig(CHARGERS_A).jaccard(sig(CHARGERS_B))


def test_too_short_text_gives_none() -> None:
    # UCI headlines: identical or near-identical wordings of one fact by different publishers
    assert signature("Mt. Gox files for US bankruptcy") is None
    assert signature("Bitcoin exchange Mt. Gox files for US bankruptcy protection") is None
    assert signature("") is None
    start = " ".join(words(QUAKE_AFP)[: syn.MIN_SHINGLES + 2])  # 20 words, no 3 of them repeated
    shorter = " ".join(words(QUAKE_AFP)[: syn.MIN_SHINGLES + 1])
    assert len(shingles(start)) == syn.MIN_SHINGLES and signature(start) is not None
    assert len(shingles(shorter)) == syn.MIN_SHINGLES - 1 and signature(shorter) is None


# -------------------------------------------------------------------------------------------------- matching


def test_wire_copy_on_another_site_matches() -> None:
    index = SyndicationIndex()
    index.add("ap-copy-1", "site-a", T0, sig(CHARGERS_A))
    match = index.find(sig(CHARGERS_B), "site-b", T0 + timedelta(hours=2))
    assert isinstance(match, Match)
    assert (match.key, match.source, match.kind) == ("ap-copy-1", "site-a", "syndicated")
    assert syn.THRESHOLD <= match.jaccard < 1.0
    assert index.find_repost(sig(CHARGERS_B), "site-b", T0 + timedelta(hours=2)) is None


def test_teaser_under_a_rewritten_headline_matches_on_the_summary() -> None:
    geo = syndication_text(GEO_TITLE, GEO_SUMMARY)
    rnd = syndication_text(RND_TITLE, RND_SUMMARY)
    assert geo == GEO_SUMMARY and rnd == RND_SUMMARY  # summaries long enough to stand alone
    index = SyndicationIndex()
    index.add("geo-1", "GEO", T0, sig(geo))
    match = index.find(sig(rnd), "RND", T0 + timedelta(days=2))
    assert match is not None and match.key == "geo-1" and match.kind == "syndicated"
    # with the headlines in, the rewritten one hides the copy (exact Jaccard 0.33)
    with_titles = [f"{GEO_TITLE}. {GEO_SUMMARY}", f"{RND_TITLE}. {RND_SUMMARY}"]
    assert sig(with_titles[0]).jaccard(sig(with_titles[1])) < syn.THRESHOLD


def test_syndication_text_falls_back_to_title_and_summary() -> None:
    assert syndication_text("Title only", "") == "Title only"
    assert syndication_text("", "Short teaser.") == "Short teaser."
    assert syndication_text("A headline", "A headline. Short teaser.") == "A headline. Short teaser."


@pytest.mark.parametrize(
    ("first", "second"),
    [(QUAKE_AP, QUAKE_AFP), (PLEA, VERDICT)],
    ids=["same-event-independent-agencies", "later-story-reusing-background"],
)
def test_different_articles_do_not_match(first: str, second: str) -> None:
    assert sig(first).jaccard(sig(second)) < syn.THRESHOLD
    index = SyndicationIndex()
    index.add("first", "site-a", T0, sig(first))
    assert index.find(sig(second), "site-b", T0 + timedelta(hours=1)) is None
    assert index.matches(sig(second), "site-b", T0 + timedelta(hours=1)) == []


def test_same_source_repost_is_not_syndication() -> None:
    first = sig(syndication_text(DLF_TITLE, DLF_SUMMARY_1))
    again = sig(syndication_text(DLF_TITLE, DLF_SUMMARY_2))
    index = SyndicationIndex()
    index.add("dlf-ordnung", "Deutschlandfunk", T0, first)
    at = T0 + timedelta(minutes=5)
    assert index.find(again, "Deutschlandfunk", at) is None
    assert index.find(again, " deutschlandfunk ", at) is None  # sources compared stripped, case-folded
    repost = index.find_repost(again, "Deutschlandfunk", at)
    assert repost is not None and (repost.key, repost.kind) == ("dlf-ordnung", "repost")
    # the same text from another outlet is syndication
    other = index.find(again, "Deutschlandradio Kultur", at)
    assert other is not None and other.kind == "syndicated"


def test_find_prefers_the_earliest_other_source_and_ignores_later_entries() -> None:
    index = SyndicationIndex()
    index.add("b-copy", "site-b", T0 + timedelta(hours=1), sig(CHARGERS_B))
    index.add("a-original", "site-a", T0, sig(CHARGERS_A))
    index.add("c-own", "site-c", T0 + timedelta(minutes=30), sig(CHARGERS_A))
    at = T0 + timedelta(hours=3)
    match = index.find(sig(CHARGERS_A), "site-c", at)
    assert match is not None and match.key == "a-original"
    kinds = {m.key: m.kind for m in index.matches(sig(CHARGERS_A), "site-c", at)}
    assert kinds == {"a-original": "syndicated", "c-own": "repost", "b-copy": "syndicated"}
    assert next(m.key for m in index.matches(sig(CHARGERS_A), "site-c", at)) == "a-original"
    # only entries dated at or before `at` count; `key` excludes the query's own entry
    assert index.find(sig(CHARGERS_B), "site-z", T0 - timedelta(minutes=1)) is None
    early = index.find(sig(CHARGERS_A), "site-a", T0 + timedelta(minutes=45), key="c-own")
    assert early is None
    assert index.find_repost(sig(CHARGERS_A), "site-c", at, key="c-own") is None


def test_add_again_replaces_and_remove_drops() -> None:
    index = SyndicationIndex()
    index.add("x", "site-a", T0, sig(CHARGERS_A))
    index.add("x", "site-a", T0 + timedelta(days=1), sig(QUAKE_AP))
    assert len(index) == 1
    assert index.find(sig(CHARGERS_B), "site-b", T0 + timedelta(days=2)) is None
    assert index.find(sig(QUAKE_AP), "site-b", T0 + timedelta(days=2)).key == "x"
    index.remove("x")
    assert len(index) == 0 and "x" not in index
    with pytest.raises(KeyError):
        index.remove("x")


def test_expire_drops_old_entries() -> None:
    index = SyndicationIndex()
    texts = [CHARGERS_A, QUAKE_AP, QUAKE_AFP, PLEA, VERDICT]
    for n, text in enumerate(texts):
        index.add(f"k{n}", f"site-{n}", T0 + timedelta(days=n), sig(text))
    index.add("k0", "site-0", T0 + timedelta(days=10), sig(CHARGERS_A))  # re-added later: stays
    assert len(index) == 5
    assert index.expire(T0 + timedelta(days=3)) == 2  # k1, k2
    assert len(index) == 3 and "k1" not in index and "k2" not in index and "k0" in index
    at = T0 + timedelta(days=20)
    assert index.find(sig(QUAKE_AP), "site-x", at) is None
    assert index.find(sig(PLEA), "site-x", at).key == "k3"
    assert index.expire(T0 + timedelta(days=30)) == 3
    assert len(index) == 0 and index._lsh.is_empty()
    assert index.expire(T0 + timedelta(days=40)) == 0


def test_signature_bytes_round_trip_rebuilds_identical_matches() -> None:
    stored = {
        "a": ("site-a", T0, sig(CHARGERS_A).to_bytes()),
        "q": ("site-q", T0, sig(QUAKE_AP).to_bytes()),
        "p": ("site-p", T0, sig(PLEA).to_bytes()),
    }
    assert all(len(blob) == 6 + 4 * syn.NUM_PERM for _s, _t, blob in stored.values())
    assert Signature.from_bytes(sig(CHARGERS_A).to_bytes()) == sig(CHARGERS_A)

    fresh, rebuilt = SyndicationIndex(), SyndicationIndex()
    for key, (source, at, blob) in stored.items():
        fresh.add(key, source, at, signature({"a": CHARGERS_A, "q": QUAKE_AP, "p": PLEA}[key]))
        rebuilt.add(key, source, at, Signature.from_bytes(blob))
    for query in (CHARGERS_B, QUAKE_AFP, VERDICT, CHARGERS_A):
        at = T0 + timedelta(hours=1)
        assert fresh.matches(sig(query), "site-z", at) == rebuilt.matches(sig(query), "site-z", at)
    assert rebuilt.find(sig(CHARGERS_B), "site-b", T0 + timedelta(hours=1)).key == "a"


def test_from_bytes_refuses_other_formats() -> None:
    blob = sig(CHARGERS_A).to_bytes()
    with pytest.raises(ValueError, match="recompute"):
        Signature.from_bytes(blob[:2] + bytes([syn.FORMAT_VERSION + 1]) + blob[3:])
    with pytest.raises(ValueError):
        Signature.from_bytes(b"XX" + blob[2:])
    with pytest.raises(ValueError):
        Signature.from_bytes(blob[:-4])


# --------------------------------------------------------------------------------- bench/syndication_eval.py


def test_bench_labels_copies_by_verbatim_runs_and_streams_find_them() -> None:
    import syndication_eval as bench

    a, b = words(CHARGERS_A), words(CHARGERS_B)
    assert bench.longest_run(a, b) >= bench.COPY_RUN  # the AP copy: a long verbatim run
    assert bench.longest_run(words(QUAKE_AP), words(QUAKE_AFP)) < bench.INDEPENDENT_RUN
    assert bench.jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3)
    items = [
        ("apnews.com", "a", "", CHARGERS_A, T0),
        ("sandiegouniontribune.com", "b", "", CHARGERS_B, T0 + timedelta(hours=1)),
        ("afp.com", "c", "", QUAKE_AFP, T0 + timedelta(hours=2)),
    ]
    result = bench.stream(items)
    assert result["counts"] == {"items": 3, "syndicated": 1}
    assert bench._rfc822("Tue, 10 Dec 2024 08:00:00 +0100", T0) == datetime(2024, 12, 10, 7, 0, tzinfo=UTC)
    assert bench._rfc822("not a date", T0) == T0
