"""Crash anywhere: `python bench/crash_test.py [--kills 200] [--items 120] [--cycles 6] [--seed 1]`.

A demo-sized replay of real items (`flankwatch.replay`, served by the demo's own feed server on 127.0.0.1)
runs cycle by cycle through the real pipeline (`flankwatch.pipeline.run_once`, then the digest), each cycle
in its own process with the cycle's simulated clock and run id, alerts going to a local fake Slack
(tests/fakeslack.py, real HTTP).

1. The reference: every cycle once, never interrupted.
2. The crash run, on a fresh state DB and archive: every cycle is started, and `kill -9`ed, again and again
   (`--kills` in all, spread evenly over the cycles). Each kill aims at one stage in turn (collect, enrich,
   index, alert, digest): a random instant within the time that stage took in the reference run, counted from
   the moment the process announces the stage. The stage it really was in when it died is what is counted.
   After its kills, the cycle is run to the end, as an operator (or Airflow's retry) would.

Then the final states are compared: the same articles (id, URL, title, language, topic, relevance, story,
indexed or not, the model of the vector and the vector itself within a cosine of 1e-4), the same stories and
memberships, the same archive documents, the same alerts, and every alert delivered exactly once at the fake
Slack. The last line is one JSON object `{"kills": N, "stages": {stage: kills}, "differences": [...]}`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # the project, and tests/fakeslack.py

import numpy as np  # noqa: E402
from sqlalchemy import select  # noqa: E402

from core.db import session_scope, upgrade  # noqa: E402
from core.models import Alert, Article, Story  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.vectors import from_bytes  # noqa: E402

STAGES = ("collect", "enrich", "index", "alert", "digest")
CHANNEL = "#flank-crash"
TOKEN_ENV = "xoxb-crash-test-token"
DATA = ROOT.parent / "shared" / "data"


def _env(var: Path, slack_url: str) -> dict[str, str]:
    """The child's whole configuration, as the environment (Settings reads it)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("FLANKWATCH_")}
    env.update({
        "FLANKWATCH_VAR_DIR": str(var), "FLANKWATCH_FEEDS_FILE": str(var / "no-feeds.yaml"),
        "FLANKWATCH_SLACK_API_URL": slack_url, "FLANKWATCH_SLACK_TOKEN": TOKEN_ENV,
        "FLANKWATCH_SLACK_CHANNEL": CHANNEL, "FLANKWATCH_ALLOW_PRIVATE_ADDRESSES": "true",
        "FLANKWATCH_FETCH_HOST_DELAY_SECONDS": "0", "FLANKWATCH_FETCH_PER_HOST": "8",
        "FLANKWATCH_SLACK_MIN_INTERVAL_SECONDS": "0", "FLANKWATCH_RUN_LOCK_WAIT_SECONDS": "60",
        "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    return env


# --- the child: one cycle -------------------------------------------------------------------------------


def child(clock: datetime, run_id: str) -> None:
    """One cycle, announcing each stage on stdout (`STAGE name`) as it starts."""
    from flankwatch.pipeline import digest_stage, run_once

    def announce(name: str) -> None:
        print(f"STAGE {name}", flush=True)

    settings = Settings()
    token = settings.slack_token.get_secret_value() if settings.slack_token else None
    run_once(settings, now=clock, run_id=run_id, origin="demo", slack_token=token, on_stage=announce)
    announce("digest")
    digest_stage(settings, now=clock, slack_token=token)
    print("DONE", flush=True)


# --- the driver -----------------------------------------------------------------------------------------


@dataclass
class Attempt:
    finished: bool
    stage: str | None  # the last stage announced before it died (None: before the first)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # stage -> seconds, of a finished run


def _attempt(env: dict[str, str], clock: datetime, run_id: str, aim: tuple[str, float] | None) -> Attempt:
    """Run one cycle in a child; with `aim` (stage, delay), kill -9 it `delay` seconds after that stage
    starts (or as soon as a later one does)."""
    command = [sys.executable, __file__, "--child", clock.isoformat(), run_id]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[tuple[str, float]] = []
    done = threading.Event()
    killed = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("STAGE "):
                seen.append((line.split()[1], time.monotonic()))
            elif line.startswith("DONE"):
                seen.append(("done", time.monotonic()))
        done.set()

    errors: list[str] = []
    reader = threading.Thread(target=read, daemon=True)
    drain = threading.Thread(target=lambda: errors.append(process.stderr.read() if process.stderr else ""),
                             daemon=True)
    reader.start()
    drain.start()
    if aim is not None:
        stage, delay = aim
        order = [*STAGES, "done"]
        while not done.is_set():
            reached = [t for name, t in seen if order.index(name) >= order.index(stage)]
            if reached and time.monotonic() >= reached[0] + delay:
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    killed.set()
                break
            time.sleep(0.005)
    process.wait()
    reader.join(5)
    drain.join(5)
    if killed.is_set() and process.returncode == -signal.SIGKILL:
        last = [name for name, _ in seen if name != "done"]
        return Attempt(False, last[-1] if last else None)
    if process.returncode != 0:
        raise SystemExit(f"cycle {run_id} failed (exit {process.returncode}):\n{''.join(errors)[-3000:]}")
    stamps = dict(seen)
    order = [name for name, _ in seen]
    seconds = {name: stamps[nxt] - stamps[name] for name, nxt in zip(order, order[1:])}
    return Attempt(True, None, seconds)


def _register(var: Path, env: dict[str, str], server: Any) -> None:
    from flankwatch.demo import register_feeds

    settings = _settings_of(env)
    upgrade(settings)
    register_feeds(settings, server)


def _settings_of(env: dict[str, str]) -> Settings:
    saved = {key: os.environ.get(key) for key in env if key.startswith("FLANKWATCH_")}
    os.environ.update({key: value for key, value in env.items() if key.startswith("FLANKWATCH_")})
    try:
        return Settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def snapshot(settings: Settings, slack: Any) -> dict[str, Any]:
    """What must be equal between the two runs."""
    with session_scope(settings) as session:
        articles = {
            a.id: {"url": a.canonical_url, "title": a.title, "language": a.language, "topic": a.topic,
                   "relevant": a.relevant, "relevance": None if a.relevance is None else round(a.relevance, 3),
                   "story": a.story_id, "indexed": a.indexed_at is not None, "model": a.embedding_model,
                   "vector": None if a.embedding is None else from_bytes(a.embedding)}
            for a in session.scalars(select(Article))
        }  # fmt: skip
        stories = {s.id: {"headline": s.headline, "articles": s.article_count, "sources": s.source_count,
                          "born": s.born_at is not None, "merged_into": s.merged_into}
                   for s in session.scalars(select(Story))}
        alerts = {a.id: {"kind": a.kind, "status": a.status, "story": a.story_id, "created": str(a.created_at)}
                  for a in session.scalars(select(Alert))}
    with sqlite3.connect(settings.archive_path) as db:  # the embedded archive, read as it is on disk
        documents = {
            "articles": dict(db.execute("SELECT id, story_id || ' ' || topics || ' ' || "
                                        "coalesce(embedding_model, '') FROM articles")),
            "fts_rows": db.execute("SELECT count(*) FROM articles_fts").fetchone()[0],
            "stories": dict(db.execute("SELECT id, article_count || ' ' || source_count || ' ' || headline "
                                       "FROM stories")),
        }
    return {"articles": articles, "stories": stories, "alerts": alerts, "documents": documents,
            "posted": Counter(slack.alert_ids())}


def differences(reference: dict[str, Any], crashed: dict[str, Any]) -> list[str]:
    found: list[str] = []
    ref_articles, got_articles = reference["articles"], crashed["articles"]
    for missing in sorted(set(ref_articles) - set(got_articles)):
        found.append(f"article {missing} missing")
    for extra in sorted(set(got_articles) - set(ref_articles)):
        found.append(f"article {extra} not in the reference")
    for key in sorted(set(ref_articles) & set(got_articles)):
        ref, got = ref_articles[key], got_articles[key]
        for name in ref:
            if name == "vector":
                a, b = ref[name], got[name]
                if (a is None) != (b is None) or (a is not None and float(np.dot(a, b)) < 1 - 1e-4):
                    found.append(f"article {key}: its vector differs")
            elif ref[name] != got[name]:
                found.append(f"article {key}: {name} {got[name]!r}, reference {ref[name]!r}")
    for kind, one in (("stories", "story"), ("alerts", "alert")):
        ref, got = reference[kind], crashed[kind]
        found += [f"{one} {key} missing ({ref[key]})" for key in sorted(set(ref) - set(got))]
        found += [f"{one} {key} not in the reference ({got[key]})" for key in sorted(set(got) - set(ref))]
        found += [f"{one} {key}: {got[key]}, reference {ref[key]}"
                  for key in sorted(set(ref) & set(got)) if ref[key] != got[key]]
    for kind, one in (("articles", "article"), ("stories", "story")):
        ref, got = reference["documents"][kind], crashed["documents"][kind]
        found += [f"archive {one} {key} missing" for key in sorted(set(ref) - set(got))]
        found += [f"archive {one} {key} not in the reference" for key in sorted(set(got) - set(ref))]
        found += [f"archive {one} {key}: {got[key]!r}, reference {ref[key]!r}"
                  for key in sorted(set(ref) & set(got)) if ref[key] != got[key]]
    if reference["documents"]["fts_rows"] != crashed["documents"]["fts_rows"]:
        found.append(f"archive full-text rows: {crashed['documents']['fts_rows']}, "
                     f"reference {reference['documents']['fts_rows']}")
    sent = {key for key, alert in crashed["alerts"].items() if alert["status"] == "sent"}
    for key, count in sorted(crashed["posted"].items()):
        if count != 1:
            found.append(f"alert {key} posted {count} times")
    found += [f"alert {key} sent but not at Slack" for key in sorted(sent - set(crashed["posted"]))]
    found += [f"alert {key} at Slack but not sent" for key in sorted(set(crashed["posted"]) - sent)]
    return found


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--items", type=int, default=120)
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--keep", type=Path, default=None, help="work in this folder and keep it (to inspect)")
    args = parser.parse_args(argv)

    from fakeslack import FakeSlack

    from flankwatch.demo import topical_filter
    from flankwatch.replay import cycle_clocks, load_items, select as select_items
    from flankwatch.replay_server import ReplayServer

    rng = random.Random(args.seed)
    items = select_items(load_items(args.data), topical=topical_filter(Settings()), limit=args.items)
    clocks = cycle_clocks(items, args.cycles)
    per_cycle = [args.kills // len(clocks) + (1 if n < args.kills % len(clocks) else 0) for n in range(len(clocks))]
    stage_seconds: dict[str, list[float]] = {stage: [] for stage in STAGES}
    kills: Counter[str] = Counter()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="flankwatch-crash-") as tmp, ReplayServer(items) as server:
        work = Path(args.keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        states = {}
        for name in ("reference", "crashed"):
            with FakeSlack(token=TOKEN_ENV) as slack:
                var = work / name
                var.mkdir()
                env = _env(var, slack.url)
                _register(var, env, server)
                for number, clock in enumerate(clocks):
                    server.clock = clock
                    run_id = f"crash-{number:02d}-{clock:%Y%m%dT%H%M%S}"
                    if name == "crashed":
                        wanted, tries = per_cycle[number], 0
                        while wanted and tries < 4 * per_cycle[number]:
                            # each kill aims at the next stage in turn, within the time it took in the reference
                            stage = STAGES[sum(kills.values()) % len(STAGES)]
                            usual = stage_seconds[stage][number] if number < len(stage_seconds[stage]) else 0.5
                            outcome = _attempt(env, clock, run_id, (stage, rng.uniform(0, usual)))
                            tries += 1
                            if not outcome.finished:  # (a run that ended before its instant is not a kill)
                                kills[outcome.stage or "start"] += 1
                                wanted -= 1
                    outcome = _attempt(env, clock, run_id, None)
                    if name == "reference":
                        for stage, seconds in outcome.stage_seconds.items():
                            stage_seconds.setdefault(stage, []).append(seconds)
                    print(f"{name} cycle {number + 1}/{len(clocks)} at {clock:%Y-%m-%d %H:%M}: done "
                          f"({sum(kills.values())} kills so far)", flush=True)
                states[name] = snapshot(_settings_of(env), slack)
    found = differences(states["reference"], states["crashed"])
    reference = states["reference"]
    result = {
        "kills": sum(kills.values()), "stages": dict(kills), "differences": found[:50],
        "difference_count": len(found), "items": len(items), "cycles": len(clocks),
        "articles": len(reference["articles"]), "stories": len(reference["stories"]),
        "alerts": len(reference["alerts"]), "alerts_posted": sum(states["crashed"]["posted"].values()),
        "reference_stage_seconds": {k: round(float(np.mean(v)), 2) for k, v in stage_seconds.items() if v},
        "seconds": round(time.perf_counter() - started, 1),
    }  # fmt: skip
    for line in found[:50]:
        print("difference:", line)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(datetime.fromisoformat(sys.argv[2]), sys.argv[3])
    else:
        main()
