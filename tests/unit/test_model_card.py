"""`hades-train card`: the shipped model's card is written from its manifest and its test
reports, every figure with its verdict against the preset's target, never by hand."""

from __future__ import annotations

import json
from pathlib import Path

from hades_training.card import TARGETS, render_card
from hades_training.cli import main
from tests.bundles import SHIPPED

REPORTS = {
    "normal": SHIPPED.parent / "hades-seedlings.test-metrics.json",
    "realistic": SHIPPED.parent / "hades-seedlings.test-metrics-realistic.json",
}


def test_each_preset_gets_a_column_and_each_target_a_verdict():
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    tests = {k: json.loads(v.read_text()) for k, v in REPORTS.items()}
    card = render_card(manifest, tests)
    assert f"# Model card: {manifest['name']} {manifest['version']}" in card
    row = next(line for line in card.splitlines() if line.startswith("| root IoU |"))
    iou = tests["normal"]["segmentation"]["root"]["iou"]
    assert f"{iou:.3f} ({'met' if iou >= TARGETS['normal']['iou_root'] else '**not met**'})" in row
    tips = next(line for line in card.splitlines() if line.startswith("| primary tips within 1 mm, right plant"))
    assert "normal >= 0.98" in tips and "realistic >= 0.95" in tips


def test_the_committed_card_is_what_the_command_writes(tmp_path: Path):
    out = tmp_path / "card.md"
    args = ["card", "--model", str(SHIPPED), "--report", str(REPORTS["normal"])]
    assert main([*args, "--also", f"realistic={REPORTS['realistic']}", "--out", str(out)]) == 0
    assert out.read_text() == (SHIPPED.parent / "MODEL_CARD.md").read_text()
