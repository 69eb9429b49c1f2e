"""Training configuration: plain values, a YAML file over the defaults, then
`--set key=value` overrides from the command line (nanoGPT style).

Every value, from the file or from `--set`, is converted by the type of its
TrainConfig field (int, float, bool, str, tuple[str, ...], dict): `lr=1e-3` is a
float, `amp=off` the string "off", and `epochs=2.5` an error that names the key,
the type it expects and the value it got."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hades_perception.inference.landmarks import REQUIRED_KINDS
from hades_training.data.sample import HADES_CLASSES

EXPERIMENT = "hades-perception"  # the MLflow experiment and Optuna study, unless told otherwise


@dataclass
class TrainConfig:
    # data
    classes: tuple[str, ...] = HADES_CLASSES
    kinds: tuple[str, ...] = REQUIRED_KINDS
    crop: str = "dish"  # "dish" or "none" (RootNav photographs have no dish)
    scale: float = 0.5  # model px per image px
    # model (see hades_training/model.py; benchmarks/architecture_sweep.py weighs them)
    width: int = 16
    depthwise: bool = False  # depthwise-separable 3x3 convs (all but the stem's first)
    light_full_res: bool = False  # one conv instead of two in the stride-1 decoder level
    heat_blocks: int = 0  # residual blocks in front of the heatmap head (grown from a checkpoint without them)
    train_only: str = "all"  # "heat": train the heatmap head (and its blocks) alone, the rest frozen
    # targets
    heat_sigma: float = 1.5  # heatmap cells
    # optimisation
    patch: int = 256
    batch: int = 8
    epochs: int = 12
    steps_per_epoch: int = 100
    lr: float = 2e-3  # peak learning rate
    lr_schedule: str = "cosine"  # see LR_SCHEDULES
    grad_clip: float = 0.0  # max global gradient norm; 0 = no clipping
    weight_decay: float = 1e-4
    heat_weight: float = 1.0
    dice_weight: float = 1.0
    focus_p: float = 0.7
    balance_kinds: bool = False  # landmark patch centres drawn kind first (patches.sample_patch)
    tip_drop_p: float = 0.0  # chance per patch of a condensation drop painted just ahead of a root tip (patches.py)
    primary_heat_weight: float = 1.0  # the primary-tip heatmap's weight in the landmark loss (the others: 1)
    ema_decay: float = 0.0  # validate, checkpoint and export an exponential moving average of the weights; 0 = off
    seed: int = 0
    amp: str = "auto"  # auto: bf16/fp16 on CUDA, off on CPU
    # serving (written to the manifest at export)
    tile: int = 768
    tile_overlap: int = 64
    mask_threshold: float = 0.5
    landmark_threshold: float = 0.3
    low_confidence: float = 0.5
    nms_radius_px: float = 24.0
    plants: int = 5
    # bookkeeping
    experiment: str = EXPERIMENT
    val_max_items: int = 8  # full-plate validation each epoch on at most this many items
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        problems = []
        if not 0 < self.scale <= 1:
            problems.append(f"scale must be in (0, 1], got {self.scale}")
        if self.patch % 16 or self.patch < 32:
            problems.append(f"patch must be a multiple of 16 and at least 32, got {self.patch}")
        if self.tile % 16 or self.tile < self.patch:
            problems.append(f"tile must be a multiple of 16 and at least the patch size, got {self.tile}")
        if not 0 <= self.tile_overlap < self.tile // 2:
            problems.append(f"tile_overlap must be in [0, tile/2), got {self.tile_overlap}")
        for name in ("batch", "epochs", "steps_per_epoch", "width", "plants"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            problems.append(f"lr must be positive, got {self.lr}")
        if self.lr_schedule not in LR_SCHEDULES:
            problems.append(f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, got {self.lr_schedule!r}")
        if self.seed < 0:
            problems.append(f"seed must be 0 or more, got {self.seed}")
        if not self.grad_clip >= 0:
            problems.append(f"grad_clip must be 0 (off) or positive, got {self.grad_clip}")
        for name in ("mask_threshold", "landmark_threshold", "low_confidence", "focus_p", "tip_drop_p"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if not 0 <= self.ema_decay < 1:
            problems.append(f"ema_decay must be in [0, 1) (0: off), got {self.ema_decay}")
        if not self.primary_heat_weight > 0:
            problems.append(f"primary_heat_weight must be positive, got {self.primary_heat_weight}")
        if self.heat_blocks < 0:
            problems.append(f"heat_blocks must be 0 or more, got {self.heat_blocks}")
        if self.train_only not in TRAIN_ONLY:
            problems.append(f"train_only must be one of {', '.join(TRAIN_ONLY)}, got {self.train_only!r}")
        if self.crop not in ("dish", "none"):
            problems.append(f"crop must be 'dish' or 'none', got {self.crop!r}")
        if self.amp not in ("auto", "off", "fp16", "bf16"):
            problems.append(f"amp must be auto, off, fp16 or bf16, got {self.amp!r}")
        if problems:
            raise ValueError("impossible training config: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["classes"], d["kinds"] = list(self.classes), list(self.kinds)
        return d

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> TrainConfig:
        """A validated config from a mapping (a YAML file, a checkpoint's `config`, tuning),
        each value converted by its field's type; `source` names where it came from in errors."""
        fields = field_types()
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{source}: unknown config keys {unknown}; valid keys: {', '.join(sorted(fields))}")
        cfg = cls(**{k: convert(k, v, fields[k], source) for k, v in values.items()})
        cfg.validate()
        return cfg


#: What `train_only` may name: the whole network, or the heatmap head alone (its blocks
#: included), the rest frozen (BatchNorm statistics too), so the masks stay exactly the
#: checkpoint's while the detector is retrained.
TRAIN_ONLY = ("all", "heat")

#: Learning-rate schedules by name (hades_training.train.lr_at computes them): both warm
#: up linearly over min(100, 10 % of the steps), then "cosine" decays to 0 by the last
#: step and "constant" stays at `lr`.
LR_SCHEDULES = ("cosine", "constant")

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def field_types() -> dict[str, Any]:
    """TrainConfig's field names and their (resolved) types."""
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) and not typing.get_args(tp) else str(tp).replace("typing.", "")


def convert(key: str, value: Any, tp: Any, source: str = "config") -> Any:
    """`value` (YAML text, or an already-typed Python value) as type `tp`, or a ValueError
    naming the key, the expected type and the value."""

    def bad(why: str = "") -> ValueError:
        return ValueError(f"{source}: {key} expects {_type_name(tp)}, got {value!r}{why}")

    origin = typing.get_origin(tp)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad(" (true or false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        raise bad(" (a whole number)")
    if tp is float:
        number = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                number = float(value.strip())
        if isinstance(number, float) and math.isfinite(number):
            return number
        raise bad(" (a finite number)")
    if tp is str:
        if isinstance(value, str):
            return value
        raise bad()
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise bad(" (a list such as [a, b])")
        args = typing.get_args(tp)
        item = args[0] if args else Any
        try:
            items = [v if item is Any else convert(key, v, item, source) for v in value]
        except ValueError:
            raise bad(f" (a list of {_type_name(item)})") from None
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise bad(" (a mapping such as {a: 1})")
        return value
    raise TypeError(f"config field {key} has type {_type_name(tp)}, which convert() does not know")


def _parse(text: str, tp: Any, source: str) -> Any:
    """YAML text as untyped strings, lists and mappings (`convert` types them), except for
    free-form mappings (`extra`), whose values are read as YAML reads them."""
    try:
        if typing.get_origin(tp) is dict:
            return yaml.safe_load(text)
        return yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from exc


def load_config(path: Path | str | None = None, overrides: list[str] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at `path`, then `--set KEY=VALUE` overrides (VALUE in
    YAML syntax: `lr=1e-3`, `classes=[root, seed]`), each value converted by its field's
    type. YAML 1.1's own typing is not used: it reads `1e-3` as a string and `off` as false."""
    fields = field_types()
    values: dict[str, Any] = {}
    if path:
        text = Path(path).read_text()
        loaded = _parse(text, str, str(path)) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: expected a mapping of config keys")
        unknown = sorted(set(loaded) - set(fields))
        if unknown:
            raise ValueError(f"{path}: unknown config keys {unknown}; valid keys: {', '.join(sorted(fields))}")
        for key, raw in loaded.items():
            if typing.get_origin(fields[key]) is dict:
                raw = _parse(text, fields[key], str(path))[key]
            values[key] = convert(key, raw, fields[key], str(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"--set expects key=value, got {item!r}")
        if key not in fields:
            raise ValueError(f"--set {item}: unknown config key {key!r}; valid keys: {', '.join(sorted(fields))}")
        source = f"--set {item}"
        parsed = _parse(raw, fields[key], source) if raw.strip() else raw
        values[key] = convert(key, parsed, fields[key], source)
    return TrainConfig.from_dict(values)
