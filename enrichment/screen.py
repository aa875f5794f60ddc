"""Which text of an article the embedding model reads: the multilingual model's cost where it pays.

multilingual-e5-small costs about as much as its tokens: a headline about 0.7 of its title and lead on the
replayed feeds (25 against 35 word pieces). Most articles a feed brings are about something else, so:

- an article that names any term of a topic (a strong term, a place or a keyword, in any language), or any
  article when no topic is configured or one takes every article, is a *candidate*: its title and lead are
  embedded (`article_text`);
- any other article has its headline embedded: the headline alone says whether it is about a topic in any
  language, which is what relevance needs of it, and it is what `flankwatch search --mode meaning` finds it by;
- a headline-only article whose headline scores at least `PROMOTE_SHARE` of a topic's threshold (it names no
  term, so this is the meaning alone) is *promoted*: its title and lead are embedded and it is scored again.
  A relevant article, which stories are made of, is thus always embedded with its lead.

On `bench/pipeline_bench.py --items 1000` 16% of the articles are candidates (enrichment/README.md).
"""

from __future__ import annotations

from collections.abc import Sequence

from enrichment.embeddings import article_text
from enrichment.relevance import Relevance, TopicProfile

PROMOTE_SHARE = 0.5


def wants_lead(title: str, summary: str | None, profiles: Sequence[TopicProfile]) -> bool:
    """Whether an article is a candidate (see the module docstring): its title and lead are embedded. With no
    topic, or a topic that takes every article (threshold 0), there is nothing to screen."""
    if not profiles or any(profile.threshold <= 0 for profile in profiles):
        return True
    text = f"{title or ''}\n{summary or ''}"
    return any(profile.matcher.find(text) for profile in profiles)


def embedded_text(title: str, summary: str | None, lead: bool) -> str:
    """The text embedded for an article: title and lead, or its headline alone."""
    return article_text(title, summary if lead else "")


def promoted(scores: Sequence[Relevance], profiles: Sequence[TopicProfile]) -> bool:
    """Whether a headline-only article's scores call for its lead (see the module docstring)."""
    return any(score.score >= PROMOTE_SHARE * profile.threshold for score, profile in zip(scores, profiles))
