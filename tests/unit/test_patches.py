"""Training patches (hades_training/patches.py): where they are cut (landmark kinds
sampled evenly, so the few primary tips are not outnumbered by lateral tips), and the
condensation drop painted ahead of a root tip as a hard negative, and what it leaves
alone."""

from __future__ import annotations

import numpy as np
import pytest

from hades_perception.inference.geometry import Frame
from hades_training.config import load_config
from hades_training.patches import Augment, augment, drop_on_tip, sample_patch
from hades_training.targets import Prepared

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


class TestWherePatchesAreCut:
    """A plate has five primary tips and dozens of lateral tips: drawn point by point, a
    patch centred on a landmark is seldom centred on a primary tip."""

    @staticmethod
    def plate() -> Prepared:
        """1024 px square: one primary tip (kind 0) top left, 20 lateral tips (kind 1) and a
        seed (kind 2) along the bottom, where all the foreground is."""
        heat = np.zeros((3, 256, 256), np.float32)
        heat[0, 25, 25] = 1.0  # the primary tip at model px (100, 100)
        laterals = [(900, 40 + 45 * i) for i in range(20)]
        points = np.array([(100, 100), *laterals, (950, 500)], np.int32)
        kinds = np.array([0] + [1] * 20 + [2], np.int32)
        focus = np.array([(900, x) for x in range(0, 1024, 8)], np.int32)
        return Prepared(
            "plate", np.zeros((1024, 1024, 3), np.uint8), np.zeros((4, 1024, 1024), np.float32), heat,
            np.ones(4, bool), focus, points, Frame(0, 0, 1.0), (0, 0, 1024, 1024), kinds,
        )  # fmt: skip

    def share_with_the_primary_tip(self, balance: bool) -> float:
        rng, item = np.random.default_rng(0), self.plate()
        draws = [sample_patch(rng, item, 256, STRIDE, focus_p=1.0, balance_kinds=balance)[2] for _ in range(3000)]
        return float(np.mean([h[0].max() == 1.0 for h in draws]))

    def test_balanced_each_kind_is_a_landmark_patch_centre_as_often(self):
        # 40 % of patches centre on a landmark; a third of those on the primary tip.
        assert self.share_with_the_primary_tip(balance=True) == pytest.approx(0.4 / 3, abs=0.03)

    def test_point_by_point_the_one_primary_tip_gets_a_share_of_twenty_two(self):
        assert self.share_with_the_primary_tip(balance=False) == pytest.approx(0.4 / 22, abs=0.01)

    def test_balancing_is_off_unless_asked_for(self):
        assert load_config(None, []).balance_kinds is False
        assert load_config(None, ["balance_kinds=true"]).balance_kinds is True
