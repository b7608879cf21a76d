"""Stimulus images: their file names in a study's images/ folder, and how each is rendered.

Pure: PIL and numpy in, PIL images out; writing them is `folder.render_study_images`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image as PILImage

STIMULUS_FILE_RE = re.compile(r"^(image_\d{1,12}|catch_noise_\d{1,6})\.png$")


def stimulus_filename(image_id: int) -> str:
    """File name of an audit image's stimulus inside the study's images/ folder."""
    return f"image_{int(image_id)}.png"


def noise_filename(pair_index: int) -> str:
    """File name of a catch trial's noise image."""
    return f"catch_noise_{int(pair_index):03d}.png"


def render_stimulus(image: PILImage.Image, size: int = 224) -> PILImage.Image:
    """A square stimulus of `size` px: scale the shorter side to `size`, then crop the centre.

    Upsampling uses nearest neighbours (a 28 px image at 224 px shows each pixel as an 8 x 8
    block); downsampling uses Lanczos. Pixel values are never normalised or rescaled.
    """
    from PIL import Image

    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    if new != (w, h):
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
        image = image.resize(new, resample)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return image.crop((left, top, left + size, top + size))


def noise_stimulus(size: int, seed: int, *, mode: str = "RGB") -> PILImage.Image:
    """A Gaussian-noise catch image: pixel values ~ N(128, 48^2), rounded and clipped to 0..255."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    shape = (size, size) if mode == "L" else (size, size, 3)
    values = np.clip(np.rint(rng.normal(128.0, 48.0, size=shape)), 0, 255).astype(np.uint8)
    return Image.fromarray(values)
