"""Training, export, evaluation and tuning: small and real (real MLflow store,
real ONNX export and ONNX Runtime sessions), a few steps each."""

from __future__ import annotations

import functools
import json
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from hades_perception.contract.bundle import open_bundle
from hades_training.config import load_config
from hades_training.data import DatasetError
from tests.conftest import TINY


def test_impossible_or_unknown_config_values_are_refused_with_all_problems_named():
    with pytest.raises(ValueError, match=r"patch must be a multiple of 16.*lr must be positive"):
        load_config(None, ["patch=100", "lr=0"])
    with pytest.raises(ValueError, match="unknown config key"):
        load_config(None, ["learning_rate=0.1"])
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        load_config(None, ["ema_decay=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["epochs"])
    assert load_config(None, ["epochs=3", "classes=[root, seed]"]).classes == ("root", "seed")


@pytest.mark.parametrize("ema_decay", ["0", "0.9"])
def test_training_is_deterministic_for_a_seed_and_resumes_to_the_same_weights(
    ema_decay: str, small_dataset: Path, data_dir: Path, tmp_path: Path
):
    """With a moving average of the weights (ema_decay > 0) too: a resume goes on with
    both the optimised weights and their average."""
    from hades_training.train import train

    two = load_config(None, [*TINY, "epochs=2", f"ema_decay={ema_decay}"])
    a = train(two, str(small_dataset), tmp_path / "a", split="train", val_split="val")
    b = train(two, str(small_dataset), tmp_path / "b", split="train", val_split="val")

    class CrashError(Exception):
        pass

    def crash_after_first_epoch(epoch: int, score: float, summary: dict) -> None:
        raise CrashError  # the machine goes down after epoch 1's checkpoint

    with pytest.raises(CrashError):
        train(two, str(small_dataset), tmp_path / "c", split="train", val_split="val", on_epoch=crash_after_first_epoch)
    c = train(
        two,
        str(small_dataset),
        tmp_path / "c",
        split="train",
        val_split="val",
        resume=tmp_path / "c" / "checkpoints" / "last.pt",
    )
    keys = ("model", "optimised_model") if two.ema_decay else ("model",)
    for key in keys:
        wa, wb, wc = (torch.load(p.parent / "last.pt", weights_only=False)[key] for p in (a, b, c))
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{key}: {k} differs between two runs with the same seed"
            assert torch.equal(wa[k], wc[k]), f"{key}: {k} differs after resume"
    if two.ema_decay:
        ck = torch.load(a.parent / "last.pt", weights_only=False)
        assert not torch.equal(ck["model"]["seg_head.weight"], ck["optimised_model"]["seg_head.weight"]), (
            "the checkpoint's model is not the average: it equals the optimised weights"
        )


def test_every_run_is_an_mlflow_run_with_params_and_per_epoch_metrics(tiny_checkpoint: Path, data_dir: Path):
    import mlflow

    ck = torch.load(tiny_checkpoint, weights_only=False)
    mlflow.set_tracking_uri(f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}")
    run = mlflow.get_run(ck["mlflow_run_id"])
    assert run.data.params["patch"] == "128" and run.data.params["train_items"] == "4"
    assert {"loss", "val_score", "val_iou_root"} <= set(run.data.metrics)
    assert run.data.tags["hades.code_commit"]


def test_an_unreachable_tracking_server_stops_training_before_it_starts(
    small_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from hades_training.train import train

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    with pytest.raises(RuntimeError, match="not reachable"):
        train(load_config(None, TINY), str(small_dataset), tmp_path / "run", split="train", val_split="val")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_empty_dataset_is_a_clear_error(tmp_path: Path, data_dir: Path):
    from hades_training.train import train

    (tmp_path / "empty" / "train" / "images").mkdir(parents=True)
    (tmp_path / "empty" / "val" / "images").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no images"):
        train(load_config(None, TINY), str(tmp_path / "empty"), tmp_path / "run", split="train", val_split="val")


def test_export_writes_a_verified_versioned_bundle(tiny_bundle: Path):
    m = open_bundle(tiny_bundle)
    raw = m.raw
    assert m.version == "0.0.1-test" and m.outputs.classes == ("root", "shoot", "seed", "occluded_root")
    assert raw["export"]["parity"]["max_abs_diff_seg_logits"] < 1e-3
    assert raw["export"]["parity"]["mask_agreement"] > 0.999
    assert {"code_commit", "training_data", "config", "mlflow_run_id"} <= set(raw["lineage"])
    # exported from best.pt: its own validation score is the run's best (a last.pt need not be)
    assert raw["lineage"]["checkpoint_val_score"] == raw["lineage"]["run_best_val_score"]
    assert raw["metrics"]["dataset"]["split"] == "val" and "segmentation" in raw["metrics"]["values"]
    assert "input" in raw["reference_stats"] and "prediction" in raw["reference_stats"]
    signals = raw["reference_stats"]["signals"]
    # Every signal from the validation predictions (2 here); the input ones also from the
    # training images (4), so drift is judged against more frames than validation has.
    assert len(signals["area.root"]) == 2 and len(signals["input.p50"]) == 2 + 4
    assert "skipped" in raw["tensorrt"]
    assert all(t > 0 for t in m.calibration.seg_temperature)
    assert sum(f["size"] for f in raw["files"].values()) < 20_000_000
    import jsonschema

    from tests.conftest import REPO

    jsonschema.validate(raw, json.loads((REPO / "models" / "manifest.schema.json").read_text()))


def test_export_cuts_tiles_to_the_model_size_divisor():
    from hades_training.export import _whole_blocks
    from hades_training.manifest_spec import manifest_dict
    from hades_training.model import SIZE_DIVISOR

    assert [_whole_blocks(n) for n in (767, 768, SIZE_DIVISOR - 1)] == [752, 768, 0]
    assert all(_whole_blocks(n) % SIZE_DIVISOR == 0 for n in range(1, 200))
    assert manifest_dict(load_config(None, []))["input"]["size_divisor"] == SIZE_DIVISOR


def test_export_of_a_checkpoint_whose_classes_differ_leaves_nothing_behind(
    small_dataset: Path, data_dir: Path, tmp_path: Path
):
    from hades_training.export import export
    from hades_training.train import train

    cfg = load_config(None, [*TINY, "classes=[root, shoot, seed]"])
    ck = train(cfg, str(small_dataset), tmp_path / "run", split="train", val_split="val")
    with pytest.raises(DatasetError, match="predicts classes"):
        export(ck, tmp_path / "bundle", str(small_dataset), "val", tensorrt=False)
    assert not (tmp_path / "bundle").exists()
    assert not list(tmp_path.glob(".bundle.partial-*"))


def test_evaluate_writes_metrics_report_and_reliability_diagrams(
    tiny_bundle: Path, small_dataset: Path, tmp_path: Path
):
    from hades_training.evaluate.report import evaluate

    summary = evaluate(tiny_bundle, str(small_dataset), "val", tmp_path / "eval")
    for name in ("metrics.json", "report.md", "reliability_pixels.png", "reliability_tips.png"):
        assert (tmp_path / "eval" / name).is_file()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["images"] == 2
    assert set(summary["segmentation"]) == {"root", "shoot", "seed", "occluded_root"}
    assert summary["calibration"]["pixel_ece"] is not None


def test_replay_plants_gives_evaluates_plant_figures_from_cached_engine_outputs(
    tiny_bundle: Path, small_dataset: Path, tmp_path: Path
):
    from hades_training.evaluate.replay import BUNDLE_FILE, replay_plants
    from hades_training.evaluate.report import evaluate

    evaluated = evaluate(tiny_bundle, str(small_dataset), "val", tmp_path / "eval")["plants"]
    cache = tmp_path / "cache"
    cmd = ["hades-train", "replay-plants", "--model", str(tiny_bundle), "--data", str(small_dataset)]
    cmd += ["--split", "val", "--cache", str(cache), "--out", str(tmp_path / "first.json")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    first = json.loads((tmp_path / "first.json").read_text())
    for key in ("plants", "primary_tip_right_plant_within_1mm", "misses", "misses_flagged_low_confidence"):
        assert first["plants"][key] == evaluated[key], key
    assert len(first["per_plant"]) == evaluated["plants"] and f"plants {evaluated['plants']}:" in r.stdout
    made = {f.name: f.stat().st_mtime_ns for f in cache.glob("*.pkl")}
    assert len(made) == 2  # one per plate
    # Again: from the cache, without the engine, the same rows.
    summary, rows = replay_plants(tiny_bundle, str(small_dataset), "val", cache)
    assert rows == first["per_plant"] and summary == first["plants"]
    assert {f.name: f.stat().st_mtime_ns for f in cache.glob("*.pkl")} == made
    (cache / BUNDLE_FILE).write_text(json.dumps({"sha256": "another bundle's"}))
    with pytest.raises(ValueError, match="another bundle"):
        replay_plants(tiny_bundle, str(small_dataset), "val", cache)


def test_predict_cli_writes_masks_and_json_per_image(tiny_bundle: Path, small_dataset: Path, tmp_path: Path):
    images = small_dataset / "val" / "images"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hades_perception.cli",
            "predict",
            str(images),
            "--model",
            str(tiny_bundle),
            "--out",
            str(tmp_path),
            "--providers",
            "CPUExecutionProvider",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    stem = sorted(images.glob("*.png"))[0].stem
    for cls in ("root", "shoot", "seed", "occluded_root"):
        m = cv2.imread(str(tmp_path / f"{stem}_{cls}_mask.png"), cv2.IMREAD_UNCHANGED)
        assert m is not None and m.shape == (752, 1050) and set(np.unique(m)) <= {0, 255}
    d = json.loads((tmp_path / f"{stem}.json").read_text())
    assert d["image"] == {"width": 1050, "height": 752}


def test_predict_reports_an_unreadable_image_and_goes_on(tiny_bundle: Path, small_dataset: Path, tmp_path: Path):
    src = tmp_path / "in"
    src.mkdir()
    good = sorted((small_dataset / "val" / "images").glob("*.png"))[0]
    (src / good.name).write_bytes(good.read_bytes())
    (src / "broken.png").write_bytes(b"not a png")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hades_perception.cli",
            "predict",
            str(src),
            "--model",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "out"),
            "--providers",
            "CPUExecutionProvider",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1
    assert "broken.png: cannot be decoded" in r.stderr
    assert (tmp_path / "out" / f"{good.stem}.json").is_file()


def test_tune_runs_trials_as_mlflow_runs_and_saves_the_best_params(small_dataset: Path, data_dir: Path, tmp_path: Path):
    from hades_training.tune import tune

    best = tune(
        str(small_dataset),
        tmp_path / "tune",
        2,
        split="train",
        val_split="val",
        config=None,
        overrides=TINY,
        study_name="test-study",
        storage=f"sqlite:///{tmp_path / 'optuna.db'}",
    )
    assert set(best["params"]) >= {"lr", "width"}
    assert (tmp_path / "tune" / "best_params.yaml").is_file()
    import mlflow

    runs = mlflow.search_runs(
        experiment_names=["hades-perception"], filter_string="tags.`hades.optuna_study` = 'test-study'"
    )
    assert len(runs) == 2


def test_torchrun_trains_with_ddp_on_two_processes(small_dataset: Path, data_dir: Path, tmp_path: Path):
    """The multi-GPU path for real, on CPU: torchrun, gloo, DistributedDataParallel."""
    import shutil

    torchrun = shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun not on PATH")
    cmd = [
        torchrun,
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "hades_training.cli",
        "train",
        "--data",
        str(small_dataset),
        "--split",
        "train",
        "--val-split",
        "val",
        "--out",
        str(tmp_path / "ddp"),
    ]
    for item in TINY:
        cmd += ["--set", item]
    r = subprocess.run(
        cmd, capture_output=True, text=True, timeout=600, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    ck = torch.load(tmp_path / "ddp" / "checkpoints" / "last.pt", weights_only=False)
    assert ck["step"] == 3 and "mlflow_run_id" in ck


def test_fine_tuning_starts_a_new_run_from_a_checkpoints_weights_and_records_where_they_came_from(
    tiny_checkpoint: Path, small_dataset: Path, data_dir: Path, tmp_path: Path
):
    import mlflow

    from hades_perception.contract.bundle import sha256_file
    from hades_training.train import train

    # A learning rate too small to move the weights: what the run ends with is what it started
    # from (batch-norm statistics move whatever the rate: they are not compared).
    still = load_config(None, [*TINY, "lr=1e-12", "weight_decay=0"])
    tuned = train(still, str(small_dataset), tmp_path / "ft", split="train", val_split="val", init=tiny_checkpoint)
    source, ck = (torch.load(p, weights_only=False) for p in (tiny_checkpoint, tuned))
    for k, w in source["model"].items():
        if "running_" in k or "num_batches" in k:
            continue
        assert torch.allclose(ck["model"][k].float(), w.float(), atol=1e-6), f"{k} did not start from the checkpoint"
    assert ck["mlflow_run_id"] != source["mlflow_run_id"], "fine-tuning continued the source's run"
    assert (ck["epoch"], ck["step"]) == (0, still.steps_per_epoch), "the schedule did not start afresh"
    assert ck["init_from"]["sha256"] == sha256_file(tiny_checkpoint)
    assert ck["init_from"]["mlflow_run_id"] == source["mlflow_run_id"]
    assert ck["init_from"]["dataset"] == source["dataset"]
    mlflow.set_tracking_uri(f"sqlite:///{data_dir / 'mlflow' / 'mlflow.db'}")
    run = mlflow.get_run(ck["mlflow_run_id"])
    assert run.data.params["init_sha256"] == ck["init_from"]["sha256"][:16]
    assert run.data.tags["hades.init_from_run"] == source["mlflow_run_id"]


def test_fine_tuning_refuses_a_checkpoint_of_another_network_shape_or_a_resume_beside_it(
    tiny_checkpoint: Path, small_dataset: Path, data_dir: Path, tmp_path: Path
):
    from hades_training.train import train

    run = functools.partial(train, split="train", val_split="val", init=tiny_checkpoint)
    with pytest.raises(ValueError, match=r"width \(8 there, 16 here\)"):
        run(load_config(None, [*TINY, "width=16"]), str(small_dataset), tmp_path / "w")
    with pytest.raises(ValueError, match="give one"):
        run(load_config(None, TINY), str(small_dataset), tmp_path / "r", resume=tiny_checkpoint)


def test_the_detector_retrained_alone_grows_heat_blocks_and_leaves_the_rest_as_it_was(
    tiny_checkpoint: Path, small_dataset: Path, data_dir: Path, tmp_path: Path
):
    from hades_training.export import load_checkpoint
    from hades_training.train import train

    heat_only = load_config(None, [*TINY, "heat_blocks=2", "train_only=heat", "steps_per_epoch=4"])
    run = functools.partial(train, split="train", val_split="val")
    tuned = run(heat_only, str(small_dataset), tmp_path / "heat", init=tiny_checkpoint)
    source, ck = (torch.load(p, weights_only=False) for p in (tiny_checkpoint, tuned))
    # Every weight and BatchNorm statistic outside the heatmap head is the checkpoint's, bit
    # for bit: the masks are the same.
    for k, w in source["model"].items():
        if not k.startswith("heat_head."):
            assert torch.equal(ck["model"][k], w), f"{k} moved although frozen"
    grown = [k for k in ck["model"] if k.startswith("heat_refine.")]
    assert grown and not any(k.startswith("heat_refine.") for k in source["model"])
    head = [k for k in source["model"] if k.startswith("heat_head.")]
    assert any(not torch.equal(ck["model"][k], source["model"][k]) for k in head), "the head did not train"
    model, cfg, _ = load_checkpoint(tuned)  # export reads it back as the grown network
    assert cfg.heat_blocks == 2 and len(model.heat_refine) == 2
    # A checkpoint with more heat blocks than the config asks for is refused, not cut down.
    with pytest.raises(ValueError, match=r"heat_blocks \(2 there, 0 here\)"):
        run(load_config(None, TINY), str(small_dataset), tmp_path / "less", init=tuned)


def test_a_bundle_carries_its_training_weights_so_the_shipped_model_can_be_fine_tuned(
    tiny_bundle: Path, tiny_checkpoint: Path, small_dataset: Path, data_dir: Path, tmp_path: Path
):
    import shutil

    from hades_training.train import train

    m = open_bundle(tiny_bundle)
    weights = tiny_bundle / m.raw["lineage"]["weights_file"]
    assert m.raw["files"][weights.name]["sha256"], "the weights are not among the bundle's checked files"
    still = load_config(None, [*TINY, "lr=1e-12", "weight_decay=0"])
    tuned = train(still, str(small_dataset), tmp_path / "ft", split="train", val_split="val", init=tiny_bundle)
    source, ck = (torch.load(p, weights_only=False) for p in (tiny_checkpoint, tuned))
    for k, w in source["model"].items():
        if w.is_floating_point() and "running_" not in k:  # stored in fp16: equal to its precision
            assert torch.allclose(ck["model"][k], w, rtol=1e-3, atol=1e-4), k
    assert ck["init_from"]["path"] == str(tiny_bundle.resolve())
    assert ck["init_from"]["mlflow_run_id"] == source["mlflow_run_id"]

    old = tmp_path / "old-bundle"  # exported before bundles carried their weights
    shutil.copytree(tiny_bundle, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["lineage"]["weights_file"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="carries no training weights"):
        train(still, str(small_dataset), tmp_path / "ft2", split="train", val_split="val", init=old)


def test_the_torch_engine_runs_in_mixed_precision_and_answers_in_float32(tiny_checkpoint: Path):
    """The PyTorch engine that validates training (and is the GPU benchmark's fp16 reference)
    under autocast: bf16 on this CPU, fp16 on a GPU; the pipeline always reads float32."""
    from hades_training.export import load_checkpoint
    from hades_training.manifest_spec import HEAT_TENSOR, SEG_TENSOR
    from hades_training.torch_engine import TorchEngine

    model, _, _ = load_checkpoint(tiny_checkpoint)
    x = np.random.default_rng(0).normal(size=(1, 3, 64, 64)).astype(np.float32)
    full = TorchEngine(model, torch.device("cpu"), SEG_TENSOR, HEAT_TENSOR)
    mixed = TorchEngine(model, torch.device("cpu"), SEG_TENSOR, HEAT_TENSOR, autocast=torch.bfloat16)
    assert (full.name, full.precision) == ("torch:cpu", "fp32")
    assert (mixed.name, mixed.precision) == ("torch:cpu:bf16", "bf16")
    a, b = full.run(x), mixed.run(x)
    for name in (SEG_TENSOR, HEAT_TENSOR):
        assert b[name].dtype == np.float32 and b[name].shape == a[name].shape
        assert not np.array_equal(a[name], b[name])  # it did run in bf16
        np.testing.assert_allclose(b[name], a[name], atol=0.1 * float(np.abs(a[name]).max()) + 0.05)
