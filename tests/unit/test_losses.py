"""The landmark loss: each heatmap channel's weight scales its share and nothing else."""

from __future__ import annotations

import pytest
import torch

from hades_training.losses import heat_loss


def test_a_kinds_weight_scales_its_own_channels_share_of_the_landmark_loss():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 16, 16, generator=gen)
    target = torch.rand(2, 3, 16, 16, generator=gen) * 0.9
    target[0, 0, 4, 4] = target[1, 1, 8, 8] = target[0, 2, 12, 3] = 1.0  # one landmark per kind
    n = target.eq(1).sum()

    def share(k: int) -> torch.Tensor:  # channel k's part of the unweighted loss
        only = torch.zeros(3)
        only[k] = 1.0
        return heat_loss(logits, target, kind_weights=only)

    assert heat_loss(logits, target, kind_weights=torch.ones(3)) == pytest.approx(float(heat_loss(logits, target)))
    weighted = heat_loss(logits, target, kind_weights=torch.tensor([3.0, 1.0, 1.0]))
    assert weighted == pytest.approx(float(3 * share(0) + share(1) + share(2)), rel=1e-6)
    assert float(share(0)) > 0 and int(n) == 3


def test_a_weight_of_zero_or_less_is_refused():
    from hades_training.config import TrainConfig

    with pytest.raises(ValueError, match="primary_heat_weight"):
        TrainConfig(primary_heat_weight=0.0).validate()
