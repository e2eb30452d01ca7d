"""Batched image preprocessing on tensors, on whatever device the batch lives on.

The CIFAR recipe of the reference (torchvision ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``), done for a whole batch
at once with tensor indexing instead of one PIL image at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def to_float_normalised(images_uint8_nhwc: torch.Tensor, mean: Sequence[float],
                        std: Sequence[float]) -> torch.Tensor:
    """x = (images / 255 - mean) / std per channel, as NCHW float32.

    The result is a permuted view of NHWC memory, i.e. NCHW in the channels_last memory
    format, which is what convolutions on CUDA prefer; call ``.contiguous()`` for NCHW memory.
    """
    images = images_uint8_nhwc
    if images.ndim != 4 or images.dtype != torch.uint8:
        raise ValueError(f"images_uint8_nhwc must be a uint8 tensor [N, H, W, C], got "
                         f"{images.dtype} of shape {tuple(images.shape)}")
    channels = images.shape[-1]
    mean_t = _per_channel(mean, channels, images.device, "mean")
    std_t = _per_channel(std, channels, images.device, "std")
    if not bool((std_t > 0).all()):
        raise ValueError(f"std must be positive for every channel, got {list(std)}")
    scaled = images.permute(0, 3, 1, 2).float()
    return (scaled - (255.0 * mean_t).view(1, -1, 1, 1)) / (255.0 * std_t).view(1, -1, 1, 1)


def _per_channel(values, channels: int, device, name: str) -> torch.Tensor:
    tensor = torch.as_tensor(values, dtype=torch.float32, device=device).flatten()
    if tensor.numel() != channels:
        raise ValueError(f"{name} must have one value per channel ({channels}), got {values!r}")
    return tensor


def random_crop_flip(images: torch.Tensor, padding: int = 4,
                     generator: torch.Generator | None = None,
                     fill: float | Sequence[float] = 0.0) -> torch.Tensor:
    """Random HxW crop of the ``padding``-padded images, then a horizontal flip with p = 1/2.

    ``images`` is NCHW (any dtype, any memory format); each image gets its own offsets
    (dy, dx) uniform in {0, ..., 2*padding} and its own flip, all drawn from ``generator``
    (which must live on the images' device), so
    ``out[n, :, i, j] = padded[n, :, dy + i, dx + (W-1-j if flip else j)]``.
    The padding value is ``fill`` (a number, or one per channel). torchvision pads the uint8
    image with 0 (black) before normalising; on normalised images pass
    ``fill = -mean/std`` per channel to match it exactly, or keep 0 (the mean colour).
    """
    if images.ndim != 4:
        raise ValueError(f"images must be an NCHW tensor, got shape {tuple(images.shape)}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    n, channels, height, width = images.shape
    device = images.device
    if isinstance(fill, (int, float)):
        padded = F.pad(images, (padding,) * 4, value=float(fill))
    else:
        fill_t = _per_channel(fill, channels, device, "fill").to(images.dtype)
        padded = fill_t.view(1, -1, 1, 1).expand(n, channels, height + 2 * padding,
                                                 width + 2 * padding).clone()
        padded[:, :, padding:padding + height, padding:padding + width] = images
    dy = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1), device=device, generator=generator)
    flip = torch.randint(0, 2, (n, 1), device=device, generator=generator).bool()
    rows = dy + torch.arange(height, device=device)                     # [N, H]
    columns = torch.arange(width, device=device).expand(n, width)
    columns = dx + torch.where(flip, columns.flip(1), columns)          # [N, W]
    batch = torch.arange(n, device=device).view(n, 1, 1)
    # advanced indices on dims 0, 2, 3 around a slice: result is [N, H, W, C]
    cropped = padded[batch, :, rows.view(n, height, 1), columns.view(n, 1, width)]
    return cropped.permute(0, 3, 1, 2)
