"""A PyTorch model behind the serving pipeline's Engine protocol.

Lets training validate every epoch through exactly the pipeline a node runs
(crop, tiling, stitching, decoding), before any ONNX file exists.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class TorchEngine:
    """`autocast` (e.g. torch.float16 on a GPU) runs the model in mixed precision; the
    outputs come back as float32 either way."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        seg_tensor: str,
        heat_tensor: str,
        autocast: torch.dtype | None = None,
    ) -> None:
        self.model, self.device, self.autocast = model, device, autocast
        self.seg_tensor, self.heat_tensor = seg_tensor, heat_tensor
        names = {None: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}
        if autocast not in names:
            raise ValueError(f"autocast {autocast}: expected torch.float16, torch.bfloat16 or None")
        self.precision = names[autocast]
        self.name = f"torch:{device.type}" + (f":{self.precision}" if autocast is not None else "")

    @torch.no_grad()
    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.autocast(self.device.type, dtype=self.autocast, enabled=self.autocast is not None):
                seg, heat = self.model(torch.from_numpy(inputs).to(self.device))
        finally:
            self.model.train(was_training)
        return {self.seg_tensor: seg.float().cpu().numpy(), self.heat_tensor: heat.float().cpu().numpy()}
