"""Labelled story data for `bench/cluster_eval.py`: loading and arrival order.

Two formats, detected by extension (then by content):

- UCI News Aggregator CSV: `ID,TITLE,URL,PUBLISHER,CATEGORY,STORY,HOSTNAME,TIMESTAMP` (TIMESTAMP in ms,
  gold story = STORY); headlines only.
- generic JSONL: one object a line with `id, title, text, source, language, published, story`
  (`published`: epoch seconds or milliseconds, or an ISO 8601 string), and optionally `topic` (ECB+: the
  stories of one topic are different events of one kind).
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

JITTER_HOURS = 24.0  # interleaved order: each arrival is its timestamp plus up to this much
ORDERS = ("interleaved", "time")
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}


@dataclass(frozen=True)
class Record:
    id: str
    title: str
    text: str  # body or summary ("" for headlines)
    source: str
    language: str
    published: float  # epoch seconds (UTC)
    story: str  # gold story
    category: str = ""  # gold category where the file has one (UCI: b/t/e/m)
    topic: str = ""  # where the file groups stories into topics (ECB+: two events of one kind)


def _epoch_seconds(value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return parsed.timestamp()
    return number / 1000.0 if number > 1e11 else number  # milliseconds (after 1973 in ms, year 5000+ in s)


def load_uci(path: Path) -> list[Record]:
    """UCI News Aggregator CSV rows (column names case-insensitive)."""
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        records = []
        for row in reader:
            row = {(key or "").strip().upper(): (value or "") for key, value in row.items()}
            if not row.get("STORY") or not row.get("TITLE"):
                continue
            records.append(
                Record(
                    id=row.get("ID") or str(len(records)),
                    title=row["TITLE"],
                    text="",
                    source=row.get("PUBLISHER") or row.get("HOSTNAME") or "unknown",
                    language="en",
                    published=_epoch_seconds(row.get("TIMESTAMP") or 0),
                    story=row["STORY"],
                    category=row.get("CATEGORY", "").strip(),
                )
            )
    return records


def load_jsonl(path: Path) -> list[Record]:
    """Generic JSONL rows; lines without a story are skipped."""
    records = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            line = line.strip()
            if not line:
                continue
            row = json.loads(line)
            if row.get("story") is None:
                continue
            records.append(
                Record(
                    id=str(row.get("id", number)),
                    title=str(row.get("title") or ""),
                    text=str(row.get("text") or ""),
                    source=str(row.get("source") or "unknown"),
                    language=str(row.get("language") or "en"),
                    published=_epoch_seconds(row.get("published") or 0),
                    story=str(row["story"]),
                    topic=str(row.get("topic") or ""),
                )
            )
    return records


def detect_format(path: Path) -> str:
    """"uci" or "jsonl": by extension, else by the first non-blank character."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return "uci"
    if suffix in JSONL_SUFFIXES:
        return "jsonl"
    with Path(path).open(encoding="utf-8") as handle:
        head = handle.read(4096).lstrip()
    return "jsonl" if head.startswith("{") else "uci"


def load(path: Path) -> list[Record]:
    return load_uci(path) if detect_format(path) == "uci" else load_jsonl(path)


def arrival_order(
    records: list[Record], order: str = "interleaved", seed: int = 13
) -> list[tuple[Record, float]]:
    """(record, arrival time in epoch seconds) in streaming order.

    `interleaved`: timestamp + a seeded uniform jitter in [0, JITTER_HOURS) so that several stories are open
    at once (the UCI aggregator logged each story in one burst); `time`: the file's own timestamps.
    Ties break on the record id, then on the file position, so the order is deterministic."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    rng = random.Random(seed)
    timed = []
    for position, record in enumerate(records):
        jitter = rng.uniform(0.0, JITTER_HOURS * 3600.0) if order == "interleaved" else 0.0
        timed.append((record.published + jitter, record.id, position, record))
    timed.sort(key=lambda item: item[:3])
    return [(record, time) for time, _, _, record in timed]


def sample(records: list[Record], limit: int | None, seed: int = 13) -> list[Record]:
    """A seeded random subset of `limit` records (file order kept), or all of them."""
    if not limit or limit >= len(records):
        return list(records)
    keep = sorted(random.Random(seed).sample(range(len(records)), limit))
    return [records[i] for i in keep]
