"""Losses: BCE + soft Dice for overlapping classes, CenterNet focal loss for heatmaps.

Soft targets (the area fraction of a class in each model pixel) teach the
model where a 1-2 px lateral really is at half resolution; Dice keeps the
rare classes (seed, occluded root) from being drowned by agar pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812


def seg_loss(logits: torch.Tensor, target: torch.Tensor, annotated: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """logits/target (N, C, H, W); annotated (N, C) bool: classes without ground
    truth in an item (e.g. shoot in RootNav) do not count."""
    mask = annotated[:, :, None, None].float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    bce = (bce * mask).sum() / mask.expand_as(bce).sum().clamp(min=1)
    # Dice per class over the whole batch, not per patch: most patches hold no seed,
    # and a per-patch Dice rewards predicting nothing there (seeds then vanish).
    p = torch.sigmoid(logits) * mask
    t = target * mask
    inter = (p * t).sum(dim=(0, 2, 3))
    denom = p.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (denom + 1)
    present = annotated.any(dim=0).float()
    dice = (dice * present).sum() / present.sum().clamp(min=1)
    return bce + dice_weight * dice


def heat_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    alpha: float = 2.0,
    beta: float = 4.0,
    kind_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Penalty-reduced focal loss (CenterNet): cells near a landmark are punished less for
    firing. `kind_weights` (K,): each heatmap channel's share, 1 for all by default."""
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** alpha * pos
    neg_loss = torch.log(1 - p) * p**alpha * (1 - target) ** beta * neg
    n = pos.sum().clamp(min=1)
    per_cell = pos_loss + neg_loss
    if kind_weights is not None:
        per_cell = per_cell * kind_weights.to(per_cell)[None, :, None, None]
    return -per_cell.sum() / n
