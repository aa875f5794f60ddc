"""The Block Kit message: content, escaping and Slack's limits (checked like Slack would)."""

from __future__ import annotations

from fakeslack import block_kit_errors
from alerts_support import T0, add_story, minutes

from sqlalchemy import select

from alerts.blocks import story_message
from core.db import session_scope
from core.models import Article


def test_message_parts(settings):
    with session_scope(settings) as session:
        story = add_story(
            session,
            "story-a",
            [
                {"source": "LRT", "language": "lt"},
                {"source": "LRT", "language": "lt", "published_at": T0 + minutes(5)},
                {"source": "Delfi", "language": "lt"},
                {"source": "Tagesschau", "language": "de"},
            ],
        )
        articles = list(session.scalars(select(Article).order_by(Article.published_at, Article.id)))
        message = story_message("new_story", story, articles, why="New story: 4 articles from 3 independent sources", new_facts=[])

    blocks = message["blocks"]
    assert block_kit_errors(blocks) == []
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "context"]
    assert blocks[0]["text"] == {
        "type": "plain_text", "text": "German brigade moves 5000 troops to Rukla", "emoji": False
    }  # fmt: skip
    assert blocks[1]["text"]["text"] == "*Why it alerts:* New story: 4 articles from 3 independent sources"
    fields = [f["text"] for f in blocks[2]["fields"]]
    assert fields[0] == "*Sources*\n3: LRT, Delfi, Tagesschau"
    assert fields[1] == "*Languages*\nlt (3), de (1)"
    assert fields[2] == "*First seen*\n2025-03-03 08:00 UTC"
    assert fields[3] == "*Articles*\n4"
    assert blocks[3]["text"]["text"].count("\n• <https://") == 4
    assert "story `story-a`" in blocks[4]["elements"][0]["text"]
    assert message["text"] == "German brigade moves 5000 troops to Rukla — New story: 4 articles from 3 independent sources"


def test_update_lists_new_facts(settings):
    with session_scope(settings) as session:
        story = add_story(session, "story-b", [{"source": "LRT"}])
        why = "Story update: 2 new articles, new facts: 5000, Rukla"
        message = story_message("story_update", story, [], why=why, new_facts=["5000", "Rukla"])
    blocks = message["blocks"]
    assert blocks[0]["text"]["text"] == "Update: German brigade moves 5000 troops to Rukla"
    assert "new facts: 5000, Rukla" in blocks[1]["text"]["text"]
    assert blocks[2]["fields"][-1]["text"] == "*New facts*\n5000, Rukla"
    assert [b["type"] for b in blocks] == ["header", "section", "section", "context"]  # no articles, no links


def test_huge_hostile_story_stays_within_slack_limits(settings):
    long = "<!channel> " + "Брigade & <b>tanks</b> " * 400
    with session_scope(settings) as session:
        story = add_story(
            session,
            "story-c",
            [{"source": f"Outlet {i} " + "&" * 300, "title": long, "language": f"l{i % 40}"} for i in range(120)],
            headline=long,
        )
        articles = list(session.scalars(select(Article)))
        facts = [f"<@U{i}> fact" for i in range(500)]
        message = story_message("story_update", story, articles, why=long, new_facts=facts)

    blocks = message["blocks"]
    assert block_kit_errors(blocks) == []
    assert len(blocks[0]["text"]["text"]) <= 150
    assert blocks[3]["text"]["text"].count("\n• ") == 5
    body = str(message)
    assert "<!channel>" not in body and "<@U" not in body and "<b>" not in body
    assert len(message["text"]) <= 3000
