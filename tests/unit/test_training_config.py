"""Training config values are typed by TrainConfig's fields, from `--set` and from YAML files alike."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hades_training.config import TrainConfig, convert, field_types, load_config
from tests.conftest import REPO


def test_set_values_are_converted_by_the_field_type():
    cfg = load_config(
        None,
        [
            "lr=1e-3",  # YAML 1.1 alone reads this as the string "1e-3"
            "scale=1",
            "epochs=3",
            "amp=off",  # and this as False
            "experiment=2024",
            "classes=[root, seed]",
            "extra={note: first try, n: 2}",
        ],
    )
    assert cfg.lr == 1e-3 and type(cfg.lr) is float
    assert cfg.scale == 1.0 and type(cfg.scale) is float
    assert cfg.epochs == 3 and type(cfg.epochs) is int
    assert cfg.amp == "off" and cfg.experiment == "2024"
    assert cfg.classes == ("root", "seed")
    assert cfg.extra == {"note": "first try", "n": 2}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("epochs=2.5", "--set epochs=2.5: epochs expects int, got '2.5'"),
        ("lr=fast", "--set lr=fast: lr expects float, got 'fast'"),
        ("lr=nan", "lr expects float, got 'nan'"),
        ("batch=true", "batch expects int, got 'true'"),
        ("classes=root", r"classes expects tuple\[str, \.\.\.\], got 'root'"),
        ("classes=[root, [seed]]", r"classes expects tuple\[str, \.\.\.\], got \['root', \['seed'\]\]"),
        ("amp=[bf16]", r"amp expects str, got \['bf16'\]"),
        ("extra=3", r"extra expects dict\[str, Any\], got 3"),
        ("classes=[root", "--set classes=\\[root: not valid YAML"),
    ],
)
def test_a_value_of_the_wrong_type_is_refused_naming_key_type_and_value(item: str, message: str):
    with pytest.raises(ValueError, match=message):
        load_config(None, [item])


def test_an_unknown_key_is_refused_with_the_valid_keys():
    with pytest.raises(ValueError, match=r"unknown config key 'learning_rate'; valid keys: .*\blr\b.*\bwidth\b"):
        load_config(None, ["learning_rate=0.1"])


def test_values_from_a_yaml_file_are_typed_the_same_way(tmp_path: Path):
    good = tmp_path / "good.yaml"
    good.write_text("lr: 1e-3\namp: off\nepochs: 4\nclasses: [root, seed]\nextra: {note: x, n: 2}\n")
    cfg = load_config(good, ["epochs=5"])
    assert (cfg.lr, type(cfg.lr), cfg.amp, cfg.epochs) == (1e-3, float, "off", 5)
    assert cfg.classes == ("root", "seed") and cfg.extra == {"note": "x", "n": 2}

    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2.5\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: epochs expects int, got '2\.5'"):
        load_config(bad)
    bad.write_text("learning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad\.yaml: unknown config keys \['learning_rate'\]; valid keys: .*\blr\b"):
        load_config(bad)
    bad.write_text("- lr\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        load_config(bad)


@pytest.mark.parametrize("path", sorted((REPO / "training" / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_configs_load(path: Path):
    cfg = load_config(path)
    assert type(cfg.lr) is float and type(cfg.epochs) is int


def test_booleans_and_numbers_do_not_pass_for_each_other():
    assert convert("flag", "yes", bool) is True and convert("flag", "Off", bool) is False
    assert convert("flag", False, bool) is False
    with pytest.raises(ValueError, match="flag expects bool, got 'maybe'"):
        convert("flag", "maybe", bool)
    with pytest.raises(ValueError, match="n expects int, got True"):
        convert("n", True, int)
    with pytest.raises(ValueError, match="x expects float, got False"):
        convert("x", False, float)
    assert convert("n", " 12 ", int) == 12 and convert("x", 2, float) == 2.0


def test_every_field_converts_its_default_and_a_checkpoint_config_round_trips():
    default = TrainConfig()
    for name, tp in field_types().items():
        assert convert(name, getattr(default, name), tp) == getattr(default, name), name
    cfg = load_config(None, ["lr=1e-3", "classes=[root, seed]", "grad_clip=1"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    older = {k: v for k, v in cfg.to_dict().items() if k not in ("lr_schedule", "grad_clip")}
    assert TrainConfig.from_dict(older).lr_schedule == "cosine"  # checkpoints from before these fields


def test_schedule_and_clipping_values_are_checked():
    with pytest.raises(ValueError, match=r"lr_schedule must be one of cosine, constant, got 'step'"):
        load_config(None, ["lr_schedule=step"])
    with pytest.raises(ValueError, match=r"grad_clip must be 0 \(off\) or positive, got -1\.0"):
        load_config(None, ["grad_clip=-1"])
    with pytest.raises(ValueError, match="seed must be 0 or more, got -1"):
        load_config(None, ["seed=-1"])


def test_the_train_command_reports_a_bad_value_without_a_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
):
    from hades_training.cli import main

    with caplog.at_level(logging.ERROR):
        rc = main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--set", "lr=fast"])
    assert rc == 2
    assert "lr expects float, got 'fast'" in caplog.text
    assert "Traceback" not in capsys.readouterr().err
