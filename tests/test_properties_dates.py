"""Properties of entry dates (collectors/normalise.py `entry_datetime`, fed by feedparser's own date parser
as in a real poll): hostile date text never raises, and the result is UTC-aware, after 1990 and at most a
day after the fetch time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

pytest.importorskip("hypothesis")
from feedparser.datetimes import _parse_date  # noqa: E402
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from collectors.normalise import EARLIEST, LATEST_AHEAD, entry_datetime  # noqa: E402

FETCHED = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
_PIECES = st.sampled_from(
    ["Mon,", "31", "Feb", "2026", "1969", "9999", "0000", "-", ":", "T", "Z", "+", "+2500", "-0000", "GMT", "EST",
     "24:60:61", "12:00:00", "00", "99", "1e9", ".", "W53", " ", "年", "\x00", "Do,", "Mär", "+14:00", "-12:00"]
)
DATE_TEXT = st.one_of(
    st.lists(_PIECES, max_size=8).map(" ".join), st.lists(_PIECES, max_size=8).map("".join), st.text(max_size=30),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)).map(lambda d: d.isoformat() + "Z"),
)
TUPLES = st.tuples(*(st.integers(min_value=-(10**12), max_value=10**12) for _ in range(9)))


def _check(moment: datetime) -> None:
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)
    assert EARLIEST <= moment <= FETCHED + LATEST_AHEAD or moment == FETCHED


@given(st.lists(DATE_TEXT, min_size=1, max_size=3))
def test_hostile_date_text_gives_a_sane_utc_date(texts: list[str]) -> None:
    entry = dict(zip(("published_parsed", "updated_parsed", "created_parsed"), map(_parse_date, texts)))
    _check(entry_datetime(entry, FETCHED))


@given(TUPLES)
def test_hostile_date_tuples_give_a_sane_utc_date(value: tuple[int, ...]) -> None:
    _check(entry_datetime({"published_parsed": value}, FETCHED))
