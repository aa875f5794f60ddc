"""What is new in a story: the events that alerts can use, decided as each article joins.

- born: the story reaches `alert_min_articles` articles or `alert_min_sources` independent sources;
- growing: its article rate over the last `growth_window_hours` is `growth_factor` times its own usual
  rate (articles before the window over the time they took) and the window brought `growth_min_articles`;
- development: an article brings facts the story did not have: a number (troops "4,800" -> "5,000", a
  date moved), or a name that is in its headline (a new base, a new place, a new actor). Names only in the
  body are too often incidental to count. The event lists the new facts, numbers first, and for each new
  number the known number it most likely replaces, so an alert can show the diff;
- merged: two stories turned out to be one (recorded by the clusterer).

Events are rows of `core.models.StoryEvent` with deterministic ids, so re-running never duplicates one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.ids import stable_id
from core.settings import Settings
from core.text import fold

MAX_EVENT_FACTS = 8
# A known number is "replaced" by a new one of the same kind within this ratio ("4800" -> "5000": 1.04).
REPLACE_RATIO = 2.0


def event_id(story_id: str, kind: str, key: str) -> str:
    return stable_id("story-event", story_id, kind, key)


def is_born(article_count: int, source_count: int, settings: Settings) -> bool:
    return article_count >= settings.alert_min_articles or source_count >= settings.alert_min_sources


def growth(
    arrivals: Iterable[float], article_count: int, first_seen: float, at: float, settings: Settings
) -> dict[str, float] | None:
    """The figures of a jump in the story's article rate at `at` (epoch seconds), or None.

    `arrivals` are the story's recent publication times (the latest included), `article_count` all of its
    articles. The usual rate is the articles before the window over the time since the first one, taken
    over at least one window, so a story that was quiet for days and wakes up counts as growing, and a
    story that is only a few hours old cannot: its first burst is its birth."""
    window = settings.growth_window_hours * 3600.0
    since = at - window
    recent = sum([1 for t in arrivals if since < t <= at])
    before = article_count - recent
    if recent < settings.growth_min_articles or before < 1:
        return None
    history = max(at - window - first_seen, window)
    usual_per_hour = before / history * 3600.0
    recent_per_hour = recent / window * 3600.0
    if recent_per_hour < settings.growth_factor * usual_per_hour:
        return None
    return {
        "articles_in_window": recent,
        "window_hours": settings.growth_window_hours,
        "per_hour": round(recent_per_hour, 2),
        "usual_per_hour": round(usual_per_hour, 3),
    }


def _number_value(fact: str) -> tuple[float, str] | None:
    """(value, kind) of a normalised number fact ("5000", "12.5%", "2027"); None for names."""
    if not fact[:1].isdigit():
        return None
    kind = "percent" if fact.endswith("%") else "number"
    try:
        value = float(fact.rstrip("%"))
    except ValueError:
        return None
    if kind == "number" and value.is_integer() and 1900 <= value <= 2100:
        kind = "year"
    return value, kind


def replaced_numbers(new: Iterable[str], known: Iterable[str]) -> dict[str, str]:
    """For each new number, the known number of the same kind closest to it within `REPLACE_RATIO`."""
    known_values = [(value, fact) for fact in known if (value := _number_value(fact))]
    replaced: dict[str, str] = {}
    for fact in new:
        parsed = _number_value(fact)
        if parsed is None or parsed[0] <= 0:
            continue
        value, kind = parsed
        best: tuple[float, str] | None = None
        for (other, other_kind), other_fact in known_values:
            if other_kind != kind or other <= 0:
                continue
            ratio = max(value, other) / min(value, other)
            if ratio <= REPLACE_RATIO and (best is None or ratio < best[0]):
                best = (ratio, other_fact)
        if best is not None:
            replaced[fact] = best[1]
    return replaced


def development_facts(novel: Sequence[str], title: str) -> list[str]:
    """The novel facts worth a development: numbers, and names that appear in the headline."""
    headline = fold(title or "")
    numbers = [fact for fact in novel if fact[:1].isdigit()]
    names = [fact for fact in novel if not fact[:1].isdigit() and fold(fact) in headline]
    return (numbers + names)[:MAX_EVENT_FACTS]
