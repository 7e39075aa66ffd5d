"""Voxel encoder-decoder (3D-R2N2 / Pix2Vox family, single view): image -> 32^3 occupancy.

The encoder's code goes through a linear layer to a (C, 4, 4, 4) volume, then three 3D
transposed convolutions (kernel 4, stride 2) up-sample it to 8^3, 16^3 and 32^3 logits.
Loss: binary cross-entropy against the target's 32^3 grid. Output: occupancy probabilities
float32 (32, 32, 32), threshold 0.5 (tuned on nothing: the natural BCE threshold), and their
marching-cubes mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from svr.data.dataset import Batch
from svr.models.base import ReconstructionModel, grid_prediction
from svr.models.encoder import EncoderConfig, ImageEncoder
from svr.types import Prediction

__all__ = ["VoxelConfig", "VoxelDecoder", "VoxelNet"]


@dataclass(frozen=True)
class VoxelConfig(EncoderConfig):
    """Voxel decoder widths: decoder_channels for the 4^3, 8^3 and 16^3 volumes."""

    decoder_channels: tuple[int, ...] = (32, 16, 8)
    threshold: float = 0.5
    lr: float = 2e-3
    weight_decay: float = 1e-5


class VoxelDecoder(nn.Module):
    """Code (B, code_dim) -> logits (B, 32, 32, 32)."""

    def __init__(self, code_dim: int, channels: tuple[int, ...]):
        super().__init__()
        if len(channels) != 3:
            raise ValueError("the voxel decoder needs three widths (4^3, 8^3, 16^3 volumes)")
        c0, c1, c2 = channels
        self.c0 = c0
        self.fc = nn.Linear(code_dim, c0 * 4**3)
        self.up = nn.Sequential(
            nn.ConvTranspose3d(c0, c1, 4, stride=2, padding=1),
            nn.BatchNorm3d(c1),
            nn.ReLU(inplace=True),
            nn.ConvTranspose3d(c1, c2, 4, stride=2, padding=1),
            nn.BatchNorm3d(c2),
            nn.ReLU(inplace=True),
            nn.ConvTranspose3d(c2, 1, 4, stride=2, padding=1),
        )
        # start at the prior of ShapeNet-like grids (about 10% occupied) instead of 50%:
        # the first hundred steps would otherwise only learn this marginal
        nn.init.constant_(self.up[-1].bias, -2.0)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.fc(code)).view(len(code), self.c0, 4, 4, 4)
        return self.up(x)[:, 0]


class VoxelNet(ReconstructionModel):
    name = "voxel"
    kind = "encoder-decoder"
    description = (
        "Image encoder + 3D up-convolution decoder to a 32^3 occupancy grid (3D-R2N2 style)."
    )
    config_class = VoxelConfig
    target_fields = ("vox32",)
    representation = "voxels"

    def __init__(self, config: VoxelConfig):
        super().__init__(config)
        self.encoder = ImageEncoder(config.channels, config.code_dim)
        self.decoder = VoxelDecoder(config.code_dim, config.decoder_channels)
        self.make_view_heads()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits float32 (B, 32, 32, 32) of network inputs (B, 3, S, S)."""
        return self.decoder(self.encoder(x))

    def training_loss(self, batch: Batch) -> torch.Tensor:
        if batch.vox32 is None:
            raise ValueError("the voxel model trains on 32^3 grids ('vox32')")
        code = self.encoder(batch.images)
        loss = nn.functional.binary_cross_entropy_with_logits(self.decoder(code), batch.vox32)
        return loss + self.view_loss(code, batch)

    def predict_batch(self, x: torch.Tensor) -> list[Prediction]:
        code = self.encoder(x)
        probs = torch.sigmoid(self.decoder(code)).cpu().numpy().astype(np.float32)
        return [
            grid_prediction(
                self.name,
                p,
                self.config.threshold,
                {**view, "occupied_share": float((p >= 0.5).mean())},
            )
            for p, view in zip(probs, self.view_info(code, self.mirrored_code(x)), strict=True)
        ]
