"""Procedural stand-ins for generated images: seeded, any size, no downloads.

Each image is a sky-like gradient with 1/f ("pink") texture, then a dozen
shapes (ellipses and polygons; one large skin-toned "face" ellipse in half of
them) filled with their own shading and texture, a slight blur and a little
sensor noise. They have what matters to a watermark: flat regions (skin,
sky) next to busy ones, and natural-image spectra.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def pink_noise(rng: np.random.Generator, h: int, w: int, exponent: float) -> np.ndarray:
    """[H, W] float32, zero mean, unit std, power spectrum ~ 1/f^exponent."""
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spectrum = (rng.standard_normal(f.shape) + 1j * rng.standard_normal(f.shape)) / f ** (
        exponent / 2
    )
    spectrum[0, 0] = 0
    out = np.fft.irfft2(spectrum, s=(h, w))
    return (out / (out.std() + 1e-12)).astype(np.float32)


def procedural_image(seed: int, size: tuple[int, int] = (1024, 1024)) -> Image.Image:
    """A seeded RGB test image of ``size``; about a second at 1024x1024."""
    rng = np.random.default_rng(seed)
    w, h = size
    # Three texture fields, from coarse to fine grain, shared by every shape (rolled).
    fields = [pink_noise(rng, h, w, e) for e in (2.8, 2.0, 1.2)]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = np.linspace(0, 1, h, dtype=np.float32)[:, None, None]
    base = top * (1 - t) + bottom * t + rng.uniform(2, 25) * fields[0][:, :, None]
    canvas = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    shapes = int(rng.integers(4, 16))
    x = np.linspace(-1, 1, w, dtype=np.float32)[None, :, None]
    for i in range(shapes):
        face = i == shapes - 1 and rng.random() < 0.5
        if face:  # smooth skin: gentle shading, almost no texture
            color = np.array([rng.uniform(150, 235), rng.uniform(110, 190), rng.uniform(90, 160)])
            amp, grain = rng.uniform(1, 4), fields[0]
        else:
            color, amp = rng.uniform(0, 255, 3), rng.uniform(0, 40)
            grain = fields[int(rng.integers(0, 3))]
        grain = np.roll(grain, tuple(rng.integers(0, (h, w))), axis=(0, 1))
        fill = color * (1.0 + rng.uniform(-0.25, 0.25) * x) + amp * grain[:, :, None]
        layer = Image.fromarray(np.clip(fill, 0, 255).astype(np.uint8), "RGB")
        mask = Image.new("L", size, 0)
        draw = ImageDraw.Draw(mask)
        if face:
            cx, cy, r = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.6), w * 0.22
            draw.ellipse((cx - r, cy - 1.3 * r, cx + r, cy + 1.3 * r), fill=255)
        elif rng.random() < 0.5:
            x0, y0 = rng.uniform(-0.2, 1.0, 2) * (w, h)
            dx, dy = rng.uniform(0.05, 0.6, 2) * (w, h)
            draw.ellipse((x0, y0, x0 + dx, y0 + dy), fill=255)
        else:
            n = int(rng.integers(3, 8))
            draw.polygon([tuple(p) for p in rng.uniform(-0.1, 1.1, (n, 2)) * (w, h)], fill=255)
        canvas.paste(layer, (0, 0), mask.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 4))))
    canvas = canvas.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    noisy = np.asarray(canvas, np.float32) + rng.normal(0, rng.uniform(0, 3), (h, w, 3))
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")
