"""Real photos that ship inside installed packages, as encoded bytes.

- astronaut: scikit-image's portrait of Eileen Collins (NASA, public domain), 512x512
- hopper: matplotlib's portrait of Grace Hopper, 512x600
- group: insightface's group photo t1.jpg (six people), 1280x886
- no_face: insightface's mask_white.jpg (a surgical mask, no person)
"""

from __future__ import annotations

import importlib.util
import io
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    assert path.is_file(), path
    return path


def encode(image: Image.Image | np.ndarray, fmt: str = "JPEG", **params) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **params)
    return buf.getvalue()


@cache
def astronaut_image() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@cache
def astronaut() -> bytes:
    return encode(astronaut_image(), quality=95)


@cache
def hopper() -> bytes:
    return package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg").read_bytes()


@cache
def group() -> bytes:
    return package_file("insightface", "data", "images", "t1.jpg").read_bytes()


@cache
def no_face() -> bytes:
    return package_file("insightface", "data", "images", "mask_white.jpg").read_bytes()


def astronaut_reframed() -> bytes:
    """A second, different photo of the same person: cropped closer, rescaled,
    mirrored, brighter and re-encoded. The packages ship only one photo of
    each person, so this stands in for "another selfie"."""
    img = astronaut_image().crop((60, 0, 420, 360)).resize((400, 400), Image.Resampling.LANCZOS)
    img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    img = img.point(lambda v: min(255, int(v * 1.1)))
    return encode(img, "PNG")
