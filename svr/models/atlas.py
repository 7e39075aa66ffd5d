"""AtlasNet-style surface model: image code + K learned patches, each (u, v) -> 3D point.

Each patch is an MLP g_k(u, v, z): the code z enters the first hidden layer by addition
(equivalent to concatenation), then two hidden layers, then 3 outputs squashed by 0.5 * tanh
so that every point lies inside the unit cube. Training: symmetric Chamfer loss (mean squared
nearest distances, both directions) between `points_per_step` generated points (random (u, v)
spread over the patches) and as many ground-truth surface samples. Output: each patch's
regular `grid_size` x `grid_size` (u, v) grid mapped to 3D and triangulated (two triangles
per cell), the patches concatenated into one mesh (not watertight: a surface, not a solid),
plus the mesh vertices as points.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import trimesh
from torch import nn

from svr.data.dataset import Batch
from svr.models.base import ReconstructionModel
from svr.models.encoder import EncoderConfig, ImageEncoder
from svr.types import Prediction

__all__ = ["AtlasConfig", "AtlasDecoder", "AtlasNet", "chamfer_loss", "grid_faces"]


def chamfer_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Symmetric Chamfer distance, mean squared nearest distances both ways, averaged over the
    batch: a (B, P, 3), b (B, Q, 3) -> scalar.

    The nearest neighbours are found without autograd (|a|^2 + |b|^2 - 2 a.b, one batched
    matrix product); the loss is then recomputed exactly on the matched pairs, which has the
    same value and gradient as differentiating through the min but a cheap backward pass."""
    with torch.no_grad():
        aa = (a * a).sum(-1)
        bb = (b * b).sum(-1)
        d = torch.baddbmm(aa[:, :, None] + bb[:, None, :], a, b.transpose(1, 2), alpha=-2.0)
        nn_ab = d.argmin(2)  # (B, P) index into b
        nn_ba = d.argmin(1)  # (B, Q) index into a
    b_match = torch.gather(b, 1, nn_ab[..., None].expand(-1, -1, 3))
    a_match = torch.gather(a, 1, nn_ba[..., None].expand(-1, -1, 3))
    return (a - b_match).square().sum(-1).mean() + (b - a_match).square().sum(-1).mean()


def grid_faces(n: int) -> np.ndarray:
    """Triangles of an n x n vertex grid (row-major, vertex (i, j) = i * n + j): int64 (2 (n-1)^2, 3)."""
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    a = (i * n + j).ravel()
    b, c, d = a + 1, a + n, a + n + 1
    return np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.int64)


@dataclass(frozen=True)
class AtlasConfig(EncoderConfig):
    """AtlasNet: n_patches patches, MLP width hidden, grid_size^2 vertices per patch at output."""

    n_patches: int = 10
    hidden: int = 128
    points_per_step: int = 1200
    grid_size: int = 16
    epochs: int = 4
    batch_size: int = 32


class AtlasDecoder(nn.Module):
    """(uv (B, K, P, 2), code (B, code_dim)) -> points (B, K, P, 3) in (-0.5, 0.5)^3.

    The K patch MLPs are evaluated together with batched weights: activations are laid out
    (K, B * P, C) and each layer is one `baddbmm`."""

    def __init__(self, code_dim: int, n_patches: int, hidden: int):
        super().__init__()
        k, h2 = n_patches, hidden // 2
        self.code_in = nn.Linear(code_dim, k * hidden)
        self.uv_in = nn.Parameter(torch.randn(k, 2, hidden) * (1 / 2**0.5))
        self.w1 = nn.Parameter(torch.randn(k, hidden, hidden) * (2 / hidden) ** 0.5)
        self.b1 = nn.Parameter(torch.zeros(k, 1, hidden))
        self.w2 = nn.Parameter(torch.randn(k, hidden, h2) * (2 / hidden) ** 0.5)
        self.b2 = nn.Parameter(torch.zeros(k, 1, h2))
        self.w3 = nn.Parameter(torch.randn(k, h2, 3) * h2**-0.5)
        self.b3 = nn.Parameter(torch.zeros(k, 1, 3))
        self.k, self.hidden = k, hidden

    def forward(self, uv: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        b, k, p, _ = uv.shape
        c = self.code_in(code).view(b, k, 1, self.hidden).permute(1, 0, 2, 3)  # (K, B, 1, H)
        x = uv.permute(1, 0, 2, 3).reshape(k, b * p, 2)
        h = (torch.bmm(x, self.uv_in).view(k, b, p, self.hidden) + c).relu_().view(k, b * p, -1)
        h = torch.baddbmm(self.b1, h, self.w1).relu_()
        h = torch.baddbmm(self.b2, h, self.w2).relu_()
        out = torch.baddbmm(self.b3, h, self.w3)
        return 0.5 * torch.tanh(out.view(k, b, p, 3).permute(1, 0, 2, 3))


class AtlasNet(ReconstructionModel):
    name = "atlas"
    kind = "encoder-decoder"
    description = (
        "Image encoder + learned surface patches (AtlasNet style), trained with Chamfer loss."
    )
    config_class = AtlasConfig
    target_fields = ("points",)
    representation = "mesh"

    def __init__(self, config: AtlasConfig):
        super().__init__(config)
        if config.grid_size < 2:
            raise ValueError("grid_size must be at least 2")
        self.encoder = ImageEncoder(config.channels, config.code_dim)
        self.decoder = AtlasDecoder(config.code_dim, config.n_patches, config.hidden)
        self.make_view_heads()

    def training_loss(self, batch: Batch) -> torch.Tensor:
        if batch.surface_points is None:
            raise ValueError("the atlas model trains on surface points ('points')")
        code = self.encoder(batch.images)
        k = self.config.n_patches
        per_patch = max(1, self.config.points_per_step // k)
        uv = torch.rand(len(code), k, per_patch, 2, device=code.device)
        pts = self.decoder(uv, code).reshape(len(code), -1, 3)
        return chamfer_loss(pts, batch.surface_points) + self.view_loss(code, batch)

    def predict_batch(self, x: torch.Tensor) -> list[Prediction]:
        code = self.encoder(x)
        n, k = self.config.grid_size, self.config.n_patches
        u = torch.linspace(0, 1, n, device=x.device)
        uv = torch.stack(torch.meshgrid(u, u, indexing="ij"), -1).reshape(1, 1, n * n, 2)
        pts = self.decoder(uv.expand(len(code), k, -1, -1), code).cpu().numpy().astype(np.float64)
        base = grid_faces(n)
        faces = np.concatenate([base + p * n * n for p in range(k)])
        out = []
        for p, view in zip(pts, self.view_info(code, self.mirrored_code(x)), strict=True):
            verts = p.reshape(-1, 3)
            mesh = trimesh.Trimesh(verts, faces, process=False)
            info = {**view, "patches": k}
            out.append(Prediction(self.name, mesh=mesh, points=verts.copy(), info=info))
        return out
