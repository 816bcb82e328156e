"""Image files as the tensors a model reads: one decoder for image folders and ``odetx predict``.

Files are decoded by ``torchvision.io.decode_image`` (PNG, JPEG, GIF, WebP), then
made the model's channel count and scaled to [0, 1] by the range of the decoded
type: 8-bit images by 255, 16-bit PNGs by 65,535, so a 16-bit PNG and its 8-bit
copy give the same tensor to rounding. Colour modes are converted by meaning,
never by position: every file is decoded as colour (so a palette image is read as
its colours, and grey as three equal channels), an alpha channel is dropped, and
colour becomes grey here, by ITU-R BT.601 luma (Y = 0.299 R + 0.587 G + 0.114 B,
libjpeg's weights) in float: the same for every format (torchvision's GIF and WebP
decoders ignore a request for grey; its PNG one rounds down), and without an 8-bit
rounding of 16-bit images. An animated GIF is read as its first frame; a JPEG's EXIF orientation is
applied. Anything else (an empty file, a truncated one, a BMP, a text file) is a
:class:`~odetx.errors.DataError` whose message says why in a few words.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from odetx.errors import DataError

# Suffixes listed as images in a folder, lower-cased; what ``decode_image`` reads.
SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp")
FORMATS = "PNG, JPEG, GIF or WebP"
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601, as libjpeg weighs R, G, B
# Colour images whose channels all lie this close (as a share of the range) count as grey:
# a grey picture saved as colour JPEG comes back with channels a level or two apart.
GREY_TOLERANCE = 2 / 255


def _decode(data: Tensor) -> Tensor:
    from torchvision.io import ImageReadMode, decode_image

    with warnings.catch_warnings():  # torchvision's notice that torchcodec supersedes it
        warnings.simplefilter("ignore")
        return decode_image(data, mode=ImageReadMode.RGB, apply_exif_orientation=True)


def luma(x: Tensor) -> Tensor:
    """``(3, H, W)`` colour as ``(1, H, W)`` grey (BT.601 weights; float in, float out)."""
    weights = torch.tensor(LUMA, dtype=x.dtype).view(3, 1, 1)
    return (x * weights).sum(0, keepdim=True)


def to_channels(x: Tensor, channels: int) -> Tensor:
    """Float ``(C, H, W)`` with C of 1 (grey), 2 (grey and alpha), 3 (RGB) or 4 (RGBA) as
    ``channels`` (1 or 3): alpha dropped, colour to luma, grey repeated."""
    if x.shape[0] in (2, 4):
        x = x[: x.shape[0] - 1]
    if x.shape[0] == channels:
        return x
    if channels == 1:
        return luma(x)
    return x.expand(3, -1, -1).contiguous()


def scale(image: Tensor) -> Tensor:
    """Decoded integers as float32 in [0, 1], divided by their type's maximum (255 for
    uint8, 65,535 for uint16); floats are taken as they are."""
    if image.dtype.is_floating_point:
        return image.float()
    return image.float() / torch.iinfo(image.dtype).max


def decode(data: bytes | bytearray | Tensor, channels: int) -> Tensor:
    """The image in ``data`` (a file's bytes) as float32 ``(channels, H, W)`` in [0, 1].

    Raises:
        DataError: the bytes are empty or not an image torchvision decodes.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if len(data) == 0:
        raise DataError("empty file (0 bytes)")
    raw = data if isinstance(data, Tensor) else torch.frombuffer(bytearray(data), dtype=torch.uint8)
    try:
        image = _decode(raw)
    except RuntimeError:  # torchvision says "unsupported format" and corrupt files alike
        raise DataError(f"not an image that decodes ({FORMATS})") from None
    if image.ndim == 4:  # an animated GIF: (frames, C, H, W)
        image = image[0]
    if image.ndim != 3 or image.shape[0] not in (1, 2, 3, 4) or min(image.shape[1:]) < 1:
        raise DataError(f"decodes to an array of shape {tuple(image.shape)}, not an image")
    return to_channels(scale(image), channels)


def resize(x: Tensor, size: int) -> Tensor:
    """``(C, H, W)`` float as ``(C, size, size)``: bilinear with antialiasing (the aspect
    ratio is not kept); the image itself when it already has that size."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True)[0]


def read_file(path: Path) -> bytes:
    """``path``'s bytes; a DataError with the OS's words when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise DataError(f"cannot read it ({e.strerror or e})") from None


def read_image(path: str | Path, channels: int, size: int) -> Tensor:
    """The image file ``path`` as float32 ``(channels, size, size)`` in [0, 1].

    Raises:
        DataError: the file cannot be read or does not decode (the message does not
            repeat the path: callers name the file their own way).
    """
    return resize(decode(read_file(Path(path)), channels), size)


def is_grey(x: Tensor) -> bool:
    """Whether float ``(3, H, W)`` in [0, 1] holds a grey picture (channels equal to within
    :data:`GREY_TOLERANCE`)."""
    return bool(((x - x.mean(0, keepdim=True)).abs() <= GREY_TOLERANCE).all())
