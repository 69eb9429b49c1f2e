"""Training patches: the condensation drop painted ahead of a root tip as a hard
negative (hades_training/patches.py), and what it leaves alone."""

from __future__ import annotations

import numpy as np
import pytest

from hades_training.config import load_config
from hades_training.patches import Augment, augment, drop_on_tip

STRIDE = 4
TIP = (30, 20)  # heat cell (row, col) of the primary tip
TIP_PX = np.array([(TIP[0] + 0.5) * STRIDE, (TIP[1] + 0.5) * STRIDE])


def _patch(with_tip: bool = True, root_from: str = "above") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    img = np.full((256, 256, 3), 200, np.uint8)
    seg = np.zeros((4, 256, 256), np.float32)
    if root_from == "above":  # a root growing down to the tip
        seg[0, :122, 81:84] = 1.0
    else:  # a root growing right, to the tip
        seg[0, 121:124, :82] = 1.0
    heat = np.zeros((3, 64, 64), np.float32)
    if with_tip:
        heat[0][TIP] = 1.0
    return img, seg, heat


def _drop(seed: int, root_from: str = "above") -> np.ndarray:
    """How much each pixel changed (grey levels) when a drop was painted at the tip."""
    img, seg, heat = _patch(root_from=root_from)
    x = drop_on_tip(np.random.default_rng(seed), img.astype(np.float32), seg[0], heat, (0, 1), STRIDE)
    return np.abs(x - 200.0).max(axis=2)


def _distance_to_tip(mask: np.ndarray) -> np.ndarray:
    yx = np.argwhere(mask)
    return np.hypot(*(yx - TIP_PX).T)


@pytest.mark.parametrize("seed", range(20))
def test_the_drop_lies_just_ahead_of_the_tip_where_the_root_would_grow(seed: int):
    for root_from, axis in (("above", 0), ("left", 1)):
        changed = _drop(seed, root_from)
        # Its near edge lies from over the tip to 12 model px (1.1 mm) past it ...
        assert _distance_to_tip(changed > 0.5).min() <= 14.0
        # ... on the side the root grows towards (down, or right), ...
        centre = np.argwhere(changed > 0.5).mean(axis=0)
        assert centre[axis] > TIP_PX[axis] + 2
        # ... and it is one drop (at most 3.4 mm, 36 model px, in radius), not a wash.
        assert _distance_to_tip(changed > 0.5).max() <= 2 * 36 + 12 + 6


def test_a_patch_without_a_tip_gets_no_drop():
    img, _, heat = _patch(with_tip=False)
    heat[2, 10, 10] = 1.0  # a seed is not a tip
    no_root = np.zeros(img.shape[:2], np.float32)
    x = drop_on_tip(np.random.default_rng(0), img.astype(np.float32), no_root, heat, (0, 1), STRIDE)
    assert np.array_equal(x, img.astype(np.float32))


def test_the_targets_stay_as_they_were_a_drop_is_not_root():
    img, seg, heat = _patch()
    aug = Augment(flip_p=0.0, tip_drop_p=1.0, tip_channels=(0, 1))
    out, seg_out, heat_out = augment(np.random.default_rng(1), img, seg.copy(), heat.copy(), aug)
    assert not np.array_equal(out, img)
    assert np.array_equal(seg_out, seg) and np.array_equal(heat_out, heat)


def test_tip_drops_are_off_unless_asked_for_and_their_chance_is_checked():
    assert load_config(None, []).tip_drop_p == 0.0
    assert load_config(None, ["tip_drop_p=0.3"]).tip_drop_p == 0.3
    with pytest.raises(ValueError, match="tip_drop_p must be in"):
        load_config(None, ["tip_drop_p=1.5"])
