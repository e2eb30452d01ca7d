"""Batched normalisation, random crop with padding and horizontal flip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stingy.empirical.augment import random_crop_flip, to_float_normalised

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2430, 0.2610)


def test_normalisation_is_per_channel_and_nchw():
    images = torch.randint(0, 256, (2, 5, 4, 3), dtype=torch.uint8)
    out = to_float_normalised(images, MEAN, STD)
    assert out.shape == (2, 3, 5, 4) and out.dtype == torch.float32
    for c in range(3):
        expected = (images[..., c].double() / 255 - MEAN[c]) / STD[c]
        torch.testing.assert_close(out[:, c].double(), expected, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("bad_images", [torch.zeros(2, 4, 4, 3), torch.zeros(4, 4, 3,
                                                                               dtype=torch.uint8)])
def test_normalisation_refuses_non_uint8_or_non_4d(bad_images):
    with pytest.raises(ValueError, match="images_uint8_nhwc must be a uint8 tensor"):
        to_float_normalised(bad_images, MEAN, STD)


def test_normalisation_refuses_wrong_length_or_nonpositive_std():
    images = torch.zeros(1, 2, 2, 3, dtype=torch.uint8)
    with pytest.raises(ValueError, match="mean must have one value per channel"):
        to_float_normalised(images, (0.5, 0.5), STD)
    with pytest.raises(ValueError, match="std must be positive"):
        to_float_normalised(images, MEAN, (0.2, 0.0, 0.2))


def crops_of(image: torch.Tensor, padding: int, fill: float = 0.0):
    """Every crop (with and without flip) of one CHW image padded with ``fill``, by brute force."""
    c, h, w = image.shape
    padded = torch.full((c, h + 2 * padding, w + 2 * padding), fill, dtype=image.dtype)
    padded[:, padding:padding + h, padding:padding + w] = image
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy:dy + h, dx:dx + w]
            yield (dy, dx, False), crop
            yield (dy, dx, True), crop.flip(-1)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), padding=st.integers(0, 4), height=st.integers(1, 9),
       width=st.integers(1, 9))
def test_every_output_is_one_flipped_or_plain_crop_of_the_padded_input(seed, padding, height,
                                                                       width):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(3, 2, height, width, generator=generator) + 1.0  # never equal to the pad
    out = random_crop_flip(images, padding=padding, generator=generator)
    assert out.shape == images.shape
    for n in range(3):
        assert any(torch.equal(out[n], crop) for _, crop in crops_of(images[n], padding))


def test_offsets_are_uniform_over_0_to_2p_and_flips_happen_half_the_time():
    # pixel (y, x) holds 100*y + x; the output's centre pixels reveal (dy, dx, flip)
    n, size, padding = 9000, 16, 4
    grid = torch.arange(size, dtype=torch.float32)
    image = (100 * grid.view(-1, 1) + grid.view(1, -1)).expand(n, 1, size, size)
    out = random_crop_flip(image, padding=padding, generator=torch.Generator().manual_seed(0))
    centre, right = out[:, 0, 8, 8], out[:, 0, 8, 9]
    flip = (right - centre) == -1
    assert ((right - centre).abs() == 1).all()
    dy = torch.div(centre, 100, rounding_mode="floor").long() - (8 - padding)
    column = centre.remainder(100).long()
    dx = torch.where(flip, column - (size - 1 - 8 - padding), column - (8 - padding))
    choices = 2 * padding + 1
    for offsets in (dy, dx):
        counts = torch.bincount(offsets, minlength=choices)
        assert len(counts) == choices  # no offset outside {0, ..., 2p}
        assert ((counts - n / choices).abs() < 0.15 * n / choices).all(), counts
    assert abs(flip.float().mean().item() - 0.5) < 0.03


def test_same_generator_seed_gives_the_same_augmentation():
    images = torch.rand(8, 3, 32, 32)
    first = random_crop_flip(images, generator=torch.Generator().manual_seed(3))
    second = random_crop_flip(images, generator=torch.Generator().manual_seed(3))
    third = random_crop_flip(images, generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, second) and not torch.equal(first, third)


def test_padding_zero_without_flip_is_identity_when_flips_are_undone():
    images = torch.rand(16, 3, 5, 5)
    out = random_crop_flip(images, padding=0, generator=torch.Generator().manual_seed(1))
    for n in range(16):
        assert torch.equal(out[n], images[n]) or torch.equal(out[n], images[n].flip(-1))


def test_black_padding_before_normalising_equals_fill_minus_mean_over_std_after():
    """torchvision pads the uint8 image with 0; the same crops of normalised images with
    fill = -mean/std give the same tensor."""
    uint8 = torch.randint(0, 256, (6, 32, 32, 3), dtype=torch.uint8)
    cropped_raw = random_crop_flip(uint8.permute(0, 3, 1, 2),
                                   generator=torch.Generator().manual_seed(7))
    reference = to_float_normalised(cropped_raw.permute(0, 2, 3, 1), MEAN, STD)
    fill = [-m / s for m, s in zip(MEAN, STD)]
    got = random_crop_flip(to_float_normalised(uint8, MEAN, STD), fill=fill,
                           generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-5)


def test_uint8_images_keep_their_dtype_and_values():
    images = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, padding=2, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.uint8
    assert set(np.unique(out.numpy())) <= set(np.unique(images.numpy())) | {0}


@pytest.mark.parametrize("padding", [-1, 1.5, True])
def test_bad_padding_is_refused(padding):
    with pytest.raises(ValueError, match="padding must be an integer >= 0"):
        random_crop_flip(torch.zeros(1, 3, 4, 4), padding=padding)


def test_non_nchw_input_is_refused():
    with pytest.raises(ValueError, match="images must be an NCHW tensor"):
        random_crop_flip(torch.zeros(3, 4, 4))
