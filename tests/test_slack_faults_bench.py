"""bench/slack_faults.py at a small size: under 429s, 500s and answers after the client's timeout, and a
sender killed with SIGKILL mid-batch, every alert is posted once, in its thread, in order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def test_every_alert_once_in_its_thread_in_order_through_faults_and_a_kill():
    out = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "bench" / "slack_faults.py"), "--alerts", "80", "--stories", "8",
         "--seed", "5"],
        check=True, capture_output=True, text=True, timeout=600, cwd=PROJECT_ROOT,
    )  # fmt: skip
    figures = json.loads(out.stdout.strip().splitlines()[-1])
    assert figures["expected"] == 120 and figures["delivered_once"] == 120
    assert (figures["lost"], figures["doubled"], figures["outside_thread"], figures["out_of_order"]) == (0, 0, 0, 0)
    assert figures["outbox_mismatch"] == 0
    assert 0 < figures["second_batch"]["killed_after_sent"] < 40  # killed in the middle of the second batch
    injected = figures["injected"]
    assert injected["429"] > 0 and injected["500"] > 0 and injected["slow"] > 0
