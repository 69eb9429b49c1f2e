"""The retraining loop on small plates, end to end with real parts (a folder model store,
a real MLflow store, real training, export and evaluation):
training-distribution plates -> no drift; a drift preset -> drift -> the pipeline
retrains on new labelled plates -> every gate passes -> canary moves to the candidate,
production stays; a failing gate leaves canary alone; seen data does not retrain twice;
a dry run changes nothing; bad data is rejected with reasons. The gate rule itself is
specified on metrics written out by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import pytest

from hades_perception.models.store import ModelStore
from hades_training.cli import main
from hades_training.retrain import Gates, gate

MODEL = "hades-seedlings"
W, H = 1050, 752


@pytest.fixture(scope="module")
def world(monitored_bundle: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A store whose production and canary serve the monitored bundle, a fixed gate set,
    new labelled plates, plates like the training ones and plates of a drift preset."""
    from hades_training.synth.generate import generate

    root = tmp_path_factory.mktemp("retraining")
    store = ModelStore.open(root / "store")
    store.publish(monitored_bundle)
    for channel in ("production", "canary"):
        store.promote(MODEL, "0.0.2-test", channel, "the first model", by="a person")
    generate(root / "gate", count=3, seed=31, split="test", width=W, height=H)
    generate(root / "new", count=4, seed=41, split="train", width=W, height=H)
    generate(root / "new", count=2, seed=42, split="val", width=W, height=H)
    generate(root / "like", count=20, seed=43, width=W, height=H)
    generate(root / "dark", count=20, seed=43, difficulty="drift_dark", width=W, height=H)
    return {"root": root, "store": root / "store"}


def pipeline(world: dict[str, Path], out: str, *extra: str, new: str = "new") -> dict[str, Any]:
    root = world["root"]
    source = new if "://" in new else str(root / new)
    args = ["pipeline", "--store", str(world["store"]), "--new-data", source]
    args += ["--gate-data", str(root / "gate"), "--out", str(root / out), "--state", str(root / "state.json")]
    assert main([*args, *extra]) == 0
    return dict(json.loads((root / out / "decision.json").read_text()))


def channels(world: dict[str, Path]) -> dict[str, str]:
    return {c: p.version for c, p in ModelStore.open(world["store"]).channels(MODEL).items()}


# Gates wide enough for two tiny models (a few training steps each): this test is about
# the loop; what the gates demand is specified in TestTheGateRule.
WIDE = ["--iou-margin", "1", "--tip-margin", "1", "--max-pixel-ece", "1"]


class TestTheLoop:
    def test_drift_then_retraining_moves_canary_and_never_production(self, world: dict[str, Path]):
        root = world["root"]
        assert main(["monitor", "--reference", str(root / "store" / MODEL / "versions" / "0.0.2-test"),
                     "--current", str(root / "like" / "images"), "--out", str(root / "like-report")]) == 0  # fmt: skip
        assert json.loads((root / "like-report" / "drift.json").read_text())["drift_detected"] is False
        assert main(["monitor", "--reference", str(root / "store" / MODEL / "versions" / "0.0.2-test"),
                     "--current", str(root / "dark" / "images"), "--out", str(root / "dark-report")]) == 0  # fmt: skip
        assert json.loads((root / "dark-report" / "drift.json").read_text())["drift_detected"] is True

        d = pipeline(world, "run1", "--drift-report", str(root / "dark-report" / "drift.json"), *WIDE)
        assert d["decision"] == "promoted-canary", d["reasons"]
        assert any("drift report" in r for r in d["trigger"]) and any("new labelled data" in r for r in d["trigger"])
        assert d["steps"]["validate"]["accepted"] == 6 and d["steps"]["validate"]["rejected"] == []
        assert all(g["passed"] for g in d["gates"]) and any("gate set" in g["gate"] for g in d["gates"])
        assert channels(world) == {"production": "0.0.2-test", "canary": d["candidate"]}
        store = ModelStore.open(world["store"])
        record = store.record(MODEL, d["candidate"], "pipeline")
        assert record is not None and record["gates"] == d["gates"]
        # MLflow: a parent run with the decision, a child run per step; the registry mirrors the store.
        from mlflow.tracking import MlflowClient

        client = MlflowClient()
        parent = client.get_run(d["mlflow_run_id"])
        assert parent.data.tags["hades.decision"] == "promoted-canary"
        children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{d['mlflow_run_id']}'")
        steps = {r.data.tags.get("hades.pipeline_step") for r in children}
        assert {"validate", "train", "gates", "publish"} <= steps
        assert sum(1 for r in children if r.info.run_name.startswith("evaluate")) == 4
        assert client.get_model_version_by_alias(MODEL, "canary").tags["hades.store_version"] == d["candidate"]
        assert client.get_model_version_by_alias(MODEL, "production").tags["hades.store_version"] == "0.0.2-test"

        # The same data again, without drift or schedule: nothing to do.
        again = pipeline(world, "run2", *WIDE)
        assert again["decision"] == "skipped" and channels(world)["canary"] == d["candidate"]

    def test_a_failing_gate_leaves_canary_where_it_was(self, world: dict[str, Path]):
        before = channels(world)
        d = pipeline(world, "run3", "--schedule", "--iou-margin", "1", "--tip-margin", "1", "--max-pixel-ece", "0")
        assert d["decision"] == "refused"
        assert any("per-pixel ECE" in r for r in d["reasons"])
        assert channels(world) == before
        assert d["candidate"] not in ModelStore.open(world["store"]).versions(MODEL)

    def test_a_dry_run_validates_and_plans_but_changes_nothing(self, world: dict[str, Path]):
        before, state = channels(world), (world["root"] / "state.json").read_text()
        d = pipeline(world, "dry", "--schedule", "--dry-run")
        assert d["decision"] == "dry-run" and any("never production" in step for step in d["plan"])
        assert channels(world) == before and (world["root"] / "state.json").read_text() == state
        assert not (world["root"] / "dry" / "candidate").exists()

    def test_new_data_can_come_from_a_blob_prefix_and_is_fetched_before_it_is_validated(
        self, world: dict[str, Path], tmp_path: Path
    ):
        import shutil

        bucket = tmp_path / "bucket"  # a store URL's prefix; azure:// works through the same Blobs interface
        shutil.copytree(world["root"] / "new", bucket / "labelled" / "2026-12")
        d = pipeline(world, "from-blobs", "--schedule", "--dry-run", new=f"file://{bucket}/labelled/2026-12")
        assert d["decision"] == "dry-run" and d["steps"]["validate"]["accepted"] == 6
        fetched = world["root"] / "from-blobs" / "new-data"
        assert sorted(p.name for p in (fetched / "train" / "images").iterdir()) == sorted(
            p.name for p in (world["root"] / "new" / "train" / "images").iterdir()
        )

    def test_bad_items_are_rejected_with_reasons_and_too_few_good_ones_stop_the_run(
        self, world: dict[str, Path], tmp_path: Path
    ):
        from hades_training.synth.generate import generate

        bad = world["root"] / "bad"
        generate(bad, count=2, seed=51, split="train", width=W, height=H)
        images = sorted((bad / "train" / "images").glob("*.png"))
        images[0].write_bytes(images[0].read_bytes()[:100])  # truncated
        mask = next((bad / "train" / "masks").glob(f"{images[1].stem}*"))
        cv2.imwrite(str(mask), cv2.imread(str(mask))[:10, :10])  # type: ignore[index]  # wrong size
        before = channels(world)
        d = pipeline(world, "run-bad", *WIDE, new="bad")
        assert d["decision"] == "rejected" and "0 item(s) accepted" in d["reasons"][0]
        reasons = " ".join(r["reason"] for r in d["steps"]["validate"]["rejected"])
        assert "cannot be decoded" in reasons and "px but its image is" in reasons
        assert channels(world) == before


def metrics(iou: float, tips: float, ece: float) -> dict[str, Any]:
    return {
        "segmentation": {"root": {"iou": iou}, "shoot": {"iou": 0.9}},
        "primary_root_tip": {"within_1mm": tips},
        "calibration": {"pixel_ece": ece},
    }


class TestTheGateRule:
    def test_equal_or_better_passes(self):
        assert all(r["passed"] for r in gate(metrics(0.88, 0.96, 0.01), metrics(0.88, 0.96, 0.01), Gates(), "set"))

    @pytest.mark.parametrize(
        ("candidate", "failing"),
        [
            (metrics(0.865, 0.96, 0.01), "IoU root"),  # 0.015 worse than 0.88, margin 0.01
            (metrics(0.88, 0.95, 0.01), "tips within 1 mm"),  # one plant in a hundred fewer
            (metrics(0.88, 0.96, 0.03), "per-pixel ECE"),  # above 0.02
        ],
    )
    def test_a_worse_class_fewer_tips_or_poor_calibration_fails(self, candidate: dict[str, Any], failing: str):
        results = gate(candidate, metrics(0.88, 0.96, 0.01), Gates(), "set")
        assert [r["gate"] for r in results if not r["passed"]] == [f"set: {failing}"]

    def test_a_class_within_the_margin_passes(self):
        assert all(r["passed"] for r in gate(metrics(0.875, 0.96, 0.01), metrics(0.88, 0.96, 0.01), Gates(), "set"))


def test_in_the_cloud_the_trigger_remembers_seen_data_in_the_model_store(tmp_path: Path):
    """An Azure ML job's disk is gone after it: with --state-in-store the data it trained on
    is remembered in the store, so the same data again is not new."""
    from hades_training.retrain import STATE_KEY, PipelineConfig, _remember, trigger

    store = ModelStore.open(tmp_path / "store")
    store.blobs.ensure_container()
    cfg = PipelineConfig(str(tmp_path / "store"), MODEL, tmp_path / "new", tmp_path / "gate", tmp_path / "out")
    cloud = PipelineConfig(**{**vars(cfg), "state_in_store": True})
    assert any("new labelled data" in r for r in trigger(cloud, "abc123"))
    _remember(cloud, "abc123", "promoted-canary")
    assert trigger(cloud, "abc123") == []
    assert (
        json.loads(store.blobs.read(STATE_KEY.format(model=MODEL))[0])["data"]["abc123"]["decision"]
        == "promoted-canary"
    )
    assert not cfg.state_file.exists()  # nothing on the job's disk


def test_a_fine_tuned_production_version_is_retrained_with_the_config_of_its_first_run():
    from hades_training.retrain import production_config

    first = {"config": {"epochs": 24, "lr": 0.003, "width": 16}, "init_from": None}
    manifest = {"lineage": {"config": {"epochs": 12, "lr": 0.001, "width": 16}, "init_from": first}}
    cfg = production_config(manifest, ["batch=4"])
    assert (cfg.epochs, cfg.lr, cfg.width, cfg.batch) == (24, 0.003, 16, 4)
    assert production_config({"lineage": {"config": {"epochs": 12}}}, []).epochs == 12
