"""Folding, keyword matching and fact extraction: pure text functions, no model."""

from __future__ import annotations

import pytest

from core.text import fold
from enrichment.facts import extract_facts, names, novel_facts, numbers
from enrichment.terms import TermMatcher, compile_term


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("Rūdninkai", "rudninkai"),
        ("Suwałki", "suwalki"),
        ("SUWAŁKI", "suwalki"),
        ("Nausėda Šakalienė", "nauseda sakaliene"),
        ("Straße", "strasse"),
        ("Ørsted", "orsted"),
        ("Đoković", "dokovic"),
        ("Läti", "lati"),
        ("Калининград", "калининград"),
        ("Войска Ёлки Йошкар-Олы", "войска елки йошкар-олы"),  # Cyrillic stays, й keeps its breve
        ("NATO", "nato"),
    ],
)
def test_fold(text: str, folded: str) -> None:
    assert fold(text) == folded


def _matcher(*labels: str) -> TermMatcher:
    return TermMatcher([term for label in labels if (term := compile_term(label, "keyword"))])


def test_terms_ignore_case_and_diacritics_and_take_any_ending() -> None:
    matcher = _matcher("Rūdnink*", "Litauen*", "Lietuv*", "Литв*")
    found = matcher.find("Brigade in LITAUENS Süden: Rudninkų poligonas, Lietuvos kariuomenė, Литве")
    assert [m.surface for m in found] == ["LITAUENS", "Rudninkų", "Lietuvos", "Литве"]


def test_prefix_terms_of_different_lengths_all_match() -> None:
    # overlapping prefix terms each match, in order, next to an exact term with the same start; a word shorter
    # than a prefix does not match it
    matcher = _matcher("Li*", "Litauen*", "Lithuania", "Lietuvos kariuomen*")
    found = matcher.find("Litauens L Lithuania, Lietuvos kariuomenė")
    assert [(m.term.label, m.surface) for m in found] == [
        ("Li*", "Litauens"), ("Litauen*", "Litauens"), ("Lithuania", "Lithuania"),
        ("Lietuvos kariuomen*", "Lietuvos kariuomenė"),
    ]
    assert _matcher("Litauen*").find("Lit Litau") == []


def test_terms_match_whole_words_only() -> None:
    matcher = _matcher("Riga", "NATO")
    assert matcher.find("Rigaer Straße, Natoli") == []
    assert [m.surface for m in matcher.find("NATO's summit in Riga.")] == ["NATO", "Riga"]


def test_multiword_terms_span_punctuation_and_prefixes() -> None:
    matcher = _matcher("brigade in Lithuania", "восточн* фланг*", "Panzerbrigade 45")
    found = matcher.find("The German Brigade, in Lithuania; на восточном фланге; Panzerbrigade 45 aktiv")
    assert [m.surface for m in found] == ["Brigade, in Lithuania", "восточном фланге", "Panzerbrigade 45"]
    assert matcher.find("brigade of Lithuania") == []


def test_terms_inside_a_longer_match_are_dropped() -> None:
    matcher = _matcher("brigade*", "Lithuania", "brigade in Lithuania")
    found = matcher.find("The brigade in Lithuania; Lithuania says")
    assert [m.surface for m in found] == ["brigade in Lithuania"]


def test_hyphenated_compounds_are_separate_words() -> None:
    matcher = _matcher("Brigade*", "Bundeswehr")
    assert [m.surface for m in matcher.find("Bundeswehr-Brigade in Litauen")] == ["Bundeswehr", "Brigade"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4,800 troops", ["4800"]),
        ("4.800 Soldaten", ["4800"]),
        ("4 800 военных", ["4800"]),
        ("5 000\u00a0soldiers", ["5000"]),
        ("by 2027", ["2027"]),
        ("20 % more, 1.5 per cent", ["20%", "1.5%"]),
        ("3,5 mln and 12,345.67 euros", ["3.5", "12345.67"]),
        ("Leopard 2 tanks", []),  # single digits are noise
    ],
)
def test_numbers_are_normalised(text: str, expected: list[str]) -> None:
    assert numbers(text) == expected


def test_names_skip_sentence_starts_but_keep_sequences() -> None:
    text = (
        "German Defense Minister Boris Pistorius was in Vilnius on Monday to sign a deal with his Lithuanian "
        "counterpart Arvydas Anušauskas. The troops will be based in Rūdninkai."
    )
    found = names(text)
    assert "Vilnius" in found and "Rūdninkai" in found and "Arvydas Anušauskas" in found
    assert any("Boris Pistorius" in name for name in found)
    assert "The" not in found and "Monday" not in found


def test_names_in_cyrillic_and_title_case_headlines() -> None:
    assert {"Калининград", "Писториус"} <= set(names("Литва закрыла транзит в Калининград, сообщил Писториус"))
    # Title Case says nothing about names: only acronyms survive
    assert names("Australia to Boost Defense Spending Amid U.S.-China Tensions") == ["U.S."]


def test_extract_facts_combines_numbers_and_names() -> None:
    facts = extract_facts("The brigade in Lithuania will have 4,800 troops by 2027, Boris Pistorius said in Vilnius.")
    assert {"4800", "2027", "Lithuania", "Boris Pistorius", "Vilnius"} <= facts


def test_novel_facts_compare_numbers_exactly_and_names_loosely() -> None:
    known = ["4800", "Boris Pistorius", "Lithuania", "Vilnius"]
    novel = novel_facts(["5000", "Pistorius", "Lithuanian", "Rukla", "4800", "Писториус"], known)
    assert novel == ["5000", "Rukla"]
