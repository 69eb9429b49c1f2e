"""HadesNet's architecture knobs (depthwise, light_full_res, heat_blocks): the default network is the one
existing checkpoints hold, the variants are smaller with the same outputs, and the knobs
travel in the training config, which old checkpoints' configs still satisfy."""

from __future__ import annotations

import hashlib

import pytest
import torch

from hades_training.config import TrainConfig, load_config
from hades_training.model import HadesNet, build, grow_heat, parameter_count

# Computed with the network before the knobs existed (git HEAD of training/hades_training/model.py,
# HadesNet(4, 3, 16): the default config's 4 classes and 3 landmark kinds, width 16).
DEFAULT_PARAMETERS = 1_439_031
DEFAULT_STATE_KEYS = 138
# sha256 of "\n".join(f"{key}:{tuple(shape)}") over its state_dict, in order.
DEFAULT_STATE_SHA256 = "47812301aa0e8b2a41603c7862378335f2ecfb4c735a337b1e0963efb54e9fd7"


def _state_signature(model: torch.nn.Module) -> str:
    text = "\n".join(f"{k}:{tuple(v.shape)}" for k, v in model.state_dict().items())
    return hashlib.sha256(text.encode()).hexdigest()


def _outputs(model: HadesNet) -> tuple[torch.Size, torch.Size]:
    with torch.no_grad():
        seg, heat = model.eval()(torch.zeros(1, 3, 64, 64))
    return seg.shape, heat.shape


def test_the_default_network_is_the_one_existing_checkpoints_hold():
    for model in (HadesNet(4, 3, 16), HadesNet(4, 3, 16, depthwise=False, light_full_res=False)):
        assert parameter_count(model) == DEFAULT_PARAMETERS
        assert len(model.state_dict()) == DEFAULT_STATE_KEYS
        assert _state_signature(model) == DEFAULT_STATE_SHA256


def test_a_default_state_dict_loads_strictly_into_a_default_network():
    HadesNet(4, 3, 16).load_state_dict(HadesNet(4, 3, 16).state_dict(), strict=True)
    with pytest.raises(RuntimeError):  # and a variant's does not, rather than loading half of it
        HadesNet(4, 3, 16).load_state_dict(HadesNet(4, 3, 16, depthwise=True).state_dict(), strict=True)


@pytest.mark.parametrize(
    "knobs", [{"depthwise": True}, {"light_full_res": True}, {"depthwise": True, "light_full_res": True}]
)
def test_variants_are_smaller_with_the_default_outputs(knobs: dict[str, bool]):
    torch.manual_seed(0)
    variant = HadesNet(4, 3, 16, **knobs)
    assert parameter_count(variant) < DEFAULT_PARAMETERS
    assert _outputs(variant) == _outputs(HadesNet(4, 3, 16)) == ((1, 4, 64, 64), (1, 3, 16, 16))


def test_depthwise_keeps_the_stems_first_conv_plain_and_separates_the_others():
    model = HadesNet(4, 3, 8, depthwise=True)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    full = [m for m in convs if m.groups == 1]
    # the stem's first conv and the heatmap head's 3x3 conv (not a block) stay full convs
    assert model.stem[0] in full and model.heat_head[0] in full and len(full) == 2
    assert all(m.groups == m.in_channels == m.out_channels for m in convs if m not in full)


def test_light_full_res_has_one_conv_at_stride_1():
    convs = [m for m in HadesNet(4, 3, 8, light_full_res=True).up0.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 1 and convs[0].in_channels == 16 and convs[0].out_channels == 8


def test_the_knobs_round_trip_through_the_config():
    cfg = load_config(None, ["depthwise=true", "light_full_res=yes", "width=24"])
    assert cfg.depthwise is True and cfg.light_full_res is True
    again = TrainConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.depthwise is True and again.light_full_res is True


def test_an_old_config_without_the_knobs_still_loads_as_the_default_network():
    old = TrainConfig().to_dict()
    del old["depthwise"], old["light_full_res"]
    cfg = TrainConfig.from_dict(old, "old checkpoint: config")
    assert cfg.depthwise is False and cfg.light_full_res is False


def test_heat_blocks_grown_from_a_checkpoint_compute_what_it_did_until_trained():
    torch.manual_seed(0)
    plain = HadesNet(4, 3, 8).eval()
    grown = HadesNet(4, 3, 8, heat_blocks=2).eval()
    missing = grow_heat(grown, plain.state_dict())
    assert missing and all(k.startswith("heat_refine.") for k in missing)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain(x), grown(x), strict=True):
            assert torch.equal(a, b)
    assert parameter_count(grown) > parameter_count(plain)


def test_a_checkpoint_that_does_not_fit_beyond_the_heat_blocks_is_refused():
    with pytest.raises(RuntimeError, match="beyond its heat blocks"):
        grow_heat(HadesNet(4, 3, 8, heat_blocks=1), HadesNet(4, 3, 8, depthwise=True).state_dict())


def test_heat_blocks_and_train_only_round_trip_through_the_config_and_bad_values_are_refused():
    cfg = load_config(None, ["heat_blocks=2", "train_only=heat"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg and build(cfg).heat_blocks == 2
    with pytest.raises(ValueError, match=r"heat_blocks must be 0 or more.*train_only must be one of all, heat"):
        load_config(None, ["heat_blocks=-1", "train_only=seg"])
