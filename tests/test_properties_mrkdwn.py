"""Properties of Slack mrkdwn escaping (alerts/escape.py, alerts/blocks.py): no `<!…>`, `<@…>` or
`<url|label>` from feed text survives into a message; the only `<…>` are links built by `link`."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pytest

pytest.importorskip("hypothesis")
from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from alerts.blocks import story_message  # noqa: E402
from alerts.escape import escape_mrkdwn, link, safe_url, truncate  # noqa: E402
from core.models import Article, Story  # noqa: E402

_PIECES = st.sampled_from(
    ["<!channel>", "<!here>", "<@U123>", "<#C1|x>", "<http://evil|click>", "&lt;", "&amp;", "&", "<", ">", "|",
     "!", "@", "javascript:", "\u202e", "\u200b", "\n", "\t", "\x1b[31m", " ", "a", "Ä", "ż", "*", "_", "~", "`"]
)
HOSTILE = st.lists(st.one_of(_PIECES, st.text(max_size=4)), max_size=12).map("".join)
URLS = st.one_of(
    HOSTILE, st.builds(lambda s, rest: f"{s}://{rest}", st.sampled_from(["http", "https", "javascript", "HTTP"]), HOSTILE)
)
# A link we built, and nothing else in angle brackets.
_OUR_LINK = re.compile(r"<https?://[^<>|\s]+\|[^<>]*>", re.IGNORECASE)


def _bare(text: str) -> str:
    return _OUR_LINK.sub("", text)


def _mrkdwn_texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["text"]] if node.get("type") == "mrkdwn" else []
        return own + [text for value in node.values() for text in _mrkdwn_texts(value)]
    if isinstance(node, list):
        return [text for value in node for text in _mrkdwn_texts(value)]
    return []


@given(HOSTILE)
def test_escaped_text_has_no_control_characters(text: str) -> None:
    escaped = escape_mrkdwn(text)
    assert "<" not in escaped and ">" not in escaped
    assert re.sub(r"&(amp|lt|gt);", "", escaped).count("&") == 0


@given(HOSTILE, st.integers(min_value=0, max_value=40))
def test_truncate_never_ends_inside_an_entity(text: str, n: int) -> None:
    cut = truncate(escape_mrkdwn(text), n)
    assert len(cut) <= n
    assert re.search(r"&[a-z]{0,3}…?$", cut) is None or cut.endswith(("&amp;", "&lt;", "&gt;"))


@given(URLS, HOSTILE)
def test_link_is_one_safe_link_or_plain_text(url: str, label: str) -> None:
    out = link(url, label)
    assert "<" not in _bare(out) and ">" not in _bare(out)
    if out.startswith("<"):
        assert _OUR_LINK.fullmatch(out), out
        assert safe_url(url) is not None


@given(HOSTILE, HOSTILE, URLS, HOSTILE, st.lists(HOSTILE, max_size=3))
def test_story_message_carries_no_control_sequence_from_feed_text(
    headline: str, source: str, url: str, why: str, facts: list[str]
) -> None:
    now = datetime(2026, 5, 1, 12, tzinfo=timezone.utc)
    story = Story(
        id="s1", topic=headline[:20], headline=headline, first_seen=now, last_seen=now, article_count=1,
        source_count=1, sources={source: 1}, copy_sources={}, language_counts={headline[:5]: 1}, terms=facts,
    )
    article = Article(id="a1", source=source, url=url, canonical_url=url, title=headline, published_at=now)
    message = story_message("new_story", story, [article], why=why, new_facts=facts)
    for text in [message["text"], *_mrkdwn_texts(message["blocks"])]:
        bare = _bare(text)
        assert "<" not in bare and ">" not in bare, text


def test_truncate_to_one_character_does_not_leave_half_an_entity() -> None:
    """Regression: `truncate("&lt;!channel&gt;", 1)` returned "&" (a broken entity)."""
    assert truncate(escape_mrkdwn("<!channel>"), 1) == ""
    assert truncate("ab", 1) == "a"
