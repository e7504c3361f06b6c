"""The wear classifier: a small fully convolutional network with a score map.

Input: ``N x 3 x S x S`` float32, RGB, normalised with ``MEAN``/``STD``.
Outputs:

- ``score_map`` ``N x 1 x S/8 x S/8``: per-location wear probability (where it looked);
- ``wear_probability`` ``N x 1``: the image's probability, a smooth maximum
  (log-sum-exp pooling) of the per-location logits, so the image is called worn
  when some place in it looks worn.

Every location also sees a summary of the whole image (global average of the
features), which large soft marks such as fading need.
"""

from __future__ import annotations

import math

import torch
from torch import nn

INPUT_SIZE = 128
MAP_STRIDE = 8
MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)
INPUT_NAME = "image"
OUTPUT_NAMES = ("wear_probability", "score_map")
POOL_SHARPNESS = 4.0


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class WearNet(nn.Module):
    def __init__(self, width: int = 24, input_size: int = INPUT_SIZE):
        super().__init__()
        self.log_cells = math.log((input_size // MAP_STRIDE) ** 2)  # log-sum-exp over cells -> log-mean-exp
        w = width
        self.features = nn.Sequential(
            _block(3, w, 2),  # 1/2
            _block(w, 2 * w, 2),  # 1/4
            _block(2 * w, 2 * w),
            _block(2 * w, 4 * w, 2),  # 1/8
            _block(4 * w, 4 * w),
            _block(4 * w, 4 * w, dilation=2),
            _block(4 * w, 5 * w, dilation=4),
        )
        c = 5 * w
        self.context = nn.Sequential(nn.Conv2d(c, c // 2, 1), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Conv2d(c + c // 2, 64, 1), nn.ReLU(inplace=True), nn.Conv2d(64, 1, 1))
        self.pool_scale = nn.Parameter(torch.tensor(1.0))
        self.pool_bias = nn.Parameter(torch.tensor(0.0))
        nn.init.constant_(self.head[-1].bias, -2.0)  # type: ignore[arg-type]  # a Conv2d's bias

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(image logit N x 1, map logits N x 1 x h x w)."""
        f = self.features(x)
        g = self.context(f.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, f.shape[2], f.shape[3])
        m = self.head(torch.cat([f, g], 1))
        flat = m.flatten(1)
        pooled = (torch.logsumexp(POOL_SHARPNESS * flat, dim=1, keepdim=True) - self.log_cells) / POOL_SHARPNESS
        return self.pool_scale * pooled + self.pool_bias, m

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        image_logit, map_logits = self.logits(x)
        return torch.sigmoid(image_logit), torch.sigmoid(map_logits)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
