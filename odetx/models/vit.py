"""Vision Transformer backbone (Dosovitskiy et al. 2021; DeiT, Touvron et al. 2021)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from odetx.config import ModelConfig, SolverConfig
from odetx.data.base import DataInfo
from odetx.models.components import final_norm
from odetx.models.fields import init_weights
from odetx.models.ode import ODEStack
from odetx.models.positions import POSITIONS
from odetx.models.stems import STEMS


class ViT(nn.Module):
    """Stem (patches or convolutions), class token, learned positions (or none), ODE stack,
    final norm, linear head."""

    def __init__(self, model: ModelConfig, solver: SolverConfig, info: DataInfo) -> None:
        super().__init__()
        stem = STEMS[model.stem]
        n_patches = stem.side(info.image_size, model) ** 2
        self.patch_embed = stem.build(info.in_chans, model)  # (B, C, H, W) -> (B, dim, h, w)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, model.dim))
        if POSITIONS[model.pos].learned:
            self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + 1, model.dim))
        else:  # model.pos: none (rotary positions are for sequences; the config refuses them)
            self.register_parameter("pos_embed", None)
        self.pos_drop = nn.Dropout(model.dropout)
        self.stack = ODEStack(model, solver)
        self.pool = model.pool
        self.norm = final_norm(model)
        self.head = nn.Linear(model.dim, info.num_classes)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(init_weights)

    def forward(self, images: Tensor) -> Tensor:
        x = self.patch_embed(images).flatten(2).transpose(1, 2)  # (B, N, dim)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # (B, 1, dim)
        x = torch.cat([cls, x], dim=1)  # (B, 1 + N, dim)
        pos = self.pos_embed
        if pos is not None:
            x = x + pos
        x = self.pos_drop(x)
        x = self.norm(self.stack(x))
        pooled = x[:, 1:].mean(dim=1) if self.pool == "mean" else x[:, 0]  # (B, dim)
        return self.head(pooled)  # (B, classes)
