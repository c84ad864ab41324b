"""The loader's resize is bit-identical to the one before its AVX2 horizontal pass.

Issue 15 (item 4) replaced the horizontal half of the sample resize (rust/src/hresize/): a
table-driven AVX2 pass with the flip and the CHW layout folded in, instead of
fast_image_resize's per-pixel loop followed by a separate flip/layout pass. The augmentation
must not change: the digests below were produced by the previous code (commit 13e355e) from
the same inputs, and every train, full-decode and eval sample must still match them byte for
byte. The inputs are made without any random generator or third-party encoder (integer
arithmetic, then the extension's own libjpeg-turbo), so they are the same on every machine.
A change that alters the pixels on purpose must update these digests and say why.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from pillsnap import _native

# sha256 over every sample of `_samples(size)`, from the previous resize path.
PREVIOUS = {
    384: "0a32b1a1c7541680a3a0a64135494f6fca8d38880e8270c4999402552c32440b",
    224: "5b59e4f2b1b084598201d7c44136631fe50e4e162e62f753b114622ce533cc51",
    97: "a29a52a5c29239939fceee1f60455a3b7fbe467257e17d22f039d0788930fb63",
}


def source_jpeg(width: int, height: int) -> bytes:
    """A photo-like image from integer arithmetic: gradients, a disc, hash noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.int64)
    noise = (xx * 7919 + yy * 104729 + (xx * yy) % 97) % 29 - 14
    disc = ((xx - width // 3) ** 2 + (yy - height // 2) ** 2) < (width // 4) ** 2
    rgb = np.stack([xx * 255 // width, yy * 255 // height, (xx + 2 * yy) % 256], axis=-1)
    rgb = np.where(disc[..., None], np.array([200, 40, 90]), rgb) + noise[..., None]
    rgb = np.clip(rgb, 0, 255).astype(np.uint8)
    return _native.encode_jpeg(rgb, width, height, 90, "4:2:0")


def _samples(size: int) -> str:
    data = source_jpeg(480, 629)
    slot = np.empty(size * size * 3, np.uint8)
    digest = hashlib.sha256()
    for layout in ("hwc", "chw"):
        for index in range(12):
            for full_decode in (False, True):
                _native.decode_train_sample(data, size, 5, 2, index, slot, layout, full_decode)
                digest.update(slot.tobytes())
        _native.decode_eval_sample(data, size, slot, layout)
        digest.update(slot.tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("size", sorted(PREVIOUS))
def test_samples_are_bit_identical_to_the_previous_resize(size: int) -> None:
    assert _samples(size) == PREVIOUS[size]
