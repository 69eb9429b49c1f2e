"""`hades-train export`: checkpoint -> verified, calibrated, versioned model bundle.

Steps, each recorded in the manifest:
  1. ONNX export with dynamic height and width (torch.export / dynamo)
  2. parity of ONNX Runtime against PyTorch on a real plate (max |diff|, mask agreement)
  3. temperature calibration on the validation split, through the pipeline
  4. evaluation of the calibrated bundle on that split (the manifest's metrics)
  5. golden sample, reference statistics for drift, lineage
  6. optional static int8 (QDQ) variant with its accuracy cost
  7. TensorRT FP16 engine when TensorRT and a GPU are present (skipped with a reason otherwise)
Written into a temporary folder and renamed at the end: a failed export leaves nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hades_perception.contract.bundle import Manifest, file_entries, write_manifest
from hades_perception.contract.golden import SEVEN_BIT_WEIGHTS, check_golden, write_golden
from hades_perception.inference.engine import OnnxRuntimeEngine
from hades_perception.inference.landmarks import PRIMARY, SEED, TIP
from hades_perception.inference.pipeline import Pipeline, as_rgb8
from hades_training.calibrate import fit, fit_thresholds
from hades_training.config import EXPERIMENT, TrainConfig
from hades_training.data import DatasetError, open_dataset
from hades_training.data.io import read_rgb
from hades_training.data.sample import Sample
from hades_training.evaluate.scoring import Scorer, headline, tip_radius
from hades_training.manifest_spec import HEAT_TENSOR, INPUT_TENSOR, SEG_TENSOR, manifest_dict
from hades_training.model import SIZE_DIVISOR, HadesNet, build
from hades_training.provenance import dataset_hash, git_commit
from hades_training.tracking import redact

log = logging.getLogger(__name__)
REFERENCE_IMAGES = 56  # training images whose input signals join the validation ones in the drift reference


def load_checkpoint(path: Path) -> tuple[HadesNet, TrainConfig, dict[str, Any]]:
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = TrainConfig.from_dict(ck["config"], f"{path}: config")
    model = build(cfg)
    model.load_state_dict(ck["model"])
    model.eval()
    return model, cfg, ck


def _whole_blocks(n: int) -> int:
    """The largest size <= n the model takes: a multiple of its SIZE_DIVISOR."""
    return n // SIZE_DIVISOR * SIZE_DIVISOR


def export_onnx(model: HadesNet, path: Path, example: torch.Tensor) -> None:
    h = torch.export.Dim("h16", min=2, max=512)
    w = torch.export.Dim("w16", min=2, max=512)
    torch.onnx.export(
        model,
        (example,),
        str(path),
        input_names=[INPUT_TENSOR],
        output_names=[SEG_TENSOR, HEAT_TENSOR],
        dynamic_shapes={"x": {2: SIZE_DIVISOR * h, 3: SIZE_DIVISOR * w}},
        dynamo=True,
        external_data=False,
        optimize=True,
    )


def parity(model: HadesNet, onnx_path: Path, chw: np.ndarray) -> dict[str, Any]:
    """ONNX Runtime vs PyTorch on one real model input."""
    x = chw[None]
    with torch.no_grad():
        t_seg, t_heat = (t.numpy() for t in model(torch.from_numpy(x)))
    eng = OnnxRuntimeEngine(onnx_path, INPUT_TENSOR, ("CPUExecutionProvider",))
    out = eng.run(x)
    o_seg, o_heat = out[SEG_TENSOR], out[HEAT_TENSOR]
    return {
        "input_shape": list(x.shape),
        "max_abs_diff_seg_logits": float(np.abs(o_seg - t_seg).max()),
        "max_abs_diff_heatmap_logits": float(np.abs(o_heat - t_heat).max()),
        "mask_agreement": float(((o_seg > 0) == (t_seg > 0)).mean()),
    }


def reference_stats(preds: list[Any], samples: list[Sample]) -> dict[str, Any]:
    """What inputs and outputs looked like on the validation split, for drift detection."""
    grey_means, grey_stds, hist = [], [], np.zeros(32)
    frac: dict[str, list[float]] = {}
    conf: dict[str, list[float]] = {}
    counts: dict[str, list[int]] = {}
    for p, s in zip(preds, samples, strict=True):
        x0, y0, x1, y1 = p.crop
        g = s.image[y0:y1, x0:x1].mean(axis=2)
        grey_means.append(float(g.mean()))
        grey_stds.append(float(g.std()))
        hist += np.histogram(g, bins=32, range=(0, 256))[0]
        for c, m in p.masks.items():
            frac.setdefault(c, []).append(float(m[y0:y1, x0:x1].mean()))
            conf.setdefault(c, []).append(p.class_confidence[c])
        for kind in {lm.kind for lm in p.landmarks} | {PRIMARY, TIP, SEED}:
            counts.setdefault(kind, []).append(sum(lm.kind == kind for lm in p.landmarks))

    def ms(v: list[float] | list[int]) -> dict[str, float]:
        return {"mean": float(np.mean(v)), "std": float(np.std(v))}

    return {
        "images": len(samples),
        "input": {
            "grey_mean": ms(grey_means),
            "grey_std": ms(grey_stds),
            "grey_histogram_32": (hist / max(hist.sum(), 1)).round(6).tolist(),
        },
        "prediction": {
            "mask_fraction": {c: ms(v) for c, v in frac.items()},
            "class_confidence": {c: ms(v) for c, v in conf.items()},
            "landmarks_per_image": {k: ms(v) for k, v in counts.items()},
        },
    }


def reference_signals(pipe: Pipeline, preds: list[Any], more_images: list[Path]) -> dict[str, list[float]]:
    """Per-frame monitoring signals of the reference frames, what drift is judged against
    (monitoring/drift.py): every signal on the validation predictions, and the input
    signals (which need no model run) also on up to REFERENCE_IMAGES training images, so
    that the input side is known from enough frames to tell drift from chance."""
    out: dict[str, list[float]] = {}
    for p in preds:
        for k, v in p.signals.items():
            out.setdefault(k, []).append(float(f"{v:.7g}"))
    for path in more_images:
        for k, v in pipe.input_signals(as_rgb8(read_rgb(path))).items():
            out.setdefault(k, []).append(float(f"{v:.7g}"))
    return out


def _reference_images(data: str, split: str | None) -> list[Path]:
    """Training images beside the validation split (evenly spaced, at most
    REFERENCE_IMAGES), or none when the data has no train split."""
    if split == "train":
        return []
    try:
        items = open_dataset(data, "train", skip_bad=True).items
    except DatasetError:
        return []
    step = max(1, len(items) // REFERENCE_IMAGES)
    return [item.image for item in items[::step][:REFERENCE_IMAGES]]


def _check_classes(cfg: TrainConfig, sample: Sample, data: str) -> None:
    have = tuple(sample.masks)
    if tuple(cfg.classes) != have:
        raise DatasetError(
            data,
            f"the checkpoint predicts classes {list(cfg.classes)} but the dataset has "
            f"{list(have)}: export with data of the same classes, or retrain",
        )


def export(
    checkpoint: Path,
    out: Path,
    data: str,
    split: str | None,
    *,
    name: str = "hades-seedlings",
    version: str | None = None,
    int8: bool = False,
    tensorrt: bool = True,
    force: bool = False,
    max_items: int = 8,
    tile: int | None = None,
) -> Path:
    """`tile`: the serving tile written to the manifest, instead of the training config's
    (a whole dish in one run is faster, but cost the default model 0.05 root IoU:
    docs/engines.md, "Tile")."""
    model, cfg, ck = load_checkpoint(checkpoint)
    if tile is not None:
        cfg = dataclasses.replace(cfg, tile=tile)
        cfg.validate()
    if out.exists() and not force:
        raise FileExistsError(f"{out} exists: bundles are immutable; choose another --out or pass --force")
    reader = open_dataset(data, split, skip_bad=True)
    samples = [reader[i] for i in range(min(len(reader), max_items))]
    _check_classes(cfg, samples[0], data)
    version = version or datetime.now(UTC).strftime("%Y.%m.%d-%H%M%S")
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        bundle = _build(model, cfg, ck, tmp, samples, reader, data, split, name, version, int8, tensorrt)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("bundle %s %s written to %s", name, version, out)
    _log_to_mlflow(ck, out, bundle)
    return out


def _build(
    model: HadesNet,
    cfg: TrainConfig,
    ck: dict[str, Any],
    tmp: Path,
    samples: list[Sample],
    reader: Any,
    data: str,
    split: str | None,
    name: str,
    version: str,
    int8: bool,
    tensorrt: bool,
) -> dict[str, Any]:
    onnx_path = tmp / "model.onnx"
    t0 = time.perf_counter()
    export_onnx(model, onnx_path, torch.zeros(1, 3, 256, 256))
    log.info("ONNX export in %.1f s (%.1f MB)", time.perf_counter() - t0, onnx_path.stat().st_size / 1e6)

    provisional = Manifest.from_dict(manifest_dict(cfg))
    pipe = Pipeline(provisional, OnnxRuntimeEngine(onnx_path, INPUT_TENSOR, ("CPUExecutionProvider",)))
    chw = pipe.prepare(samples[0].image)[3]
    tile = chw[:, : _whole_blocks(min(chw.shape[1], cfg.tile)), : _whole_blocks(min(chw.shape[2], cfg.tile))]
    par = parity(model, onnx_path, np.ascontiguousarray(tile))
    log.info("parity: %s", par)
    if par["mask_agreement"] < 0.999 or par["max_abs_diff_seg_logits"] > 1e-2:
        raise RuntimeError(f"ONNX output differs from PyTorch beyond tolerance: {par}")

    ppm = samples[0].truth.px_per_mm
    radius = tip_radius(ppm)
    fitted = fit(pipe, samples, radius, seed=cfg.seed)
    draft = manifest_dict(
        cfg,
        name=name,
        version=version,
        seg_temperature=fitted.seg_temperature,
        landmark_temperature=fitted.landmark_temperature,
    )
    draft["calibration"]["mask_thresholds"] = fit_thresholds(Pipeline(Manifest.from_dict(draft), pipe.engine), samples)
    pipe = Pipeline(Manifest.from_dict(draft), pipe.engine)

    scorer = Scorer(cfg.classes)
    preds = []
    for s in samples:
        p = pipe(s.image)
        scorer.add(p, s)
        p.probs = None  # keep memory flat
        preds.append(p)
    metrics = scorer.summary()
    log.info("validation metrics: %s", json.dumps(metrics)[:600])

    golden_img = _golden_input(samples[0].image)
    golden = _golden(tmp, pipe, golden_img)

    extra: dict[str, Any] = {
        "golden": golden,
        "metrics": {
            "dataset": {
                "path": str(Path(data).resolve()),
                "split": split,
                "items": len(samples),
                "sha256": dataset_hash(reader),
            },
            "values": metrics,
        },
        "export": {
            "parity": par,
            "onnx_opset": _opset(onnx_path),
            "exported_at": draft["created_at"],
            "calibration_fit": {"pixels": fitted.pixels, "peaks": fitted.peaks},
        },
        "lineage": {
            "code_commit": ck.get("code_commit"),
            "export_commit": git_commit(),
            "training_data": ck.get("dataset"),
            "config": cfg.to_dict(),
            "mlflow_run_id": ck.get("mlflow_run_id"),
            "mlflow_tracking_uri": ck.get("mlflow_tracking_uri"),
            "checkpoint_epoch": ck.get("epoch"),
            "checkpoint_step": ck.get("step"),
            # which weights these are: the checkpoint's own validation score and the run's best
            # up to it (best.pt has the two equal; a run's last.pt may not)
            "checkpoint_val_score": headline(ck["val_summary"]) if ck.get("val_summary") else None,
            "run_best_val_score": ck.get("best"),
            "init_from": ck.get("init_from"),
            "weights_file": _write_weights(tmp, model, cfg, ck),
        },
        "reference_stats": reference_stats(preds, samples)
        | {"signals": reference_signals(pipe, preds, _reference_images(data, split))},
        "engines": {},
    }
    if int8:
        extra["variants"] = {"model.int8.onnx": _int8(tmp, pipe, samples, cfg, metrics, golden_img)}
    int8_passed = bool(int8 and extra["variants"]["model.int8.onnx"]["gate"]["passed"])
    extra["engines"], extra["tensorrt"] = (
        _tensorrt(tmp, onnx_path, cfg, int8_passed) if tensorrt else ({}, {"skipped": "not requested (--no-tensorrt)"})
    )
    final = {**draft, **extra}
    final["files"] = file_entries(tmp)
    write_manifest(tmp, final)
    # Smoke run of the finished bundle as a node would load it.
    report = check_golden(tmp, Pipeline.from_bundle(tmp, providers=("CPUExecutionProvider",)))
    if not report.ok:
        raise RuntimeError(f"the exported bundle fails its own golden check: {report.problems}")
    return final


#: The training weights a bundle carries, so that `hades-train train --init BUNDLE` can
#: fine-tune the shipped model (on annotated real plates, say) without its run folder.
WEIGHTS_FILE = "weights.pt"


def _write_weights(tmp: Path, model: HadesNet, cfg: TrainConfig, ck: dict[str, Any]) -> str:
    """The network's weights in fp16 (half the size; fine-tuning does not miss the rest of
    fp32's precision) with what `train --init` records of where they came from; no
    optimiser state. Returns the file's name, for the lineage."""
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    keep = ("dataset", "mlflow_run_id", "epoch", "step", "code_commit", "init_from")
    torch.save({"model": state, "config": cfg.to_dict(), **{k: ck.get(k) for k in keep}}, tmp / WEIGHTS_FILE)
    return WEIGHTS_FILE


def _golden(tmp: Path, pipe: Pipeline, image: np.ndarray, precision: str = "fp32") -> dict[str, Any]:
    """The golden outputs of `pipe` (the model file of `precision`) on `image`, timed on a
    second run (the first allocates and tunes); returns the manifest's entry for them."""
    pipe(image)
    t0 = time.perf_counter()
    pred = pipe(image)
    return write_golden(tmp, image, pred, (time.perf_counter() - t0) * 1e3, precision=precision)


def _golden_input(image: np.ndarray) -> np.ndarray:
    """Half-size copy of a validation plate: small enough to ship, a real plate all the same."""
    import cv2

    h, w = image.shape[:2]
    return cv2.resize(as_rgb8(image), (w // 2, h // 2), interpolation=cv2.INTER_AREA)


def _opset(path: Path) -> int:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return int(next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")))


INT8_MAX_IOU_DROP = 0.005  # the int8 gate: no class IoU worse than fp32's by more than this


def _int8(
    tmp: Path, pipe: Pipeline, samples: list[Sample], cfg: TrainConfig, fp32: dict[str, Any], golden_img: np.ndarray
) -> dict[str, Any]:
    """Static QDQ int8, calibrated on whole validation plates at model resolution, its cost
    measured on the same plates, and the gate nodes read before they serve it
    (loading.int8_gate): no class IoU worse by more than INT8_MAX_IOU_DROP and no fewer
    primary tips within 1 mm of the right plant. Tiles cut from a plate's corner (the
    first way) missed its seeds and shoots, and cost seed IoU 0.014; whole plates 0.001.
    Weights in 7 bits (reduce_range): x86 CPUs without VNNI (AVX2 only, as many robot
    PCs) multiply uint8 activations by int8 weights in pairs summed into int16
    (vpmaddubsw), which saturates with full 8-bit weights; there, both ONNX Runtime and
    OpenVINO gave root IoU 0.48-0.51 against fp32's 0.82 on the validation plates, with
    7-bit weights 0.815, the same as on a VNNI machine (docs/engines.md)."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    inputs = []
    for s in samples:
        chw = pipe.prepare(s.image)[3]
        h, w = _whole_blocks(chw.shape[1]), _whole_blocks(chw.shape[2])
        inputs.append(np.ascontiguousarray(chw[None, :, :h, :w]))

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self.it, None)
            return None if x is None else {INPUT_TENSOR: x}

    q_path = tmp / "model.int8.onnx"
    quantize_static(
        str(tmp / "model.onnx"),
        str(q_path),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,  # 7-bit weights: exact on x86 CPUs without VNNI too (see the docstring)
    )
    q_pipe = Pipeline(
        pipe.manifest, OnnxRuntimeEngine(q_path, INPUT_TENSOR, ("CPUExecutionProvider",), precision="int8")
    )
    scorer = Scorer(cfg.classes, calibration=False, lengths=False)
    t_fp, t_q = [], []
    for s in samples:
        t0 = time.perf_counter()
        pipe(s.image)
        t_fp.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        scorer.add(q_pipe(s.image), s)
        t_q.append(time.perf_counter() - t0)
    q = scorer.summary()
    cost = {
        c: (q["segmentation"][c]["iou"] or 0) - (fp32["segmentation"][c]["iou"] or 0)
        for c in q["segmentation"]
        if c in fp32["segmentation"]
    }
    tips = q["plants"]["primary_tip_right_plant_within_1mm"]
    tips_fp32 = fp32["plants"]["primary_tip_right_plant_within_1mm"]
    reasons = [f"{c} IoU {d:+.4f} (gate -{INT8_MAX_IOU_DROP})" for c, d in cost.items() if d < -INT8_MAX_IOU_DROP]
    if tips is not None and tips_fp32 is not None and tips < tips_fp32:
        reasons.append(f"primary tips within 1 mm {tips:.3f} < fp32 {tips_fp32:.3f}")
    gate = {
        "passed": not reasons,
        "reasons": reasons,
        "max_iou_drop": INT8_MAX_IOU_DROP,
        "items": len(samples),
        "tips_within_1mm": tips,
        "tips_within_1mm_fp32": tips_fp32,
    }
    log.info("int8 variant: IoU change %s; gate %s", cost, "passed" if not reasons else f"FAILED: {reasons}")
    golden = _golden(tmp, q_pipe, golden_img, precision="int8")
    return {
        "format": f"QDQ static, per-channel {SEVEN_BIT_WEIGHTS} (reduce_range), uint8 activations; "
        "calibrated on whole validation plates",
        "iou_change": cost,
        "gate": gate,
        "golden": golden,
        "primary_tip_median_px": q["primary_root_tip"].get("median_px"),
        "primary_tip_median_px_fp32": fp32["primary_root_tip"].get("median_px"),
        "latency_s_fp32": float(np.median(t_fp)),
        "latency_s_int8": float(np.median(t_q)),
        "note": "served where it passed its gate: precision auto (the default) on the CPU and OpenVINO providers, "
        "or int8 by name; after its golden check (docs/engines.md)",
    }


def _tensorrt(tmp: Path, onnx_path: Path, cfg: TrainConfig, int8: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """Native engines for this machine's GPU: fp16, and int8 from the int8 variant when
    it passed its gate (`int8`)."""
    try:
        from hades_perception.inference.tensorrt_engine import build_engine, tensorrt_available
    except ImportError as exc:  # pragma: no cover - module is part of the package
        return {}, {"skipped": f"TensorRT support missing: {exc}"}
    ok, why = tensorrt_available()
    if not ok:
        log.info("TensorRT engine not built: %s", why)
        return {}, {"skipped": why}
    engines = dict([build_engine(onnx_path, tmp / "engines", tile=cfg.tile, precision="fp16")])
    skipped = {}
    if int8:
        try:  # the variant's asymmetric uint8 activations may be refused by TensorRT's parser
            key, meta = build_engine(tmp / "model.int8.onnx", tmp / "engines", tile=cfg.tile, precision="int8")
            engines[key] = meta
        except Exception as exc:
            log.warning("TensorRT int8 engine not built: %s", exc)
            skipped["int8"] = f"{type(exc).__name__}: {exc}"[:500]
    return engines, {"built": sorted(engines), **({"skipped": skipped} if skipped else {})}


def _log_to_mlflow(ck: dict[str, Any], out: Path, manifest: dict[str, Any]) -> None:
    """The bundle as an artifact of the training run. A store that cannot be reached
    leaves the bundle valid; the run just lacks it, and we say so."""
    run_id = ck.get("mlflow_run_id")
    if not run_id:
        return
    try:
        import mlflow

        from hades_training.tracking import start_tracking

        start_tracking(ck["config"].get("experiment", EXPERIMENT))
        with mlflow.start_run(run_id=run_id):
            mlflow.log_artifacts(str(out), artifact_path=f"bundle/{manifest['version']}")
            flat = {}
            for c, v in manifest["metrics"]["values"]["segmentation"].items():
                if v["iou"] is not None:
                    flat[f"export_val_iou_{c}"] = v["iou"]
            ece = manifest["metrics"]["values"]["calibration"]["pixel_ece"]
            if ece is not None:
                flat["export_val_pixel_ece"] = ece
            mlflow.log_metrics(flat)
            mlflow.set_tag("hades.bundle_version", manifest["version"])
    except Exception as exc:
        log.warning(
            "bundle not logged to MLflow run %s at %s: %s", run_id, redact(str(ck.get("mlflow_tracking_uri"))), exc
        )
