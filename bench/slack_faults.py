"""Slack delivery under faults: `python bench/slack_faults.py [--alerts 1000] [--stories 50]`.

A local Slack Web API (tests/fakeslack.py, real HTTP on 127.0.0.1) answers 30 % of requests 429 with
Retry-After, 10 % with HTTP 500, and for 5 % of posts stores the message but answers only after the
client's timeout. The outbox holds `--alerts` alerts over `--stories` stories: each story's first alert
opens its thread, the others reply in it, interleaved across stories as a day of news would be.

1. Every alert is delivered by the real outbox and SlackSender, run after run, until none is pending.
2. A second batch (half as many) is delivered by a separate process that is killed with SIGKILL in the
   middle; a re-run delivers the rest.

Then it counts, from what the server stored: alerts lost, alerts posted more than once, replies outside
their story's thread and replies out of order. Slack's waits (Retry-After, backoff, one message per second
and channel) are honoured on a clock sped up `--time-scale` times (100 by default) so that the run takes
minutes, not hours; the client timeout and the slow answers are real time. The last line is one JSON
object with the counts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import func, select

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "tests"))  # the fake Slack server lives with the tests

from alerts.delivery import SlackSender  # noqa: E402
from alerts.outbox import deliver_pending  # noqa: E402
from core.db import session_scope, upgrade  # noqa: E402
from core.ids import stable_id  # noqa: E402
from core.models import Alert  # noqa: E402
from core.settings import Settings  # noqa: E402

T0 = datetime(2026, 12, 1, 6, 0, tzinfo=timezone.utc)
CHANNELS = ("C0FLANKBALTIC", "C0FLANKPOLAND", "C0FLANKOPS")
TIMEOUT_S = 0.5  # the client's timeout; slow answers come after 2 x this


def _settings(var: Path, url: str) -> Settings:
    return Settings(
        var_dir=var, feeds_file=var / "none.yaml", slack_api_url=url, slack_token=SecretStr("xoxb-fake-token"),
        slack_channel=CHANNELS[0], alert_routes=[], alert_max_attempts=1000,
        slack_timeout_seconds=TIMEOUT_S, slack_min_interval_seconds=1.0, slack_max_wait_seconds=600.0,
    )  # fmt: skip


def _sender(settings: Settings, scale: float) -> SlackSender:
    return SlackSender(
        settings.slack_token.get_secret_value() if settings.slack_token else "", settings.slack_channel,
        settings.slack_api_url, timeout=settings.slack_timeout_seconds,
        min_interval=settings.slack_min_interval_seconds, max_wait=settings.slack_max_wait_seconds,
        sleep=lambda seconds: time.sleep(seconds / scale), clock=lambda: time.monotonic() * scale,
    )  # fmt: skip


def _payload(story: int, number: int) -> dict:
    text = f"Story {story}: message {number}"
    block = {"type": "section", "text": {"type": "mrkdwn", "text": text, "verbatim": True}}
    return {"text": text, "blocks": [block]}


def write_batch(settings: Settings, batch: int, alerts: int, stories: int) -> list[str]:
    """Outbox rows of one batch, in creation order: round-robin over stories, replies after their opener."""
    per_story = alerts // stories
    ids = []
    with session_scope(settings) as session:
        for number in range(per_story):
            for story in range(stories):
                opener = stable_id("bench-alert", str(story), "0", "0")
                alert_id = opener if batch == 0 and number == 0 else stable_id("bench-alert", str(story), str(batch), str(number))
                created = T0 + timedelta(days=batch, seconds=number * stories + story)
                session.add(Alert(
                    id=alert_id, kind="new_story" if alert_id == opener else "story_update", thread_key=f"story-{story}",
                    parent_id=None if alert_id == opener else opener, channel=CHANNELS[story % len(CHANNELS)],
                    payload=_payload(story, batch * 1_000_000 + number), status="pending", created_at=created,
                    broadcast=number % 7 == 3, detail={"story": story, "sequence": batch * 1_000_000 + number},
                ))  # fmt: skip
                ids.append(alert_id)
    return ids


def deliver_all(settings: Settings, scale: float, now: datetime, max_runs: int = 500) -> int:
    """Runs of the outbox until nothing is pending; returns the number of runs."""
    for run in range(1, max_runs + 1):
        with session_scope(settings) as session:
            _, _, pending = deliver_pending(session, _sender(settings, scale), settings, now + timedelta(minutes=run))
        if pending == 0:
            return run
    raise SystemExit(f"still pending after {max_runs} runs")


def _sent(settings: Settings) -> int:
    with session_scope(settings) as session:
        return session.scalar(select(func.count()).select_from(Alert).where(Alert.status == "sent")) or 0


def check(fake, settings: Settings, expected: list[str]) -> dict[str, object]:  # noqa: ANN001 - FakeSlack
    """Lost, doubled, outside the thread, out of order: from what the server stored and the outbox."""
    posted = Counter(fake.alert_ids())
    with session_scope(settings) as session:
        rows = {a.id: a for a in session.scalars(select(Alert))}
    lost = [i for i in expected if posted[i] == 0]
    doubled = {i: n for i, n in posted.items() if n > 1}
    outside = out_of_order = mismatched = 0
    for channel in CHANNELS:
        for parent in fake.top_level(channel):
            parent_id = (parent.get("metadata") or {}).get("event_payload", {}).get("alert_id")
            if parent.get("thread_ts") not in (None, parent["ts"]):
                continue  # a broadcast reply shows in the channel too; it is checked in its thread
            replies = [r for r in fake.replies(channel, parent["ts"]) if r["ts"] != parent["ts"]]
            sequence = []
            for reply in replies:
                reply_id = (reply.get("metadata") or {}).get("event_payload", {}).get("alert_id")
                row = rows.get(reply_id)
                if row is None or row.parent_id != parent_id:
                    outside += 1
                    continue
                sequence.append(row.detail["sequence"])
            out_of_order += sum(1 for a, b in zip(sequence, sequence[1:]) if b < a)
    for alert_id in expected:
        row = rows.get(alert_id)
        if row is None or row.status != "sent":
            mismatched += 1
            continue
        message = fake.message(row.remote_channel or row.channel, row.remote_id)
        stored = ((message or {}).get("metadata") or {}).get("event_payload", {}).get("alert_id")
        mismatched += stored != alert_id
    return {
        "expected": len(expected), "delivered_once": sum(1 for i in expected if posted[i] == 1),
        "lost": len(lost), "doubled": len(doubled), "outside_thread": outside, "out_of_order": out_of_order,
        "outbox_mismatch": mismatched,
    }  # fmt: skip


def worker(args: argparse.Namespace) -> None:
    settings = _settings(Path(args.var), args.url)
    deliver_all(settings, args.time_scale, T0 + timedelta(days=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--stories", type=int, default=50)
    parser.add_argument("--time-scale", type=float, default=100.0, help="Slack's waits run this much faster.")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--var", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    from fakeslack import FakeSlack

    figures: dict[str, object] = {"alerts": args.alerts, "stories": args.stories, "time_scale": args.time_scale,
                                  "client_timeout_s": TIMEOUT_S}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as fake:
        var = Path(tmp)
        settings = _settings(var, fake.url)
        upgrade(settings)
        fake.chaos(rate_429=0.30, rate_500=0.10, rate_slow=0.05, slow_seconds=2 * TIMEOUT_S, retry_after=1, seed=args.seed)

        first = write_batch(settings, 0, args.alerts, args.stories)
        started = time.perf_counter()
        runs = deliver_all(settings, args.time_scale, T0)
        figures["first_batch"] = {"runs": runs, "seconds": round(time.perf_counter() - started, 1),
                                  **check(fake, settings, first)}  # fmt: skip
        print(json.dumps({"first_batch": figures["first_batch"], "injected": dict(fake.injected)}), flush=True)

        second = write_batch(settings, 1, args.alerts // 2, args.stories)
        before = _sent(settings)
        command = [sys.executable, __file__, "--worker", "--var", str(var), "--url", fake.url,
                   "--time-scale", str(args.time_scale)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        process = subprocess.Popen(command, env=env, cwd=PROJECT_ROOT)
        target = before + len(second) // 2
        deadline = time.monotonic() + 600
        while _sent(settings) < target and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        killed_at = _sent(settings) - before
        process.send_signal(signal.SIGKILL)
        process.wait()
        with session_scope(settings) as session:
            in_doubt = session.scalar(select(func.count()).select_from(Alert).where(Alert.in_doubt.is_(True))) or 0
        started = time.perf_counter()
        runs = deliver_all(settings, args.time_scale, T0 + timedelta(days=2))
        figures["second_batch"] = {
            "killed_after_sent": killed_at, "in_doubt_after_kill": in_doubt, "rerun_runs": runs,
            "rerun_seconds": round(time.perf_counter() - started, 1), **check(fake, settings, second),
        }  # fmt: skip
        total = check(fake, settings, first + second)
        figures["injected"] = dict(fake.injected)
        figures["requests"] = len(fake.requests)
    figures.update({key: total[key] for key in ("expected", "delivered_once", "lost", "doubled", "outside_thread",
                                                 "out_of_order", "outbox_mismatch")})  # fmt: skip
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
