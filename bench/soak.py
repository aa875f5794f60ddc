"""Soak: `python bench/soak.py [--days 14] [--tick-minutes M] [--items N] [--data DIR]`.

Simulated days of replay at accelerated time through the real pipeline in ONE long-lived process, so that
memory growth shows. Each tick is one `flankwatch.pipeline.run_once(settings, now=clock, origin="demo")` at
the scheduler's cadence (the Airflow DAG's `schedule` setting, default every 10 minutes; `--tick-minutes`
overrides it, e.g. 60 to make 14 days fit in a short run), and each feed's own adaptive schedule
(`collectors/schedule.py`) decides which feeds are polled in that tick.

The replay: `--items` real items chosen as the demo chooses them (`flankwatch.replay.select`: every topical
item and background noise from the same days), their time order mapped onto the simulated days (item k of N
published at start + (k + 0.5) / N of the span, outlets, texts and links kept), served by the demo's replay
server on 127.0.0.1 as growing feeds; so new items arrive all the way through. Alerts go to the console
sender (no Slack token; its prints are captured into a file) and `alerts.jsonl`.

Per simulated day it prints the process's RSS (VmRSS after `gc.collect()`, and VmHWM), the state DB and
archive size on disk, articles in the DB, bytes per article, pending work (articles not enriched, not
indexed, alerts pending in the outbox), feeds whose schedule is outside the bounds of
`collectors.schedule.bounds` (interval, or next poll after the last poll, not within [min, max]; an unhealthy
feed's retry counted against `unhealthy_retry_hours`; a feed overdue by more than a tick) and wall seconds.

Checks: RSS at the last day within 10 % of day 2; the DB linear in articles: R^2 of a linear fit of DB bytes
on articles from day 2 at least 0.95, and the marginal bytes per article (the slope) of the second half of
the days within 20 % of the first half's (bytes / article itself falls while the DB's fixed part is
amortised: it is printed, not checked); every feed's schedule within its bounds on every day;
pending work without a growth trend (the last day's pending at most the larger of day 2's and a tick's
worth of new articles). The last line is one JSON object with the curve and the checks.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collectors.schedule import UNHEALTHY, bounds  # noqa: E402
from core.db import session_scope, upgrade  # noqa: E402
from core.models import UNINDEXED, Alert, Article, Feed  # noqa: E402
from core.settings import PROJECT_ROOT, Settings  # noqa: E402
from flankwatch.demo import register_feeds, topical_filter  # noqa: E402
from flankwatch.pipeline import run_once  # noqa: E402
from flankwatch.replay import ReplayItem, load_items, select as select_items  # noqa: E402
from flankwatch.replay_server import ReplayServer  # noqa: E402

DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"
START = datetime(2026, 1, 5, tzinfo=timezone.utc)
RSS_DRIFT = 0.10
BYTES_PER_ARTICLE_DRIFT = 0.20
MIN_R2 = 0.95
MIB = 2**20


def cron_minutes(schedule: str) -> int:
    """The tick of a `*/N * * * *` (or `M * * * *`: hourly) cron schedule, in minutes."""
    minute = schedule.split()[0]
    if minute.startswith("*/"):
        return int(minute[2:])
    return 1 if minute == "*" else 60


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def spread(items: list[ReplayItem], start: datetime, days: float) -> list[ReplayItem]:
    """The items' time order mapped onto `days` from `start`: evenly spaced, order kept."""
    span = timedelta(days=days)
    ordered = sorted(items, key=lambda i: (i.published, i.outlet, i.link))
    return [replace(item, published=start + span * ((k + 0.5) / len(ordered))) for k, item in enumerate(ordered)]


def disk(settings: Settings) -> tuple[int, int]:
    """Bytes on disk of the state DB and of the archive (SQLite files with their -wal and -shm)."""

    def size(path: Path) -> int:
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())

    assert settings.archive_path is not None
    return size(Path(settings.database_url.removeprefix("sqlite:///"))), size(settings.archive_path)


def pending(settings: Settings) -> dict[str, int]:
    from sqlalchemy import text

    with session_scope(settings) as session:
        def count(model: Any, *where: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)

        return {
            "articles": count(Article),
            "not_enriched": count(Article, Article.enriched_at.is_(None)),
            "not_indexed": count(Article, text(UNINDEXED)),
            "alerts_pending": count(Alert, Alert.status == "pending"),
        }


def schedule_violations(settings: Settings, now: datetime, tick: timedelta) -> list[dict[str, Any]]:
    """Demo feeds whose interval or next poll is outside the schedule's bounds, or overdue by over a tick."""
    low, high = bounds(settings)
    retry = max(settings.unhealthy_retry_hours * 3600.0, 1.0)
    slack = 1.0  # seconds of rounding
    out: list[dict[str, Any]] = []
    with session_scope(settings) as session:
        for feed in session.scalars(select(Feed).where(Feed.origin == "demo", Feed.enabled.is_(True))):
            why = []
            if feed.interval_seconds is not None and not low - slack <= feed.interval_seconds <= high + slack:
                why.append(f"interval {feed.interval_seconds}s")
            if feed.next_fetch_at is not None and feed.last_fetch_at is not None:
                gap = (feed.next_fetch_at - feed.last_fetch_at).total_seconds()
                top = max(high, retry) if feed.health == UNHEALTHY else high
                if not low - slack <= gap <= top + slack:
                    why.append(f"next poll {gap:.0f}s after the last")
            if feed.next_fetch_at is None or feed.next_fetch_at < now - tick:
                why.append("overdue" if feed.next_fetch_at else "never scheduled")
            if why:
                out.append({"feed": feed.name, "why": why})
    return out


def linear_r2(xs: list[float], ys: list[float]) -> float | None:
    n = len(xs)
    if n < 3:
        return None
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    if sxx == 0 or syy == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    return round(sxy * sxy / (sxx * syy), 4)


def checks(curve: list[dict[str, Any]], tick_articles: float) -> dict[str, Any]:
    """The soak's checks over the per-day curve (day 2 is the reference: day 1 holds the start-up)."""
    ref = curve[1] if len(curve) > 1 else curve[0]
    last = curve[-1]
    drift = (last["rss_mib"] - ref["rss_mib"]) / ref["rss_mib"] if ref["rss_mib"] else 0.0
    bpa_ref, bpa_last = ref["db_bytes_per_article"], last["db_bytes_per_article"]
    bpa_drift = (bpa_last - bpa_ref) / bpa_ref if bpa_ref else 0.0
    # The DB starts with a fixed part (schema, indexes, the topics' seed vectors), so bytes / article falls
    # as articles come; linear growth is a straight line of bytes on articles from day 2 (R^2) with the same
    # slope (marginal bytes per article) in the first and the second half of the days.
    tail = curve[1:] if len(curve) > 2 else curve
    r2 = linear_r2([d["articles"] for d in tail], [d["db_bytes"] for d in tail])
    mid = tail[len(tail) // 2]

    def slope(a: dict[str, Any], b: dict[str, Any]) -> float | None:
        return (b["db_bytes"] - a["db_bytes"]) / (b["articles"] - a["articles"]) if b["articles"] > a["articles"] \
            else None

    first, second = slope(tail[0], mid), slope(mid, tail[-1])
    slope_drift = (second - first) / first if first and second is not None else None
    linear_ok = (r2 is None or r2 >= MIN_R2) and (slope_drift is None or abs(slope_drift) <= BYTES_PER_ARTICLE_DRIFT)
    pending_checks = {}
    for key in ("not_enriched", "not_indexed", "alerts_pending"):
        series = [d["pending"][key] for d in curve]
        allowed = max(ref["pending"][key], tick_articles)
        pending_checks[key] = {"day2": ref["pending"][key], "last": last["pending"][key], "max": max(series),
                               "ok": last["pending"][key] <= allowed}
    violations = sum(d["schedule_violations"] for d in curve)
    return {
        "rss_drift": round(drift, 4),
        "rss_ok": abs(drift) <= RSS_DRIFT,
        "db_bytes_per_article_drift": round(bpa_drift, 4),
        "db_linear_r2": r2,
        "db_marginal_bytes_per_article": [None if first is None else round(first),
                                          None if second is None else round(second)],
        "db_marginal_drift": None if slope_drift is None else round(slope_drift, 4),
        "db_linear_ok": linear_ok,
        "schedule_violations": violations,
        "schedule_ok": violations == 0,
        "pending": pending_checks,
        "pending_ok": all(p["ok"] for p in pending_checks.values()),
        "new_articles_ok": all(d["new_articles"] > 0 for d in curve),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--tick-minutes", type=float, default=None,
                        help="minutes between two runs (default: the DAG's schedule setting)")
    parser.add_argument("--items", type=int, default=1500, help="replay items spread over the days")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args(argv)
    wall0 = time.perf_counter()

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        folder = Path(tmp)
        # the replay server is on 127.0.0.1: no SSRF guard, no politeness toward our own server
        settings = Settings(var_dir=folder, feeds_file=folder / "none.yaml", allow_private_addresses=True,
                            fetch_host_delay_seconds=0.0, fetch_per_host=8, slack_token=None)
        upgrade(settings)
        schedule_tick = cron_minutes(settings.schedule)
        tick_minutes = args.tick_minutes or schedule_tick
        tick = timedelta(minutes=tick_minutes)
        items = select_items(load_items(args.data), topical=topical_filter(settings), limit=args.items)
        items = spread(items, START, args.days)
        ticks_per_day = round(timedelta(days=1) / tick)
        outlets = len({i.outlet for i in items})
        print(f"soak: {len(items)} items from {outlets} outlets over {args.days} simulated days, a run every "
              f"{tick_minutes:g} min ({ticks_per_day} runs a day; the DAG's schedule '{settings.schedule}' is "
              f"every {schedule_tick} min{'' if tick_minutes == schedule_tick else ', coarser tick chosen'})",
              flush=True)
        print("day  rss_mib peak_mib  db_mib arch_mib articles  B/article  not_enr not_idx alerts_pend "
              "sched_bad  new  wall_s", flush=True)
        curve: list[dict[str, Any]] = []
        errors: list[str] = []
        cycle_s: list[float] = []
        alerts_out = folder / "console-alerts.txt"
        with ReplayServer(items) as server, alerts_out.open("w") as sink:
            register_feeds(settings, server)
            clock = START
            for day in range(1, args.days + 1):
                day_t0 = time.perf_counter()
                new = 0
                for _ in range(ticks_per_day):
                    clock += tick
                    server.clock = clock
                    t0 = time.perf_counter()
                    with contextlib.redirect_stdout(sink):
                        summary = run_once(settings, now=clock, run_id=f"soak-{clock:%Y%m%dT%H%M}", origin="demo")
                    cycle_s.append(time.perf_counter() - t0)
                    new += summary.stages.get("collect", {}).get("new_articles", 0)
                    errors.extend(f"{clock:%m-%d %H:%M} {stage}: {err}" for stage, err in summary.errors.items())
                gc.collect()
                db, archive = disk(settings)
                work = pending(settings)
                bad = schedule_violations(settings, clock, tick)
                point = {
                    "day": day, "rss_mib": round(status_kib("VmRSS") / 1024, 1),
                    "peak_rss_mib": round(status_kib("VmHWM") / 1024, 1),
                    "db_bytes": db, "archive_bytes": archive, "articles": work["articles"],
                    "db_bytes_per_article": round(db / work["articles"]) if work["articles"] else 0,
                    "archive_bytes_per_article": round(archive / work["articles"]) if work["articles"] else 0,
                    "pending": {k: work[k] for k in ("not_enriched", "not_indexed", "alerts_pending")},
                    "schedule_violations": len(bad), "schedule_examples": bad[:3],
                    "new_articles": new, "wall_s": round(time.perf_counter() - day_t0, 1),
                }
                curve.append(point)
                p = point["pending"]
                print(f"{day:>3} {point['rss_mib']:>8} {point['peak_rss_mib']:>8} {db / MIB:>7.1f} "
                      f"{archive / MIB:>8.1f} {work['articles']:>8} {point['db_bytes_per_article']:>10} "
                      f"{p['not_enriched']:>8} {p['not_indexed']:>7} {p['alerts_pending']:>11} {len(bad):>9} "
                      f"{new:>4} {point['wall_s']:>7}", flush=True)
        result = checks(curve, len(items) / max(1, args.days * ticks_per_day))
        cycle_s.sort()
        figures = {
            "days": args.days, "tick_minutes": tick_minutes, "schedule": settings.schedule,
            "schedule_tick_minutes": schedule_tick, "items": len(items), "outlets": outlets,
            "cycles": len(cycle_s), "cycle_s_median": round(cycle_s[len(cycle_s) // 2], 3),
            "cycle_s_p95": round(cycle_s[int(len(cycle_s) * 0.95)], 3),
            "wall_s": round(time.perf_counter() - wall0, 1), "errors": errors[:10], "error_count": len(errors),
            "checks": result, "curve": curve,
        }
        print(f"checks: RSS drift day 2 -> {args.days}: {result['rss_drift']:+.1%} (ok: {result['rss_ok']}); "
              f"DB marginal bytes/article {result['db_marginal_bytes_per_article']} (drift "
              f"{result['db_marginal_drift']}), R^2 {result['db_linear_r2']} "
              f"(ok: {result['db_linear_ok']}); schedule violations {result['schedule_violations']}; "
              f"pending ok: {result['pending_ok']}; run errors {len(errors)}; cycle median "
              f"{figures['cycle_s_median']} s", flush=True)
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
