"""`hades-train pipeline`: new labelled data, a drift report or a schedule in; a gated
candidate on the `canary` channel out, or a recorded refusal. Never production: that
stays a person's decision (`hades-model promote ... --channel production`).

Steps (one MLflow parent run, a child run per step; the decision and its reasons are
recorded in the parent run, in OUT/decision.json and in the store next to the version):
  trigger    run when the new data's content hash was never seen (state file), when a
             drift report says drift, or on a schedule (--schedule: cron, a systemd
             timer or an Azure ML schedule starts it)
  validate   every item of the new data read as training reads it (image, a mask per
             class of the production model, sizes); rejected items listed with the reason
  train      from the production version's config (its manifest's lineage), with
             --set overrides, on the accepted new data
  export     calibrated, golden-checked bundle (the candidate)
  evaluate   candidate and production on the fixed gate set and on the new data, through
             the serving pipeline
  gates      on each set: no class IoU worse than production by more than a margin,
             primary tips within 1 mm not worse, per-pixel ECE within a bound; and the
             candidate's golden sample passes
  publish    only if every gate passes: publish (signed with --sign), promote `canary`,
             mirror the store's versions and channels into the MLflow model registry
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hades_perception.contract.bundle import Manifest
from hades_perception.contract.golden import check_golden
from hades_perception.contract.signing import load_private_key
from hades_perception.inference.pipeline import Pipeline
from hades_perception.models.cache import ModelCache
from hades_perception.models.store import CANARY, PRODUCTION, ModelStore
from hades_training.config import EXPERIMENT, TrainConfig, load_config
from hades_training.data import DatasetError, open_dataset

log = logging.getLogger(__name__)
ACTOR = "hades-train pipeline"


@dataclass(frozen=True)
class Gates:
    """What a candidate must show against production on every evaluated set."""

    iou_margin: float = 0.01  # no class IoU lower than production's by more than this
    tip_margin: float = 0.0  # primary tips within 1 mm: not lower than production's minus this
    max_pixel_ece: float = 0.02  # per-pixel expected calibration error at most this


@dataclass
class PipelineConfig:
    store: str
    model: str
    new_data: Path | str  # a folder, or a blob prefix (azure://container/prefix, file://...)
    gate_data: Path
    out: Path
    gate_split: str | None = "test"
    drift_report: Path | None = None
    schedule: bool = False
    state: Path | None = None  # default OUT/../pipeline-state.json
    state_in_store: bool = False  # keep it in the model store instead (STATE_KEY): a cloud job's disk is gone after it
    overrides: list[str] = field(default_factory=list)
    sign_key: Path | None = None
    gates: Gates = field(default_factory=Gates)
    min_items: int = 2
    dry_run: bool = False

    @property
    def state_file(self) -> Path:
        return self.state or self.out.parent / "pipeline-state.json"

    def describe_state(self) -> str:
        return f"{self.store} {STATE_KEY.format(model=self.model)}" if self.state_in_store else str(self.state_file)


STATE_KEY = "{model}/pipeline/state.json"  # in the model store, with --state-in-store


# --- trigger ------------------------------------------------------------------------------
def data_hash(folder: Path) -> str:
    """sha256 over every file under the folder (relative name and content): the same
    labelled data, wherever it was copied to, has the same hash."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def fetch_new_data(source: str, dest: Path) -> Path:
    """The new labelled data as a local folder: `source` itself when it is a folder, else
    every blob under a store URL's prefix (azure://container/prefix, https://..., file://)
    copied below `dest` (what is already there with the same size is kept)."""
    if "://" not in source:
        return Path(source)
    from hades_perception.models.blobs import open_blobs

    blobs = open_blobs(source)
    keys = blobs.list("")
    if not keys:
        raise ValueError(f"{source}: no blobs under this prefix")
    for key in keys:
        if ".." in Path(key).parts or key.startswith("/"):
            raise ValueError(f"{source}: blob name {key!r} climbs out of its prefix; refused")
        out = dest / key
        if out.is_file() and out.stat().st_size == blobs.size(key):
            continue
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".partial")
        with tmp.open("wb") as f:
            blobs.download(key, f)
        tmp.replace(out)
    log.info("new data: %d blobs from %s in %s", len(keys), blobs.describe(), dest)
    return dest


def trigger(cfg: PipelineConfig, digest: str) -> list[str]:
    """Why this run should go ahead (empty: it should not)."""
    reasons = []
    seen = _load_state(cfg).get("data", {})
    if digest not in seen:
        reasons.append(f"new labelled data {cfg.new_data} (sha256 {digest[:12]}, never trained on)")
    if cfg.drift_report is not None:
        report = json.loads(cfg.drift_report.read_text())
        if report.get("drift_detected"):
            drifted = [s["name"] for s in report.get("signals", []) if s.get("drifted")]
            reasons.append(f"drift report {cfg.drift_report}: drift in {', '.join(drifted) or 'some signal'}")
    if cfg.schedule:
        reasons.append("scheduled run")
    return reasons


def _load_state(cfg: PipelineConfig) -> dict[str, Any]:
    """What data the trigger has seen: from the state file, or from the model store."""
    if cfg.state_in_store:
        from hades_perception.models.blobs import NotFoundError

        try:
            data, _ = ModelStore.open(cfg.store).blobs.read(STATE_KEY.format(model=cfg.model))
        except NotFoundError:
            return {}
        return dict(json.loads(data))
    path = cfg.state_file
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def _remember(cfg: PipelineConfig, digest: str, decision: str) -> None:
    state = _load_state(cfg)
    state.setdefault("data", {})[digest] = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "decision": decision}
    text = json.dumps(state, indent=1)
    if cfg.state_in_store:
        ModelStore.open(cfg.store).blobs.write(STATE_KEY.format(model=cfg.model), text.encode())
        return
    cfg.state_file.parent.mkdir(parents=True, exist_ok=True)
    cfg.state_file.write_text(text)


# --- validate -----------------------------------------------------------------------------
def validate(folder: Path, classes: tuple[str, ...]) -> dict[str, Any]:
    """Each split of the new data (train, val; or the folder itself) read item by item as
    training reads it (image, a mask per class at the image's size, landmarks); what fails
    is rejected with its reason. Training then skips exactly those (it reads with skip_bad)."""
    splits: list[str | None] = [s for s in ("train", "val") if (folder / s / "images").is_dir()] or [None]
    out: dict[str, Any] = {"splits": {}, "accepted": 0, "rejected": []}
    for split in splits:
        try:
            reader = open_dataset(str(folder), split)
        except DatasetError as exc:
            out["rejected"].append({"split": split, "item": str(folder), "reason": str(exc)})
            continue
        accepted = 0
        for i in range(len(reader)):
            try:
                sample = reader[i]
            except DatasetError as exc:
                out["rejected"].append({"split": split, "item": str(exc.path), "reason": exc.problem})
                continue
            if set(sample.masks) != set(classes):
                reason = f"classes {sorted(sample.masks)}, the model has {sorted(classes)}"
                out["rejected"].append({"split": split, "item": sample.stem, "reason": reason})
                continue
            accepted += 1
        out["splits"][split or ""] = accepted
        out["accepted"] += accepted
    return out


# --- gates --------------------------------------------------------------------------------
def gate(candidate: dict[str, Any], production: dict[str, Any], gates: Gates, where: str) -> list[dict[str, Any]]:
    """The gate results of one evaluated set (evaluate's metrics.json, both models)."""
    results = []
    for c, v in candidate["segmentation"].items():
        cand, prod = v.get("iou"), production["segmentation"].get(c, {}).get("iou")
        if cand is None or prod is None:
            continue
        results.append(_result(f"{where}: IoU {c}", cand, prod - gates.iou_margin, cand >= prod - gates.iou_margin))
    ct, pt = candidate["primary_root_tip"].get("within_1mm"), production["primary_root_tip"].get("within_1mm")
    if ct is not None and pt is not None:
        results.append(_result(f"{where}: tips within 1 mm", ct, pt - gates.tip_margin, ct >= pt - gates.tip_margin))
    ece = candidate["calibration"].get("pixel_ece")
    if ece is not None:
        results.append(_result(f"{where}: per-pixel ECE", ece, gates.max_pixel_ece, ece <= gates.max_pixel_ece))
    return results


def _result(name: str, value: float, bound: float, passed: bool) -> dict[str, Any]:
    return {"gate": name, "value": round(float(value), 5), "bound": round(float(bound), 5), "passed": bool(passed)}


# --- MLflow: one parent run, a child per step ----------------------------------------------
class Runs:
    """Parent and child runs through MlflowClient, so that steps which start runs of their
    own (training) can join as children by the mlflow.parentRunId tag."""

    def __init__(self, experiment: str, name: str, tags: dict[str, str]) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        from hades_training.tracking import start_tracking

        start_tracking(experiment)
        self.client = MlflowClient()
        exp = mlflow.get_experiment_by_name(experiment)
        assert exp is not None
        self.experiment_id = exp.experiment_id
        self.parent = self.client.create_run(self.experiment_id, run_name=name, tags=tags).info.run_id

    @contextmanager
    def child(self, step: str) -> Iterator[str]:
        run = self.client.create_run(
            self.experiment_id, run_name=step, tags={"mlflow.parentRunId": self.parent, "hades.pipeline_step": step}
        ).info.run_id
        try:
            yield run
        except BaseException:
            self.client.set_terminated(run, "FAILED")
            raise
        self.client.set_terminated(run, "FINISHED")

    def log(self, run: str, params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None) -> None:
        for k, v in (params or {}).items():
            self.client.log_param(run, k, str(v)[:6000])
        for k, v in (metrics or {}).items():
            self.client.log_metric(run, k, float(v))

    def finish(self, decision: dict[str, Any], out: Path) -> None:
        self.client.set_tag(self.parent, "hades.decision", decision["decision"])
        self.client.set_tag(self.parent, "hades.reasons", "; ".join(decision["reasons"])[:5000])
        self.client.log_artifact(self.parent, str(out / "decision.json"))
        self.client.set_terminated(self.parent, "FAILED" if decision["decision"] == "error" else "FINISHED")


# --- the pipeline ---------------------------------------------------------------------------
def run_pipeline(cfg: PipelineConfig) -> dict[str, Any]:
    """Run (or, with dry_run, plan) the pipeline; the decision document."""
    store = ModelStore.open(cfg.store)
    pointer = store.pointer(cfg.model, PRODUCTION)
    if pointer is None:
        raise ValueError(f"{cfg.model} has no {PRODUCTION} channel in {store.describe()}: nothing to compare with")
    prod_version = pointer[0].version
    prod_manifest = store.manifest(cfg.model, prod_version)
    classes = Manifest.from_dict(prod_manifest).outputs.classes
    cfg.new_data = fetch_new_data(str(cfg.new_data), cfg.out / "new-data")
    digest = data_hash(cfg.new_data)
    decision: dict[str, Any] = {
        "model": cfg.model,
        "production": prod_version,
        "new_data": {"path": str(cfg.new_data), "sha256": digest},
        "gate_data": {"path": str(cfg.gate_data), "split": cfg.gate_split},
        "gates_config": asdict(cfg.gates),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "steps": {},
    }
    cfg.out.mkdir(parents=True, exist_ok=True)
    reasons = trigger(cfg, digest)
    decision["trigger"] = reasons
    if not reasons:
        return _decide(cfg, decision, "skipped", ["no trigger: this data was seen and no drift or schedule"], None)
    checked = validate(cfg.new_data, classes)
    decision["steps"]["validate"] = checked
    trainable = bool(checked["splits"].get("train") or checked["splits"].get(""))
    if checked["accepted"] < cfg.min_items or not trainable:
        why = f"{checked['accepted']} item(s) accepted (at least {cfg.min_items}, in a train split or a flat folder)"
        return _decide(cfg, decision, "rejected", [f"data: {why}"], None, digest)
    if cfg.dry_run:
        plan = [
            f"train from {cfg.model} {prod_version}'s config on {checked['splits']} accepted items"
            + (f" with {cfg.overrides}" if cfg.overrides else ""),
            "export and calibrate the candidate",
            f"evaluate candidate and {prod_version} on {cfg.gate_data} ({cfg.gate_split}) and on the new data",
            f"gates: {asdict(cfg.gates)}; golden sample",
            f"if every gate passes: publish{' signed' if cfg.sign_key else ''} and promote {CANARY}, "
            f"never {PRODUCTION}",
        ]
        decision["plan"] = plan
        return _decide(cfg, decision, "dry-run", reasons, None)

    runs = Runs(
        EXPERIMENT,
        f"retraining pipeline {cfg.model} {datetime.now(UTC):%Y-%m-%d %H:%M}",
        {"hades.pipeline": "retraining", "hades.production_version": prod_version, "hades.new_data_sha256": digest},
    )
    runs.log(runs.parent, {"trigger": "; ".join(reasons), "new_data": cfg.new_data, "gate_data": cfg.gate_data})
    try:
        return _train_and_gate(cfg, store, runs, decision, prod_version, prod_manifest, checked, reasons, digest)
    except Exception as exc:
        decision["error"] = f"{type(exc).__name__}: {exc}"
        return _decide(cfg, decision, "error", [decision["error"]], runs)


def _train_and_gate(
    cfg: PipelineConfig,
    store: ModelStore,
    runs: Runs,
    decision: dict[str, Any],
    prod_version: str,
    prod_manifest: dict[str, Any],
    checked: dict[str, Any],
    reasons: list[str],
    digest: str,
) -> dict[str, Any]:
    from hades_training.evaluate.report import evaluate
    from hades_training.export import export
    from hades_training.train import train

    with runs.child("validate") as run:
        runs.log(run, {"rejected": len(checked["rejected"])}, {"accepted": checked["accepted"]})
        (cfg.out / "validation.json").write_text(json.dumps(checked, indent=1))
        runs.client.log_artifact(run, str(cfg.out / "validation.json"))

    train_cfg = production_config(prod_manifest, cfg.overrides)
    split = "train" if checked["splits"].get("train") else None
    val_split = "val" if checked["splits"].get("val") else None
    t0 = time.perf_counter()
    ckpt = train(
        train_cfg,
        str(cfg.new_data),
        cfg.out / "run",
        split=split,
        val_split=val_split,
        tags={"mlflow.parentRunId": runs.parent, "hades.pipeline_step": "train"},
    )
    decision["steps"]["train"] = {"checkpoint": str(ckpt), "seconds": round(time.perf_counter() - t0, 1)}

    candidate_dir = export(ckpt, cfg.out / "candidate", str(cfg.new_data), val_split or split, force=True)
    candidate = Pipeline.from_bundle(candidate_dir, ("CPUExecutionProvider",))
    version = candidate.manifest.version
    decision["candidate"] = version
    golden = check_golden(candidate_dir, candidate)
    production_dir = ModelCache(cfg.out / "production-cache").fetch(store, cfg.model, prod_version).path

    sets = {"gate set": (cfg.gate_data, cfg.gate_split), "new data": (cfg.new_data, val_split or split)}
    results: list[dict[str, Any]] = []
    for where, (data, data_split) in sets.items():
        scores = {}
        for who, bundle in (("candidate", candidate_dir), ("production", production_dir)):
            with runs.child(f"evaluate {who} on {where}") as run:
                s = evaluate(
                    bundle, str(data), data_split, cfg.out / "evaluations" / f"{who}-{where.replace(' ', '-')}"
                )
                runs.log(run, {"bundle_version": version if who == "candidate" else prod_version}, _flat(s))
                scores[who] = s
        results += gate(scores["candidate"], scores["production"], cfg.gates, where)
    results.append(_result("candidate golden sample", float(golden.ok), 1.0, golden.ok))
    decision["gates"] = results
    failed = [r for r in results if not r["passed"]]
    with runs.child("gates") as run:
        runs.log(run, {"failed": [r["gate"] for r in failed]}, {"gates_passed": float(not failed)})
    if failed:
        why = [f"gate failed: {r['gate']} = {r['value']} (bound {r['bound']})" for r in failed]
        return _decide(cfg, decision, "refused", why, runs, digest)

    with runs.child("publish") as run:
        key = load_private_key(cfg.sign_key) if cfg.sign_key else None
        store.publish(candidate_dir, key)
        summary = f"retraining pipeline: every gate passed against {prod_version} ({len(results)} gates)"
        store.promote(cfg.model, version, CANARY, summary, by=ACTOR)
        runs.log(run, {"version": version, "channel": CANARY, "signed": bool(key)})
        decision["published"] = {"version": version, "channel": CANARY, "signed": bool(key)}
        try:
            from hades_training.registry import mirror

            decision["registry"] = mirror(store, cfg.model)
        except Exception as exc:  # the store is the source of truth; the registry a mirror
            log.warning("MLflow registry not mirrored: %s", exc)
            decision["registry"] = {"error": str(exc)}
    done = _decide(cfg, decision, "promoted-canary", [*reasons, summary], runs, digest)
    store.write_record(cfg.model, version, "pipeline", done)  # for whoever promotes it to production
    return done


def production_config(manifest: dict[str, Any], overrides: list[str]) -> TrainConfig:
    """The production version's training config (its manifest's lineage), with overrides.
    A version fine-tuned from another run's weights (train --init) gives the config of
    the run that started from random weights, since retraining starts from random weights
    too: a fine-tune's few epochs at a low rate would not train a model from nothing."""
    lineage = manifest.get("lineage") or {}
    base = dict(lineage.get("config") or {})
    init = lineage.get("init_from")
    while init:
        base = dict(init.get("config") or base)
        init = init.get("init_from")
    if not base:
        raise ValueError("the production version's manifest has no lineage.config to train from")
    if overrides:
        changed = load_config(None, overrides).to_dict()
        base.update({k: changed[k] for k in {o.partition("=")[0].strip() for o in overrides}})
    return TrainConfig.from_dict(base, "the production version's lineage.config")


def _flat(summary: dict[str, Any]) -> dict[str, float]:
    flat = {f"iou_{c}": v["iou"] for c, v in summary["segmentation"].items() if v.get("iou") is not None}
    if summary["primary_root_tip"].get("within_1mm") is not None:
        flat["tips_within_1mm"] = summary["primary_root_tip"]["within_1mm"]
    if summary["calibration"].get("pixel_ece") is not None:
        flat["pixel_ece"] = summary["calibration"]["pixel_ece"]
    return flat


def _decide(
    cfg: PipelineConfig,
    decision: dict[str, Any],
    verdict: str,
    reasons: list[str],
    runs: Runs | None,
    digest: str | None = None,
) -> dict[str, Any]:
    decision.update(decision=verdict, reasons=reasons, finished_at=datetime.now(UTC).isoformat(timespec="seconds"))
    if runs is not None:
        decision["mlflow_run_id"] = runs.parent
    (cfg.out / "decision.json").write_text(json.dumps(decision, indent=1))
    if runs is not None:
        runs.finish(decision, cfg.out)
    if digest is not None and not cfg.dry_run:
        _remember(cfg, digest, verdict)
    log.info("pipeline decision: %s (%s)", verdict, "; ".join(reasons))
    return decision
