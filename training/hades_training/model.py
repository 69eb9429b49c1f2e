"""HadesNet: one small U-Net that predicts multi-label masks and landmark heatmaps.

Why this shape:
- The model sees the dish crop at half resolution (manifest input.scale = 0.5):
  a 2820 px dish becomes 1410 px. Resizing ground-truth masks down and back up
  loses little (root IoU 0.985 at best, measured on synthetic plates), and it
  quarters the compute, which matters on 2 CPU cores and a Jetson.
- Masks come out at the model's full input resolution (stride 1) with sigmoid
  per class, because classes overlap (occluded root under a shoot) and thin
  laterals are 1-2 px wide at this scale. The pipeline resizes the logits
  bilinearly to the crop before thresholding, so edges stay sub-pixel.
- Heatmaps come out at stride 4 from a decoder level that still has context:
  telling a primary tip from a lateral tip needs hundreds of pixels of view,
  which the dilated bottleneck at stride 16 provides (receptive field about
  400 model px, 800 image px).
- Plain torch only (no torchvision/timm), BatchNorm + ReLU, bilinear upsampling:
  everything exports to ONNX with dynamic height and width (multiples of 16).
- Two knobs trade accuracy for CPU time (benchmarks/architecture_sweep.py measures
  both; the defaults are the network above, so old checkpoints load unchanged):
  `depthwise` makes every 3x3 conv but the stem's first a depthwise 3x3 + pointwise
  1x1 pair (about 8x fewer MACs and weights per conv, less capacity per layer), and
  `light_full_res` gives the stride-1 decoder level, about 30 % of the MACs, one
  3x3 conv instead of two (less refinement of the thin-root edges).
- `heat_blocks` puts that many residual 3x3 blocks (dilations 1, 2, 1, 2, ...) in front
  of the heatmap head, at stride 4 where they cost little (about 2 % of the network's
  MACs each): more capacity for what the plant step leans on most, telling a primary
  root's tip from a lateral's and seeing a faint one (docs/training.md). Their last conv
  starts at zero, so a network grown from a checkpoint without them (`grow_heat`)
  computes exactly what that checkpoint did until training moves them.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

SIZE_DIVISOR = 16
HEAT_STRIDE = 4


def _conv3(cin: int, cout: int, dilation: int, depthwise: bool) -> nn.Module:
    """A 3x3 conv without bias (BatchNorm follows), or its depthwise-separable
    counterpart: a 3x3 conv per input channel, then a 1x1 conv that mixes them."""
    if not depthwise:
        return nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False)
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
        nn.Conv2d(cin, cout, 1, bias=False),
    )


def _block(
    cin: int,
    cout: int,
    dilation: int = 1,
    *,
    depthwise: bool = False,
    plain_first: bool = False,
    convs: int = 2,
) -> nn.Sequential:
    """`convs` x (3x3 conv + BatchNorm + ReLU); with `depthwise`, the convs are
    depthwise-separable except the first when `plain_first` (the stem's, on 3 channels)."""
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [
            _conv3(cin if i == 0 else cout, cout, dilation, depthwise and not (i == 0 and plain_first)),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class _Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, *, depthwise: bool = False, convs: int = 2) -> None:
        super().__init__()
        self.block = _block(cin + cskip, cout, depthwise=depthwise, convs=convs)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class _Residual(nn.Module):
    """x + conv1x1(ReLU(BN(conv3x3(x)))), the 1x1 starting at zero: the identity until trained."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
        )
        last = self.body[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class HadesNet(nn.Module):
    def __init__(
        self,
        n_classes: int = 4,
        n_kinds: int = 3,
        width: int = 16,
        *,
        depthwise: bool = False,
        light_full_res: bool = False,
        heat_blocks: int = 0,
    ) -> None:
        super().__init__()
        c, dw = width, depthwise
        self.n_classes, self.n_kinds, self.width = n_classes, n_kinds, width
        self.depthwise, self.light_full_res, self.heat_blocks = depthwise, light_full_res, heat_blocks
        self.stem = _block(3, c, depthwise=dw, plain_first=True)  # stride 1
        self.enc1 = _block(c, 2 * c, depthwise=dw)  # 2
        self.enc2 = _block(2 * c, 4 * c, depthwise=dw)  # 4
        self.enc3 = _block(4 * c, 8 * c, depthwise=dw)  # 8
        self.enc4 = _block(8 * c, 8 * c, depthwise=dw)  # 16
        self.context = nn.Sequential(
            _block(8 * c, 8 * c, dilation=2, depthwise=dw), _block(8 * c, 8 * c, dilation=4, depthwise=dw)
        )
        self.up3 = _Up(8 * c, 8 * c, 4 * c, depthwise=dw)  # 8
        self.up2 = _Up(4 * c, 4 * c, 2 * c, depthwise=dw)  # 4
        self.up1 = _Up(2 * c, 2 * c, c, depthwise=dw)  # 2
        self.up0 = _Up(c, c, c, depthwise=dw, convs=1 if light_full_res else 2)  # 1
        self.seg_head = nn.Conv2d(c, n_classes, 1)
        # No module at all without blocks: the default network's state keys stay as they were.
        self.heat_refine = nn.Sequential(*(_Residual(2 * c, 1 + i % 2) for i in range(heat_blocks)))
        self.heat_head = nn.Sequential(
            nn.Conv2d(2 * c, 2 * c, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(2 * c, n_kinds, 1)
        )
        # Start heatmaps and masks near "nothing here": most pixels are background.
        heat_out = self.heat_head[-1]
        assert isinstance(heat_out, nn.Conv2d) and heat_out.bias is not None and self.seg_head.bias is not None
        nn.init.constant_(heat_out.bias, -4.6)
        nn.init.constant_(self.seg_head.bias, -2.0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s1 = self.stem(x)
        s2 = self.enc1(F.max_pool2d(s1, 2))
        s4 = self.enc2(F.max_pool2d(s2, 2))
        s8 = self.enc3(F.max_pool2d(s4, 2))
        s16 = self.context(self.enc4(F.max_pool2d(s8, 2)))
        d8 = self.up3(s16, s8)
        d4 = self.up2(d8, s4)
        d2 = self.up1(d4, s2)
        d1 = self.up0(d2, s1)
        return self.seg_head(d1), self.heat_head(self.heat_refine(d4))


def build(cfg: Any) -> HadesNet:
    """The network a training config (hades_training.config.TrainConfig) describes."""
    return HadesNet(
        len(cfg.classes),
        len(cfg.kinds),
        cfg.width,
        depthwise=cfg.depthwise,
        light_full_res=cfg.light_full_res,
        heat_blocks=cfg.heat_blocks,
    )


#: Parameters a network grown by `heat_blocks` has that its checkpoint may lack.
GROWN_PREFIX = "heat_refine."


def grow_heat(model: HadesNet, state: dict[str, torch.Tensor]) -> list[str]:
    """Load `state` (a checkpoint of the same network with fewer or no heat blocks) into
    `model`: every key it has must fit; the heat blocks it lacks keep their
    identity start. Returns the keys it lacked."""
    missing, unexpected = model.load_state_dict(state, strict=False)
    wrong = list(unexpected) + [k for k in missing if not k.startswith(GROWN_PREFIX)]
    if wrong:
        raise RuntimeError(f"the checkpoint does not fit this network beyond its heat blocks: {wrong[:5]}")
    return list(missing)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
