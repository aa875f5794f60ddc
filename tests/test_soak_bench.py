"""bench/soak.py at a tiny size (2 simulated days, a run every 8 hours, 60 items) in a subprocess: the JSON
shape and that every check is computed from the curve; and the checks themselves on made-up curves (no
performance goal is asserted here: those are the bench's figures)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_soak_runs_two_days(shared_data: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "soak.py"), "--days", "2", "--tick-minutes", "480",
         "--items", "60", "--data", str(shared_data)],
        check=True, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT,
    )  # fmt: skip
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["days"] == 2 and figures["tick_minutes"] == 480 and figures["cycles"] == 6
    assert figures["schedule_tick_minutes"] == 10 and figures["items"] == 60
    assert figures["error_count"] == 0, figures["errors"]
    curve = figures["curve"]
    assert [d["day"] for d in curve] == [1, 2]
    for point in curve:
        assert point["rss_mib"] > 0 and point["peak_rss_mib"] >= point["rss_mib"]
        assert point["db_bytes"] > 0 and point["archive_bytes"] > 0
        assert point["db_bytes_per_article"] == round(point["db_bytes"] / point["articles"])
        assert set(point["pending"]) == {"not_enriched", "not_indexed", "alerts_pending"}
        assert len(point["schedule_examples"]) == min(3, point["schedule_violations"])
    assert curve[0]["articles"] < curve[1]["articles"] <= 60  # new items arrive on both days
    assert curve[1]["articles"] == curve[0]["new_articles"] + curve[1]["new_articles"]
    checks = figures["checks"]
    assert checks["rss_drift"] == 0.0  # with 2 days the reference (day 2) is the last day
    for key in ("rss_ok", "db_linear_ok", "schedule_ok", "pending_ok", "new_articles_ok"):
        assert isinstance(checks[key], bool), key
    assert checks["schedule_violations"] == sum(d["schedule_violations"] for d in curve)
    assert checks["new_articles_ok"] is True
    assert set(checks["pending"]) == {"not_enriched", "not_indexed", "alerts_pending"}


def _point(day: int, rss: float, articles: int, db: int, pending: int = 0, bad: int = 0) -> dict:
    return {"day": day, "rss_mib": rss, "articles": articles, "db_bytes": db,
            "db_bytes_per_article": round(db / articles), "schedule_violations": bad, "new_articles": 10,
            "pending": {"not_enriched": pending, "not_indexed": 0, "alerts_pending": 0}}


def test_checks_flag_a_leak_a_pile_up_and_a_schedule_out_of_bounds() -> None:
    from soak import checks

    flat = [_point(d, 1000 + d, 100 * d, 50_000 * 100 * d) for d in range(1, 15)]
    good = checks(flat, tick_articles=2)
    assert good["rss_ok"] and good["db_linear_ok"] and good["schedule_ok"] and good["pending_ok"]
    assert good["db_linear_r2"] == 1.0

    leak = [_point(d, 1000 * (1 + 0.05 * d), 100 * d, 50_000 * 100 * d) for d in range(1, 15)]
    assert not checks(leak, tick_articles=2)["rss_ok"]

    superlinear = [_point(d, 1000, 100 * d, 50_000 * 100 * d * d) for d in range(1, 15)]
    assert not checks(superlinear, tick_articles=2)["db_linear_ok"]

    piling = [_point(d, 1000, 100 * d, 50_000 * 100 * d, pending=5 * d) for d in range(1, 15)]
    result = checks(piling, tick_articles=2)
    assert not result["pending_ok"] and result["pending"]["not_enriched"]["last"] == 70

    out_of_bounds = flat[:5] + [_point(6, 1006, 600, 50_000 * 600, bad=1)] + flat[6:]
    assert not checks(out_of_bounds, tick_articles=2)["schedule_ok"]


def test_spread_maps_the_items_time_order_onto_the_days() -> None:
    from soak import START, spread

    from flankwatch.replay import ReplayItem

    old = [ReplayItem("o", "en", "", f"t{n}", f"https://x.test/{n}", "", datetime(2020, 1, 1 + n, tzinfo=timezone.utc),
                      f"g{n}") for n in range(10)]
    spread_items = spread(list(reversed(old)), START, 14)
    assert [i.title for i in spread_items] == [f"t{n}" for n in range(10)]
    assert START < spread_items[0].published < spread_items[-1].published < START.replace(day=START.day + 14)
    assert {i.link for i in spread_items} == {i.link for i in old}


def test_cron_tick() -> None:
    from soak import cron_minutes

    assert cron_minutes("*/10 * * * *") == 10 and cron_minutes("0 * * * *") == 60 and cron_minutes("* * * * *") == 1
