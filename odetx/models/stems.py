"""How a ViT turns an image into tokens, selected by ``model.stem``.

``patch`` cuts the image into ``model.patch_size`` squares and projects each one
(Dosovitskiy et al. 2021). ``conv`` is the convolutional tokenizer of CCT
(Hassani et al. 2021, "Escaping the Big Data Paradigm with Compact
Transformers"): ``model.stem_layers`` blocks of a 3×3 convolution, ReLU and a
3×3 max-pool of stride 2, each halving the side (rounding up). Its locality and
translation equivariance are what a ViT otherwise has to learn from data, so it
is the stem for small image sets: on 3,600 MNIST digits it is the difference
between a transformer that needs many epochs and one that learns in a few.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise

from torch import nn

from odetx.config import ModelConfig
from odetx.registry import Registry

CONV_WIDTH = 64  # channels of the tokenizer's inner blocks (CCT's in_planes)
MAX_CONV_LAYERS = 8  # 2^8 = 256: past the side of any image odetx reads


@dataclass(frozen=True)
class Stem:
    """One way to tokenize an image.

    Args:
        build: ``(in_chans, model) -> module`` mapping ``(B, C, H, W)`` images to a
            ``(B, dim, h, w)`` grid whose cells are the tokens.
        side: ``(image_size, model) -> h``, the grid's side.
        params: ``(in_chans, dim, patch_size, stem_layers) -> parameters``, in floats so
            that an absurd size gives a large number, never an OverflowError.
        misfit: ``(image_size, model) -> message``, or ``None`` when the image fits.
    """

    name: str
    build: Callable[[int, ModelConfig], nn.Module]
    side: Callable[[int, ModelConfig], int]
    params: Callable[[float, float, float, int], float]
    misfit: Callable[[int, ModelConfig], str | None]
    description: str


def _patch_misfit(size: int, model: ModelConfig) -> str | None:
    if size % model.patch_size:
        return f"{model.patch_size} does not tile the {size}x{size} images"
    return None


PATCH = Stem(
    "patch",
    build=lambda c, m: nn.Conv2d(c, m.dim, kernel_size=m.patch_size, stride=m.patch_size),
    side=lambda size, m: size // m.patch_size,
    params=lambda c, d, p, layers: c * p * p * d + d,
    misfit=_patch_misfit,
    description="non-overlapping model.patch_size squares, each projected (ViT)",
)


def conv_widths(in_chans: float, dim: float, layers: int) -> list[float]:
    """Channels into and out of each block of the convolutional tokenizer."""
    return [in_chans] + [CONV_WIDTH] * (layers - 1) + [dim]


class ConvTokenizer(nn.Sequential):
    """``layers`` × (3×3 conv without bias, ReLU, 3×3 max-pool of stride 2), CCT's tokenizer."""

    def __init__(self, in_chans: int, dim: int, layers: int) -> None:
        blocks: list[nn.Module] = []
        for c_in, c_out in pairwise(conv_widths(in_chans, dim, layers)):
            conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")  # as CCT initialises it
            blocks += [conv, nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1)]
        super().__init__(*blocks)


CONV = Stem(
    "conv",
    build=lambda c, m: ConvTokenizer(c, m.dim, m.stem_layers),
    side=lambda size, m: -(-size // 2**m.stem_layers),  # each pool rounds up
    params=lambda c, d, p, layers: sum(9 * a * b for a, b in pairwise(conv_widths(c, d, layers))),
    misfit=lambda size, m: None,  # pooling rounds up: any side gives at least one token
    description="CCT's convolutional tokenizer: model.stem_layers × (conv 3×3, ReLU, "
    "max-pool /2); for small image sets",
)

STEMS: Registry[Stem] = Registry("stem")
STEMS.register("patch", PATCH)
STEMS.register("conv", CONV)
