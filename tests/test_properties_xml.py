"""Properties of the XML guard (collectors/xmlsafety.py): whatever comments, PIs and literals surround it, in
whatever encoding, a document whose DTD really declares an entity (as lxml, the oracle, parses it without
resolving anything) is refused before any parser expands it."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from lxml import etree  # noqa: E402

from collectors.xmlsafety import declares_entities  # noqa: E402

_JUNK = st.lists(st.sampled_from(["<a", "<!ENTITY", "-->", "--", "?>", '"', "'", "<!--", "]>", "x", " ", "<"]),
                 max_size=5).map("".join)
_DECL = st.one_of(
    st.builds(lambda j: f"<!--{j.replace('--', '')}-->", _JUNK),
    st.builds(lambda j: f"<?pi {j.replace('?>', '')}?>", _JUNK),
    st.builds(lambda j: f'<!NOTATION n SYSTEM "{j.replace(chr(34), "")}">', _JUNK),
    st.builds(lambda j: f"<!ATTLIST r t CDATA '{j.replace(chr(39), '').replace('<', '')}'>", _JUNK),
    st.sampled_from(['<!ENTITY x "BOOM">', "<!ENTITY x SYSTEM 'file:///etc/passwd'>", '<!ENTITY % p "q">', " ", "\n"]),
)
_SYSTEM = st.builds(lambda j: f' SYSTEM "{j.replace(chr(34), "")}"', _JUNK) | st.just("")
DOCUMENTS = st.builds(
    lambda before, system, decls, after: f"{before}<!DOCTYPE r{system} [{''.join(decls)}]>{after}<r>t</r>",
    st.lists(_DECL.filter(lambda d: d.startswith(("<!--", "<?pi"))), max_size=2).map("".join),
    _SYSTEM,
    st.lists(_DECL, max_size=5),
    st.lists(_DECL.filter(lambda d: d.startswith(("<!--", "<?pi"))), max_size=2).map("".join),
)
ENCODINGS = st.sampled_from(["utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1"])


def _lxml_entities(data: bytes) -> int | None:
    """How many entities lxml finds declared (None: not well-formed). Nothing is resolved or fetched."""
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    try:
        tree = etree.fromstring(data, parser).getroottree()
    except etree.XMLSyntaxError:
        return None
    dtd = tree.docinfo.internalDTD
    return 0 if dtd is None else len(list(dtd.iterentities()))


@given(DOCUMENTS, ENCODINGS)
def test_a_declared_entity_is_always_refused(document: str, encoding: str) -> None:
    data = document.encode(encoding)
    entities = _lxml_entities(data)
    if entities:
        assert declares_entities(data), document
    if entities == 0 and "<!ENTITY" not in document:
        assert not declares_entities(data)


@given(st.binary(max_size=200))
def test_never_raises_on_bytes(data: bytes) -> None:
    assert declares_entities(data) in (True, False)


@pytest.mark.parametrize(
    "document",
    [  # Regressions: each declares an entity that lxml expands, and the old guard let it through.
        b'<!DOCTYPE r [<!-- <a --><!ENTITY x "BOOM">]><r>&x;</r>',  # `<a` in a comment ended the "prolog"
        b'<!DOCTYPE r [<?pi <a?><!ENTITY x "BOOM">]><r>&x;</r>',  # ... or in a PI
        b'<!DOCTYPE r [<!NOTATION n SYSTEM "<a"><!ENTITY x "BOOM">]><r>&x;</r>',  # ... or in a literal
        b'<!DOCTYPE r SYSTEM "<!--" [<!ENTITY x "BOOM"><!ATTLIST r t CDATA "-->">]><r>&x;</r>',  # a "comment"
    ],  # spanning two literals hid the declaration
)
def test_entity_guard_regressions(document: bytes) -> None:
    expanded = etree.fromstring(document, etree.XMLParser(no_network=True, load_dtd=False))
    assert expanded.text == "BOOM"  # the danger is real
    assert declares_entities(document)
