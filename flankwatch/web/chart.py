"""Server-drawn charts: inline SVG, no JavaScript, no inline styles (the CSP allows neither).

`day_chart` draws articles per UTC day as bars from a `day` facet ("YYYY-MM-DD" -> count, in date order).
The days between the first and the last one that the facet holds are filled with zeros, so the x axis is
time, unless that span is too long to draw as bars. Every piece of text in the SVG is escaped, and the
chart carries a <title> and a <desc> for screen readers; the page also shows the same numbers as a table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

from markupsafe import Markup

WIDTH = 720
HEIGHT = 160
TOP = 14  # room for the value of the highest bar
BOTTOM = 22  # room for the date labels
LEFT = 4
RIGHT = 4
MAX_FILLED_DAYS = 400  # a longer span is drawn as the days that have articles only, side by side


@dataclass(frozen=True)
class Bar:
    day: str
    count: int
    x: float
    y: float
    width: float
    height: float


def day_series(counts: dict[str, int]) -> list[tuple[str, int]]:
    """(day, count) in date order, the days without articles between the first and the last filled with 0
    (unless the span exceeds `MAX_FILLED_DAYS`); values that are not days are left out."""
    known: dict[date, int] = {}
    for key, value in counts.items():
        try:
            day = date.fromisoformat(str(key)[:10])
            known[day] = known.get(day, 0) + int(value)
        except (TypeError, ValueError):
            continue
    if not known:
        return []
    first, last = min(known), max(known)
    if (last - first).days + 1 > MAX_FILLED_DAYS:
        return [(day.isoformat(), known[day]) for day in sorted(known)]
    return [
        ((first + timedelta(days=n)).isoformat(), known.get(first + timedelta(days=n), 0))
        for n in range((last - first).days + 1)
    ]


def bars(series: list[tuple[str, int]]) -> list[Bar]:
    if not series:
        return []
    peak = max(count for _, count in series) or 1
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    step = plot_width / len(series)
    gap = min(2.0, step * 0.2)
    out = []
    for index, (day, count) in enumerate(series):
        height = plot_height * count / peak
        if count and height < 1:
            height = 1.0  # a day with articles is always visible
        out.append(Bar(day, count, LEFT + index * step + gap / 2, TOP + plot_height - height, step - gap, height))
    return out


def _label_days(series: list[tuple[str, int]], wanted: int = 6) -> set[int]:
    """Indexes of the bars that get a date label under them: the first, the last and evenly between."""
    if not series:
        return set()
    if len(series) <= wanted:
        return set(range(len(series)))
    stride = (len(series) - 1) / (wanted - 1)
    return {round(n * stride) for n in range(wanted)}


def day_chart(counts: dict[str, int], title: str, chart_id: str = "day-chart") -> Markup:
    """An inline SVG bar chart of articles per day; empty markup when there is nothing to draw.
    `title` is the chart's accessible name (escaped here); `chart_id` prefixes the ids of its title and desc."""
    series = day_series(counts)
    if not series:
        return Markup("")
    drawn = bars(series)
    total = sum(count for _, count in series)
    peak_day, peak = max(series, key=lambda item: (item[1], item[0]))
    desc = (
        f"{total} articles from {series[0][0]} to {series[-1][0]} (UTC days), "
        f"{len(series)} days shown; the busiest day is {peak_day} with {peak}."
    )
    ident = escape(chart_id, quote=True)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" focusable="false" class="day-chart">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(desc)}</desc>',
        f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}"/>',
    ]
    for bar in drawn:
        if not bar.count:
            continue
        parts.append(
            f'<rect x="{bar.x:.2f}" y="{bar.y:.2f}" width="{max(bar.width, 0.5):.2f}" height="{bar.height:.2f}">'
            f"<title>{escape(bar.day)}: {bar.count}</title></rect>"
        )
    labels = _label_days(series)
    for index in sorted(labels):
        bar = drawn[index]
        anchor = "start" if index == 0 else "end" if index == len(drawn) - 1 else "middle"
        x = bar.x if anchor == "start" else bar.x + bar.width if anchor == "end" else bar.x + bar.width / 2
        parts.append(
            f'<text x="{x:.2f}" y="{HEIGHT - 6}" text-anchor="{anchor}">{escape(bar.day)}</text>'
        )
    top = max(drawn, key=lambda bar: (bar.count, bar.day))
    parts.append(
        f'<text class="peak" x="{min(max(top.x + top.width / 2, LEFT + 10), WIDTH - RIGHT - 10):.2f}" '
        f'y="{max(top.y - 3, 10):.2f}" text-anchor="middle">{top.count}</text>'
    )
    parts.append("</svg>")
    return Markup("".join(parts))
