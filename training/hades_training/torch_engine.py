"""A PyTorch model behind the serving pipeline's Engine protocol.

Lets training validate every epoch through exactly the pipeline a node runs
(crop, tiling, stitching, decoding), before any ONNX file exists.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TorchEngine:
    def __init__(self, model: nn.Module, device: torch.device, seg_tensor: str, heat_tensor: str) -> None:
        self.model, self.device = model, device
        self.seg_tensor, self.heat_tensor = seg_tensor, heat_tensor
        self.name = f"torch:{device.type}"
        self.precision = "fp32"

    @torch.no_grad()
    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        was_training = self.model.training
        self.model.eval()
        try:
            seg, heat = self.model(torch.from_numpy(inputs).to(self.device))
        finally:
            self.model.train(was_training)
        return {self.seg_tensor: seg.float().cpu().numpy(), self.heat_tensor: heat.float().cpu().numpy()}
