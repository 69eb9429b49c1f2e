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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

SIZE_DIVISOR = 16
HEAT_STRIDE = 4


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class _Up(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int) -> None:
        super().__init__()
        self.block = _block(cin + cskip, cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))


class HadesNet(nn.Module):
    def __init__(self, n_classes: int = 4, n_kinds: int = 3, width: int = 16) -> None:
        super().__init__()
        c = width
        self.n_classes, self.n_kinds, self.width = n_classes, n_kinds, width
        self.stem = _block(3, c)  # stride 1
        self.enc1 = _block(c, 2 * c)  # 2
        self.enc2 = _block(2 * c, 4 * c)  # 4
        self.enc3 = _block(4 * c, 8 * c)  # 8
        self.enc4 = _block(8 * c, 8 * c)  # 16
        self.context = nn.Sequential(_block(8 * c, 8 * c, dilation=2), _block(8 * c, 8 * c, dilation=4))
        self.up3 = _Up(8 * c, 8 * c, 4 * c)  # 8
        self.up2 = _Up(4 * c, 4 * c, 2 * c)  # 4
        self.up1 = _Up(2 * c, 2 * c, c)  # 2
        self.up0 = _Up(c, c, c)  # 1
        self.seg_head = nn.Conv2d(c, n_classes, 1)
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
        return self.seg_head(d1), self.heat_head(d4)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
