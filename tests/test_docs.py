"""The README documents every setting, and the shared layering rule holds."""

from __future__ import annotations

import ast
from pathlib import Path

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["core", "collectors", "enrichment", "archive", "alerts", "flankwatch", "dags"]


def test_every_setting_is_in_the_readme():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    scalar = [name for name in Settings.model_fields if name not in ("topics", "alert_routes")]
    missing = [name for name in scalar if f"FLANKWATCH_{name.upper()}" not in readme]
    assert missing == []
    assert "`topics`" in readme and "`alert_routes`" in readme


def test_imports_only_go_down_the_layers():
    rank = {name: i for i, name in enumerate(LAYERS)}
    upward = []
    for layer in LAYERS:
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names = [node.module]
                else:
                    continue
                upward += [f"{path.relative_to(ROOT)} imports {n}" for n in names
                           if rank.get(n.split(".")[0], -1) > rank[layer]]
    assert upward == []
