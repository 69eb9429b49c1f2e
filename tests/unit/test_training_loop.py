"""The training loop's randomness per rank, its learning-rate schedule and gradient
clipping: with the real train() on small synthetic plates, a few steps each."""

from __future__ import annotations

import contextlib
import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import hades_training.train as tr
from hades_training.config import load_config
from tests.conftest import TINY


def test_epoch_rng_is_a_function_of_seed_rank_and_epoch_alone():
    def draw(seed: int, rank: int, epoch: int) -> tuple[list[int], list[float]]:
        rng = tr.epoch_rng(seed, rank, epoch)
        return rng.integers(1 << 30, size=8).tolist(), torch.rand(4).tolist()

    assert draw(0, 1, 3) == draw(0, 1, 3)  # a resumed run re-derives the very same streams
    for other in ((0, 0, 3), (0, 1, 4), (1, 1, 3)):
        a, b = draw(0, 1, 3), draw(*other)
        assert a[0] != b[0] and a[1] != b[1], f"numpy or torch stream shared with {other}"


class _StopError(Exception):
    pass


def _stop_after_first_epoch(epoch: int, score: float, summary: dict[str, Any]) -> None:
    raise _StopError


def _train_as_rank(monkeypatch: pytest.MonkeyPatch, rank: int, world: int, *args: Any, **kwargs: Any) -> list[str]:
    """train() as process `rank` of `world` without a process group (DDP wrapping and
    teardown are what a real group adds); returns a fingerprint of every batch it drew."""
    drawn: list[str] = []
    real_make_batch = tr.make_batch

    def make_batch(*a: Any, **k: Any) -> tuple[torch.Tensor, ...]:
        batch = real_make_batch(*a, **k)
        drawn.append(hashlib.sha256(batch[0].numpy().tobytes()).hexdigest()[:16])
        return batch

    with monkeypatch.context() as m:
        m.setattr(tr, "_distributed", lambda: (rank, world))
        m.setattr(tr, "DistributedDataParallel", lambda model: model)
        m.setattr(tr.dist, "destroy_process_group", lambda: None)
        m.setattr(tr, "make_batch", make_batch)
        with contextlib.suppress(_StopError):
            tr.train(*args, **kwargs)
    return drawn


def test_after_a_resume_each_rank_draws_its_own_batches_the_same_as_without_the_stop(
    small_dataset: Path, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    cfg = load_config(None, [*TINY, "epochs=2"])
    steps = cfg.steps_per_epoch
    common = {"split": "train", "val_split": "val"}
    data = str(small_dataset)
    # Rank 0 (the one that writes checkpoints) stops after epoch 1; both ranks resume from its last.pt.
    first = _train_as_rank(monkeypatch, 0, 2, cfg, data, tmp_path / "r0", on_epoch=_stop_after_first_epoch, **common)
    last = tmp_path / "r0" / "checkpoints" / "last.pt"
    assert len(first) == steps and torch.load(last, weights_only=False)["epoch"] == 0
    resumed = {
        rank: _train_as_rank(monkeypatch, rank, 2, cfg, data, tmp_path / f"resumed{rank}", resume=last, **common)
        for rank in (0, 1)
    }
    whole = {
        rank: _train_as_rank(monkeypatch, rank, 2, cfg, data, tmp_path / f"whole{rank}", **common) for rank in (0, 1)
    }

    assert not set(resumed[0]) & set(resumed[1]), "ranks drew the same batches after the resume"
    assert not set(whole[0]) & set(whole[1]), "ranks drew the same batches"
    for rank in (0, 1):
        assert resumed[rank] == whole[rank][steps:], f"rank {rank} drew other batches after the resume"
    assert first == whole[0][:steps]


def _old_cosine(cfg: Any) -> list[float]:
    """The LambdaLR schedule train() used before lr_at, for comparison."""
    total = cfg.epochs * cfg.steps_per_epoch
    warm = min(100, total // 10 + 1)
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    out = []
    for _ in range(total + 1):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("steps", [3, 90, 2000])
def test_the_cosine_schedule_is_the_one_training_had_before(steps: int):
    cfg = load_config(None, [f"steps_per_epoch={steps}", "epochs=2", "lr=3e-3"])
    assert [tr.lr_at(s, cfg) for s in range(2 * steps + 1)] == _old_cosine(cfg)


def test_lr_schedules_warm_up_then_decay_or_hold():
    cosine = load_config(None, ["epochs=10", "steps_per_epoch=100", "lr=1e-3"])
    constant = load_config(None, ["epochs=10", "steps_per_epoch=100", "lr=1e-3", "lr_schedule=constant"])
    total, warmup = 1000, 100
    for cfg in (cosine, constant):
        ramp = [tr.lr_at(s, cfg) for s in range(warmup)]
        assert ramp == sorted(ramp) and ramp[0] == pytest.approx(1e-5)
    assert [tr.lr_at(s, constant) for s in (warmup - 1, 500, total - 1)] == [1e-3] * 3
    decay = [tr.lr_at(s, cosine) for s in range(warmup, total + 1)]
    assert decay == sorted(decay, reverse=True) and decay[-1] == 0.0
    assert tr.lr_at(total // 2, cosine) == pytest.approx(1e-3 * 0.5, rel=0.02)


@pytest.mark.parametrize(("schedule", "clip"), [("cosine", "0"), ("constant", "0.05")])
def test_train_steps_with_the_scheduled_lr_and_clips_gradients_when_asked(
    schedule: str,
    clip: str,
    small_dataset: Path,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
):
    cfg = load_config(None, [*TINY, f"lr_schedule={schedule}", f"grad_clip={clip}"])
    norms_after: list[float] = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip_grad_norm_(params: Any, max_norm: float, *a: Any, **k: Any) -> torch.Tensor:
        params = list(params)
        total = real_clip(params, max_norm, *a, **k)
        norms_after.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))))
        return total

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_grad_norm_)
    best = tr.train(cfg, str(small_dataset), tmp_path / "run", split="train", val_split="val")
    ck = torch.load(best.parent / "last.pt", weights_only=False)
    assert ck["config"]["lr_schedule"] == schedule and ck["config"]["grad_clip"] == float(clip)
    assert ck["optimizer"]["param_groups"][0]["lr"] == tr.lr_at(ck["step"] - 1, cfg)  # the last step's lr
    if cfg.grad_clip == 0:
        assert norms_after == []
    else:
        assert len(norms_after) == cfg.steps_per_epoch
        assert np.all(np.array(norms_after) <= cfg.grad_clip * (1 + 1e-4))
