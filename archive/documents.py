"""State DB rows -> archive documents (the only place that knows both shapes)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from archive.base import ArticleDoc, StoryDoc
from core.models import Article, Story
from core.vectors import from_bytes

# What `article_doc` reads of an article: a query for documents selects these columns, not whole rows (an
# Article row also carries its MinHash, reasons and claims, and building ORM objects costs as much again).
ARTICLE_DOC_COLUMNS = (
    Article.id, Article.url, Article.title, Article.summary, Article.content, Article.source, Article.language,
    Article.published_at, Article.relevant, Article.topic, Article.relevance, Article.story_id,
    Article.embedding, Article.embedding_model,
)


def article_doc(article: Article | Any) -> ArticleDoc:
    """The archive document of an article (an `Article`, or a row of `ARTICLE_DOC_COLUMNS`). Its topic counts
    only once the article was found relevant."""
    return ArticleDoc(
        id=article.id,
        url=article.url,
        title=article.title or "",
        summary=article.summary or "",
        content=article.content or "",
        source=article.source,
        language=article.language,
        published_at=article.published_at,
        topics=[article.topic] if article.relevant and article.topic else [],
        relevance=article.relevance,
        story_id=article.story_id,
        embedding=from_bytes(article.embedding) if article.embedding else None,
        embedding_model=article.embedding_model if article.embedding else None,
    )


def story_doc(story: Story, top_articles: Sequence[Article]) -> StoryDoc:
    """The archive document of a story; `top_articles` (newest first) become its links, as given."""
    return StoryDoc(
        id=story.id,
        topic=story.topic,
        headline=story.headline,
        first_seen=story.first_seen,
        last_seen=story.last_seen,
        article_count=story.article_count or 0,
        source_count=story.source_count or 0,
        sources=dict(story.sources or {}),
        languages=dict(story.language_counts or {}),
        top_links=[{"title": a.title or "", "url": a.url, "source": a.source} for a in top_articles],
    )
