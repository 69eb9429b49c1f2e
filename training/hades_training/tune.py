"""`hades-train tune`: an Optuna study over the training config.

Every trial is a short training run (its own MLflow run, tagged with the study
and trial), pruned by the median rule on the per-epoch validation score. The
study lives in sqlite by default, so it can be resumed or inspected, and
several workers can share it (the study is created before any worker starts).
The best parameters are written to a YAML file that `train --config` reads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from hades_training.config import TrainConfig, load_config
from hades_training.tracking import data_dir

log = logging.getLogger(__name__)


def suggest(trial: Any, base: TrainConfig) -> dict[str, Any]:
    """The search space: what plausibly matters for thin roots and tip accuracy."""
    return {
        "lr": trial.suggest_float("lr", 3e-4, 5e-3, log=True),
        "width": trial.suggest_categorical("width", [12, 16, 24]),
        "heat_sigma": trial.suggest_float("heat_sigma", 1.0, 2.5),
        "dice_weight": trial.suggest_float("dice_weight", 0.3, 2.0),
        "heat_weight": trial.suggest_float("heat_weight", 0.5, 2.0),
        "focus_p": trial.suggest_float("focus_p", 0.5, 0.9),
    }


def tune(
    data: str,
    out: Path,
    trials: int,
    *,
    split: str | None,
    val_split: str | None,
    config: str | None,
    overrides: list[str],
    study_name: str,
    storage: str | None,
    seed: int = 0,
) -> dict[str, Any]:
    import optuna

    from hades_training.train import train

    base = load_config(config, overrides)
    storage = storage or f"sqlite:///{data_dir() / 'optuna.db'}"
    Path(data_dir()).mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(
        study_name=study_name,
        storage=storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
    )

    def objective(trial: optuna.Trial) -> float:
        cfg = TrainConfig.from_dict({**base.to_dict(), **suggest(trial, base)}, f"trial {trial.number}")
        scores: list[float] = []

        def report(epoch: int, score: float, summary: dict[str, Any]) -> None:
            scores.append(score)
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1} (score {score:.3f})")

        train(
            cfg,
            data,
            out / f"trial-{trial.number:03d}",
            split=split,
            val_split=val_split,
            on_epoch=report,
            tags={"hades.optuna_study": study_name, "hades.optuna_trial": str(trial.number)},
        )
        return max(scores) if scores else 0.0

    study.optimize(objective, n_trials=trials)
    best = {"value": study.best_value, "trial": study.best_trial.number, "params": study.best_params}
    out.mkdir(parents=True, exist_ok=True)
    (out / "best_params.yaml").write_text(yaml.safe_dump({**study.best_params}, sort_keys=True))
    log.info(
        "best trial %d: score %.4f with %s (written to %s)",
        best["trial"],
        best["value"],
        best["params"],
        out / "best_params.yaml",
    )
    return best
