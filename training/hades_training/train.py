"""`hades-train train`: one loop a reader can follow top to bottom.

prepare data at model resolution -> for each epoch: random patches, augment,
step (AMP on GPU) -> validate on whole plates through the serving pipeline ->
checkpoint (last, best) -> MLflow metrics. CPU or GPU is chosen automatically;
`torchrun --nproc-per-node N hades-train train ...` runs DDP on N GPUs.
Deterministic for a seed on CPU (same data, same config, same result);
resumable from `last.pt` with the same MLflow run.

Randomness is a function of (seed, rank, epoch) (`epoch_rng`), not state carried
from step to step: a resumed run draws exactly the batches an uninterrupted one
would, on every rank, with nothing per rank to save. The learning rate is a
function of the step (`lr_at`, named by `lr_schedule`); `grad_clip` > 0 clips
the global gradient norm. `ema_decay` > 0 keeps an exponential moving average of the
weights (torch.optim.swa_utils), updated after every step: it is what is validated,
checkpointed as "model" and so exported; the optimised weights ride along for a resume.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from tqdm import tqdm

from hades_perception.contract.bundle import sha256_file
from hades_perception.inference.landmarks import PRIMARY, TIP
from hades_perception.inference.pipeline import Pipeline
from hades_training.config import TrainConfig
from hades_training.data import DatasetError, HadesFolder, RootNavFolder, open_dataset
from hades_training.data.sample import Sample
from hades_training.evaluate.scoring import Scorer, headline
from hades_training.losses import heat_loss, seg_loss
from hades_training.manifest_spec import HEAT_TENSOR, SEG_TENSOR, provisional_manifest
from hades_training.model import HEAT_STRIDE, HadesNet, build, grow_heat, parameter_count
from hades_training.patches import Augment, augment, sample_patch
from hades_training.provenance import dataset_hash, git_commit
from hades_training.targets import Prepared, prepare
from hades_training.torch_engine import TorchEngine
from hades_training.tracking import redact, start_tracking

log = logging.getLogger(__name__)
Reader = HadesFolder | RootNavFolder


@dataclass
class Datasets:
    train: Reader
    val: Reader
    description: dict[str, Any]


def open_datasets(data: str, split: str | None, val_data: str | None, val_split: str | None) -> Datasets:
    train = open_dataset(data, split, skip_bad=True)
    if val_data is None and val_split is None:
        val_split = "valid" if isinstance(train, RootNavFolder) else "val"
    val = open_dataset(val_data or data, val_split, skip_bad=True)
    shared = {i.stem for i in train.items} & {i.stem for i in val.items}
    if shared:
        raise DatasetError(
            data,
            f"{len(shared)} items are in both training and validation data, e.g. "
            f"{sorted(shared)[0]}: split by experiment, never share items",
        )
    desc = {
        "train": {
            "path": str(Path(data).resolve()),
            "split": split,
            "items": len(train),
            "sha256": dataset_hash(train),
            "skipped": [str(e) for e in train.skipped],
        },
        "val": {
            "path": str(Path(val_data or data).resolve()),
            "split": val_split,
            "items": len(val),
            "sha256": dataset_hash(val),
            "skipped": [str(e) for e in val.skipped],
        },
    }
    return Datasets(train, val, desc)


def prepare_all(reader: Reader, cfg: TrainConfig) -> list[Prepared]:
    out = []
    for i in tqdm(range(len(reader)), desc="preparing", unit="img", leave=False):
        s = reader[i]
        missing = [c for c in cfg.classes if c not in s.masks]
        if missing:
            raise DatasetError(s.image_path, f"has no masks for classes {missing} the config trains")
        out.append(
            prepare(s, cfg.classes, cfg.kinds, scale=cfg.scale, crop=cfg.crop, stride=HEAT_STRIDE, sigma=cfg.heat_sigma)
        )
    return out


def epoch_rng(seed: int, rank: int, epoch: int) -> np.random.Generator:
    """This rank's randomness for one epoch: the numpy generator its batches are drawn
    from (returned) and torch's global generator (seeded). Derived from (seed, rank, epoch)
    alone, so ranks draw different batches and a run resumed at an epoch boundary draws
    the same ones as a run that never stopped."""
    seq = np.random.SeedSequence([seed, rank, epoch])
    torch.manual_seed(int(seq.generate_state(1, np.uint64)[0]))
    return np.random.default_rng(seq)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimiser step `step` (0-based) under `cfg.lr_schedule`: a linear
    warmup over min(100, 10 % of the steps), then cosine decay to 0 at the last step
    ("cosine") or `cfg.lr` to the end ("constant")."""
    total = cfg.epochs * cfg.steps_per_epoch
    warmup = min(100, total // 10 + 1)
    factor = min(1.0, (step + 1) / warmup)
    if cfg.lr_schedule == "cosine":
        factor *= 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    elif cfg.lr_schedule != "constant":
        raise ValueError(f"unknown lr_schedule {cfg.lr_schedule!r}")
    return cfg.lr * factor


def make_batch(
    rng: np.random.Generator, items: list[Prepared], cfg: TrainConfig, aug: Augment, device: torch.device
) -> tuple[torch.Tensor, ...]:
    from hades_training.manifest_spec import MEAN, STD

    imgs, segs, heats, ann = [], [], [], []
    for _ in range(cfg.batch):
        item = items[int(rng.integers(len(items)))]
        img, seg, heat = sample_patch(rng, item, cfg.patch, HEAT_STRIDE, cfg.focus_p, cfg.balance_kinds)
        img, seg, heat = augment(rng, img, seg, heat, aug)
        imgs.append(img)
        segs.append(seg)
        heats.append(heat)
        ann.append(item.annotated)
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)
    return (
        x.to(device),
        torch.from_numpy(np.stack(segs)).to(device),
        torch.from_numpy(np.stack(heats)).to(device),
        torch.from_numpy(np.stack(ann)).to(device),
    )


def validate(model: torch.nn.Module, reader: Reader, cfg: TrainConfig, device: torch.device) -> dict[str, Any]:
    """Whole plates through the serving pipeline (torch engine, uncalibrated)."""
    manifest = provisional_manifest(cfg)
    pipe = Pipeline(manifest, TorchEngine(model, device, SEG_TENSOR, HEAT_TENSOR))
    scorer = Scorer(cfg.classes, calibration=False, lengths=False)
    for i in range(min(len(reader), cfg.val_max_items)):
        s: Sample = reader[i]
        scorer.add(pipe(s.image), s)
    return scorer.summary()


def _distributed() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def _device(cfg: TrainConfig) -> tuple[torch.device, torch.dtype | None]:
    """This process's device, and the autocast dtype (None: full fp32)."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not torch.cuda.is_available():
        return torch.device("cpu"), None
    device = torch.device(f"cuda:{local}")
    torch.cuda.set_device(device)
    if cfg.amp == "off":
        return device, None
    bf16 = cfg.amp == "bf16" or (cfg.amp == "auto" and torch.cuda.is_bf16_supported())
    return device, torch.bfloat16 if bf16 else torch.float16


def _log_run_start(
    cfg: TrainConfig, ds: Datasets, model: torch.nn.Module, device: torch.device, world: int, tags: dict[str, str]
) -> None:
    import mlflow

    commit = git_commit()
    mlflow.log_params({k: v for k, v in cfg.to_dict().items() if k != "extra"})
    mlflow.log_params(
        {
            "train_items": len(ds.train),
            "val_items": len(ds.val),
            "device": device.type,
            "world_size": world,
            "parameters": parameter_count(model),
            "code_commit": commit,
        }
    )
    mlflow.log_dict(ds.description, "dataset.json")
    mlflow.set_tags(
        {"hades.train_data_sha256": ds.description["train"]["sha256"][:16], "hades.code_commit": commit, **tags}
    )


#: Config keys that fix the network's shape: a checkpoint to start from must agree on them.
ARCHITECTURE_KEYS = ("classes", "kinds", "width", "depthwise", "light_full_res")
#: ... except heat blocks: a checkpoint with fewer grows them (model.grow_heat).
GROWABLE_KEYS = ("heat_blocks",)


def _init_file(path: Path) -> Path:
    """The weights file of `--init`: a checkpoint, or a model bundle's weights.pt (after
    the bundle's files are checked against its manifest)."""
    if not path.is_dir():
        return path
    from hades_perception.contract.bundle import open_bundle

    manifest = open_bundle(path)
    name = manifest.raw.get("lineage", {}).get("weights_file")
    if not name:
        raise ValueError(f"{path}: this bundle carries no training weights (exported before they were included)")
    return path / name


def _read_init(path: Path, cfg: TrainConfig) -> tuple[Path, dict[str, Any]]:
    """The weights file to fine-tune from (`_init_file`) and its content, read before any
    data is prepared: one of another network shape is refused with the keys that differ
    (a key an older checkpoint lacks counts as its default)."""
    file = _init_file(path)
    ck = torch.load(file, map_location="cpu", weights_only=False)
    theirs = ck.get("config", {})
    defaults = TrainConfig()
    there = {k: theirs.get(k, getattr(defaults, k)) for k in (*ARCHITECTURE_KEYS, *GROWABLE_KEYS)}
    differ = [k for k in ARCHITECTURE_KEYS if _as_config(there[k]) != _as_config(getattr(cfg, k))]
    differ += [k for k in GROWABLE_KEYS if there[k] > getattr(cfg, k)]
    if differ:
        raise ValueError(
            f"{path}: its network differs from this config in "
            + ", ".join(f"{k} ({there[k]!r} there, {getattr(cfg, k)!r} here)" for k in differ)
        )
    return file, ck


def _init_from(model: HadesNet, path: Path, file: Path, ck: dict[str, Any]) -> dict[str, Any]:
    """Load the checkpoint's weights into `model`; returns where they came from (`path`
    as given, the sha256 of the weights `file`, its MLflow run, training data, epoch,
    config, and what it was itself started from), for the new checkpoints, MLflow and
    the bundle's lineage."""
    grown = grow_heat(model, ck["model"])  # a bundle's fp16 weights are copied into fp32 parameters
    log.info("starting from the weights of %s (epoch %s)", path, ck.get("epoch"))
    if grown:
        log.info("%d parameters of new heat blocks start as the identity", len(grown))
    return {
        "path": str(path.resolve()),
        "sha256": sha256_file(file),
        "mlflow_run_id": ck.get("mlflow_run_id"),
        "dataset": ck.get("dataset"),
        "epoch": ck.get("epoch"),
        "config": ck.get("config", {}),
        "init_from": ck.get("init_from"),
    }


def _heat_part(model: HadesNet) -> list[torch.nn.Module]:
    return [model.heat_refine, model.heat_head]


def _trainable(model: HadesNet, cfg: TrainConfig) -> list[torch.nn.Parameter]:
    """The parameters the optimiser moves: all, or with `train_only` "heat" the heatmap
    head's and its blocks' alone (the others' requires_grad turned off)."""
    if cfg.train_only == "all":
        return list(model.parameters())
    keep = {id(p) for m in _heat_part(model) for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return [p for p in model.parameters() if id(p) in keep]


def _freeze_modes(model: HadesNet, cfg: TrainConfig) -> None:
    """After train(): a frozen part back in eval mode, so its BatchNorm statistics do not
    move either (with `train_only` "heat" the masks stay exactly the checkpoint's)."""
    if cfg.train_only == "heat":
        model.eval()
        for m in _heat_part(model):
            m.train()


def _averaged(model: torch.nn.Module, cfg: TrainConfig, resumed: dict[str, Any] | None) -> AveragedModel | None:
    """The moving average of `model`'s weights when `cfg.ema_decay` > 0 (None: off), with
    the buffers (BatchNorm statistics) averaged too; a resumed run's average goes on from
    its checkpoint. The first update copies the weights, so a fine-tune starts its average
    at the weights it starts from."""
    if cfg.ema_decay <= 0:
        return None
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema_decay), use_buffers=True)
    if resumed is not None and "averaged_model" in resumed:
        averaged.load_state_dict(resumed["averaged_model"])
    return averaged


def _as_config(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _epoch_metrics(losses: list[tuple[float, float, float]], summary: dict[str, Any], lr: float) -> dict[str, float]:
    mean = np.mean(losses, axis=0)
    metrics = {"loss": mean[0], "loss_seg": mean[1], "loss_heat": mean[2], "lr": lr, "val_score": headline(summary)}
    for c, v in summary["segmentation"].items():
        if v["iou"] is not None:
            metrics[f"val_iou_{c}"] = v["iou"]
    tips = summary["primary_root_tip"]
    for key in ("median_px", "within_radius"):
        if tips.get(key) is not None:
            metrics[f"val_tip_{key}"] = tips[key]
    return {k: float(v) for k, v in metrics.items()}


def _save(state: dict[str, Any], path: Path) -> None:
    """Written whole or not at all: a crash mid-write leaves the previous file."""
    torch.save(state, path.with_name(path.name + ".tmp"))
    os.replace(path.with_name(path.name + ".tmp"), path)


EpochHook = Callable[[int, float, dict[str, Any]], None]


def train(
    cfg: TrainConfig,
    data: str,
    out: Path,
    *,
    split: str | None = None,
    val_data: str | None = None,
    val_split: str | None = None,
    resume: Path | None = None,
    init: Path | None = None,
    on_epoch: EpochHook | None = None,
    tags: dict[str, str] | None = None,
) -> Path:
    """Train and return the path of the best checkpoint. `on_epoch(epoch, score, summary)`
    runs after each validation (tuning uses it to prune); an exception from it ends
    training after the checkpoint of that epoch is written.

    `init`: start from another run's weights (fine-tuning, e.g. on annotated real plates)
    with a fresh optimiser, schedule and MLflow run; where they came from is kept in the
    checkpoint and so in the exported bundle's lineage. `resume` continues one run instead."""
    if init and resume:
        raise ValueError("init starts a new run from a checkpoint's weights, resume continues its run: give one")
    init_read = _read_init(init, cfg) if init else None
    rank, world = _distributed()
    device, amp_dtype = _device(cfg)
    torch.use_deterministic_algorithms(True, warn_only=True)

    # data
    ds = open_datasets(data, split, val_data, val_split)
    uri = start_tracking(cfg.experiment) if rank == 0 else ""
    t_prep = time.perf_counter()
    items = prepare_all(ds.train, cfg)
    if not any(it.focus.size for it in items):
        raise DatasetError(data, "no foreground in any training item: empty or inconsistent dataset")
    log.info("prepared %d training items in %.1f s", len(items), time.perf_counter() - t_prep)

    # model and optimiser (the learning rate is set every step from lr_at)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = build(cfg).to(device)
    trained = _trainable(model, cfg)
    opt = torch.optim.AdamW(trained, lr=lr_at(0, cfg), weight_decay=cfg.weight_decay)
    scaler = torch.amp.GradScaler(enabled=amp_dtype == torch.float16)
    start_epoch, step, best, run_id = 0, 0, -1.0, None
    init_from = _init_from(model, init, *init_read) if init and init_read else None
    ck: dict[str, Any] | None = None
    if resume:
        ck = torch.load(resume, map_location=device, weights_only=False)
        model.load_state_dict(ck.get("optimised_model", ck["model"]))
        opt.load_state_dict(ck["optimizer"])
        start_epoch, step, best, run_id = ck["epoch"] + 1, ck["step"], ck["best"], ck["mlflow_run_id"]
        init_from = ck.get("init_from")
        log.info("resumed from %s at epoch %d", resume, start_epoch)
    averaged = _averaged(model, cfg, ck)
    served = averaged.module if averaged is not None else model  # validated, checkpointed, exported
    net: torch.nn.Module = DistributedDataParallel(model) if world > 1 else model
    tips = tuple(i for i, k in enumerate(cfg.kinds) if k in (PRIMARY, TIP))
    root = cfg.classes.index("root") if "root" in cfg.classes else 0
    aug = Augment(tip_drop_p=cfg.tip_drop_p, tip_channels=tips, root_channel=root)
    kind_weights = torch.tensor([cfg.primary_heat_weight if k == PRIMARY else 1.0 for k in cfg.kinds], device=device)
    ckdir = out / "checkpoints"
    ckdir.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))

    import mlflow

    run = mlflow.start_run(run_id=run_id) if rank == 0 else None
    try:
        if run is not None and run_id is None:
            _log_run_start(cfg, ds, model, device, world, tags or {})
            if init_from is not None:
                mlflow.log_params({"init_checkpoint": init_from["path"], "init_sha256": init_from["sha256"][:16]})
                if init_from.get("mlflow_run_id"):
                    mlflow.set_tag("hades.init_from_run", init_from["mlflow_run_id"])
        for epoch in range(start_epoch, cfg.epochs):
            # train one epoch
            rng = epoch_rng(cfg.seed, rank, epoch)
            net.train()
            _freeze_modes(model, cfg)
            t0, losses = time.perf_counter(), []
            bar = tqdm(
                range(cfg.steps_per_epoch),
                desc=f"epoch {epoch + 1}/{cfg.epochs}",
                unit="step",
                disable=rank != 0,
                leave=False,
            )
            for _ in bar:
                lr = lr_at(step, cfg)
                for group in opt.param_groups:
                    group["lr"] = lr
                x, seg_t, heat_t, ann = make_batch(rng, items, cfg, aug, device)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                    seg, heat = net(x)
                    l_seg = seg_loss(seg.float(), seg_t, ann, cfg.dice_weight)
                    l_heat = heat_loss(heat.float(), heat_t, kind_weights=kind_weights)
                    loss = l_seg + cfg.heat_weight * l_heat
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if cfg.grad_clip > 0:
                    scaler.unscale_(opt)  # clip the true gradients, not the loss-scaled ones
                    torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
                scaler.step(opt)
                scaler.update()
                if averaged is not None:
                    averaged.update_parameters(model)
                step += 1
                losses.append((loss.item(), l_seg.item(), l_heat.item()))
                bar.set_postfix(loss=f"{np.mean([v[0] for v in losses[-20:]]):.3f}")
            if rank != 0:
                continue
            train_time = time.perf_counter() - t0

            # validate and log (rank 0)
            summary = validate(served, ds.val, cfg, device)
            metrics = _epoch_metrics(losses, summary, lr_at(step, cfg))  # lr: that of the next step
            score = metrics["val_score"]
            mlflow.log_metrics({**metrics, "epoch_seconds": train_time}, step=epoch + 1)
            log.info(
                "epoch %d/%d  loss %.4f (seg %.4f, heat %.4f)  val %s  tip median %s px  score %.3f  %.0f s",
                epoch + 1,
                cfg.epochs,
                metrics["loss"],
                metrics["loss_seg"],
                metrics["loss_heat"],
                " ".join(f"{c}={v['iou']:.3f}" for c, v in summary["segmentation"].items() if v["iou"] is not None),
                summary["primary_root_tip"].get("median_px"),
                score,
                train_time,
            )

            # checkpoint (rank 0): everything a resume needs; randomness comes from epoch_rng
            assert run is not None  # rank 0 has the run
            state = {
                "model": served.state_dict(),
                "optimizer": opt.state_dict(),
                "epoch": epoch,
                "step": step,
                "best": max(best, score),
                "config": cfg.to_dict(),
                "mlflow_run_id": run.info.run_id,
                "mlflow_tracking_uri": redact(uri),
                "dataset": ds.description,
                "code_commit": git_commit(),
                "val_summary": summary,
                "init_from": init_from,
            }
            if averaged is not None:
                state["optimised_model"] = model.state_dict()
                state["averaged_model"] = averaged.state_dict()
            _save(state, ckdir / "last.pt")
            if score > best:
                best = score
                _save(state, ckdir / "best.pt")
            if on_epoch is not None:
                on_epoch(epoch, score, summary)
        if rank == 0:
            mlflow.log_metric("best_val_score", best)
    finally:
        if run is not None:
            mlflow.end_run()
        if world > 1:
            dist.destroy_process_group()
    return ckdir / "best.pt"
