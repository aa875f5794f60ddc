"""Escaping hostile feed text for Slack mrkdwn."""

from __future__ import annotations

import pytest

from alerts.escape import clean_text, escape_mrkdwn, link, safe_url, truncate


def test_escape_mrkdwn_defuses_mentions_and_links():
    assert escape_mrkdwn("<!channel> & <script>") == "&lt;!channel&gt; &amp; &lt;script&gt;"
    assert escape_mrkdwn("<@U123> <#C1|x> <https://x.example|y>") == (
        "&lt;@U123&gt; &lt;#C1|x&gt; &lt;https://x.example|y&gt;"
    )
    assert escape_mrkdwn("&amp;") == "&amp;amp;"  # shown literally, not decoded
    assert escape_mrkdwn("Rūdninkai 5000 *bold* _it_") == "Rūdninkai 5000 *bold* _it_"


def test_link_for_http_urls_only():
    assert link("https://lrt.example/a?b=1&c=2", "Brigade <arrives>") == (
        "<https://lrt.example/a?b=1&amp;c=2|Brigade &lt;arrives&gt;>"
    )
    assert link("HTTP://lrt.example/x", "t") == "<HTTP://lrt.example/x|t>"
    for bad in ("javascript:alert(1)", "data:text/html,<b>", "ftp://x.example/", "//x.example/", "/relative", "", None):
        assert link(bad, "<!here> title") == "&lt;!here&gt; title"


def test_link_url_cannot_break_out():
    url = "https://evil.example/a|<!channel> b>c\n\x07\u202e"
    result = link(url, "x")
    assert result == "<https://evil.example/a%7C%3C!channel%3E%20b%3Ec%0A%07%E2%80%AE|x>"
    inner = result[1:-1]
    assert "<" not in inner and ">" not in inner and inner.count("|") == 1
    encoded = safe_url("https://e.example/p q\tr\u202es")
    assert encoded == "https://e.example/p%20q%09r%E2%80%AEs"


def test_overlong_url_is_no_link():
    assert link("https://x.example/" + "a" * 3000, "<t>") == "&lt;t&gt;"
    assert link("https://x.example/" + "|" * 100, "t", max_url=200) == "t"


def test_link_label_falls_back_to_url_and_is_cleaned():
    assert link("https://x.example/", "  ") == "<https://x.example/|https://x.example/>"
    assert link("https://x.example/", "a\nb\x1b[31m") == "<https://x.example/|a b[31m>"


@pytest.mark.parametrize("n", [0, 1, 2, 5, 10, 11, 12, 13, 50])
def test_truncate_limits_and_entities(n):
    text = escape_mrkdwn("Troops & tanks <moved> to Rukla")
    result = truncate(text, n)
    assert len(result) <= n
    if len(text) <= n:
        assert result == text
    elif n > 1:
        assert result.endswith("…")
        body = result[:-1]
        amp = body.rfind("&")
        assert amp == -1 or ";" in body[amp:], f"cut inside an entity: {result!r}"


def test_truncate_keeps_short_text():
    assert truncate("abc", 3) == "abc"
    assert truncate("abcdef", 4) == "abc…"


def test_clean_text_drops_control_and_invisible_characters():
    assert clean_text("a\x1b[2Jb\u202ec\u200bd\r\n e\x00") == "a[2Jbcd e"
    assert clean_text("line1\nline2", single_line=False) == "line1\nline2"
    assert clean_text(None) == ""
