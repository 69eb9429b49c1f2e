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
    "normal 2": SHIPPED.parent / "hades-seedlings.test-metrics-normal2.json",
    "realistic 2": SHIPPED.parent / "hades-seedlings.test-metrics-realistic2.json",
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
    # a second split of a preset is held to that preset's targets
    second = tests["realistic 2"]["plants"]["primary_tip_right_plant_within_1mm"]
    assert "realistic 2 >= 0.95" in tips
    assert f"{second:.3f} ({'met' if second >= 0.95 else '**not met**'})" in tips.split(" | ")[4]


def test_the_committed_card_is_what_the_command_writes(tmp_path: Path):
    out = tmp_path / "card.md"
    args = ["card", "--model", str(SHIPPED), "--report", str(REPORTS["normal"])]
    for name in ("realistic", "normal 2", "realistic 2"):
        args += ["--also", f"{name}={REPORTS[name]}"]
    assert main([*args, "--out", str(out)]) == 0
    assert out.read_text() == (SHIPPED.parent / "MODEL_CARD.md").read_text()


def test_a_fine_tuned_model_names_the_weights_it_started_from_back_to_the_first_run():
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    base = {"path": "runs/base/best.pt", "sha256": "a" * 64, "mlflow_run_id": "r1", "epoch": 17}
    base |= {"config": {"epochs": 24}, "dataset": {"train": {"items": 64, "path": "datasets/mixed"}}}
    tuned = {"path": "runs/real/best.pt", "sha256": "b" * 64, "mlflow_run_id": "r2", "epoch": 3, "init_from": base}
    manifest["lineage"]["init_from"] = tuned | {"config": {"epochs": 6}, "dataset": {"train": {"items": 12}}}
    tests = {"normal": json.loads(REPORTS["normal"].read_text())}
    lines = [line for line in render_card(manifest, tests).splitlines() if "fine-tuned from" in line]
    assert len(lines) == 2
    assert "`runs/real/best.pt`" in lines[0] and "MLflow run `r2`" in lines[0] and "epoch 4 of 6" in lines[0]
    assert "`runs/base/best.pt`" in lines[1] and "64 plates of `datasets/mixed`" in lines[1]
    assert "epoch 18 of 24" in lines[1]


def test_the_card_says_whether_the_weights_are_the_runs_best_by_validation_or_a_later_epochs():
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    tests = {"normal": json.loads(REPORTS["normal"].read_text())}

    def config_line(lineage: dict[str, object]) -> str:
        manifest["lineage"] |= lineage
        return next(line for line in render_card(manifest, tests).splitlines() if line.startswith("- config:"))

    epochs = manifest["lineage"]["config"]["epochs"]
    best = config_line({"checkpoint_epoch": 7, "checkpoint_val_score": 0.815, "run_best_val_score": 0.815})
    assert best.endswith("weights after epoch 8 (the run's best validation score, 0.815)")
    last = config_line({"checkpoint_epoch": epochs - 1, "checkpoint_val_score": 0.81, "run_best_val_score": 0.815})
    assert last.endswith(
        f"weights after epoch {epochs} (validation score 0.810; an earlier epoch's was the run's best, 0.815)"
    )
    # a bundle exported before scores were recorded claims neither
    older = config_line({"checkpoint_val_score": None, "run_best_val_score": None})
    assert older.endswith(f"weights after epoch {epochs}")
