"""Invisible watermark: a 96-bit payload spread over a repeating tile of luma noise.

Scheme ``tiled-ss-v1``: spread spectrum (Cox et al. 1997) over a periodic tile
(Kutter 1998), so that a crop or a resize does not lose the grid.

- payload: a 64-bit id and its CRC-32, 96 bits; a random image passes the CRC
  with probability 2^-32 per decoding attempt (a handful per image);
- each bit k has its own pattern p_k derived from the key: [T, T] float32,
  band-limited to periods of 4-16 px (JPEG keeps them, and so does a 50%
  downscale), and orthonormal to the others, so bits do not leak into each other;
- the tile W = sum_k s_k * p_k (s_k = +-1) repeats over the whole image and is
  added to luma, scaled by a texture mask (more where the image is busy, less
  on flat skin and sky);
- detection high-passes luma and divides it by its local RMS, folds it onto one
  tile (summing every tile position, so a crop only shifts the tile
  cyclically), correlates the fold with every p_k at every cyclic shift at once
  through the FFT, takes the shift where the patterns agree most, reads the
  signs and checks the CRC. Resized copies are tried at a few scales.

T is 128 px, or 64 px for images under 256 px on their shorter side (smoke
outputs): a 128 px tile needs two repeats to be read reliably. Pure numpy and
Pillow. ``benchmarks/watermark.py`` measures robustness and false positives.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image

SCHEME = "tiled-ss-v1"
KEY = b"imagine-me/watermark/tiled-ss-v1"
ID_BYTES = 8  # the 64-bit id; a CRC-32 follows it
N_BITS = (ID_BYTES + 4) * 8
BAND = (4.0, 16.0)  # pattern periods in px, shortest and longest
STRENGTH = 1.5  # luma levels (0-255), RMS of the pattern where the texture mask is 1
LARGE_TILE, SMALL_TILE = 128, 64
MIN_SIDE = 64  # smaller images cannot carry the payload
# Sizes relative to the marked image that the detector tries, most likely first.
SCALES = (1.0, 0.5, 0.75, 2.0, 1.5)
# The detector skips a scale whose rescaled plane would be larger (memory: about 40
# bytes a pixel). Marked images are at most about 2048 px a side.
MAX_PLANE_PIXELS = 3072 * 3072


@dataclass(frozen=True)
class Detection:
    """What the detector read from an image."""

    found: bool  # True only when the 96 bits pass the CRC
    payload: str | None  # the 64-bit id as 16 hex digits, when found
    scale: float | None  # the image's size relative to the marked one, when found
    confidence: float  # mean |bit correlation| over the noise at other shifts: ~1 when unmarked


def tile_for(width: int, height: int) -> int:
    return LARGE_TILE if min(width, height) >= 2 * LARGE_TILE else SMALL_TILE


def payload_bits(payload: bytes) -> np.ndarray:
    """[96] float32 of +-1: the 8-byte id, then its CRC-32, most significant bit first."""
    if len(payload) != ID_BYTES:
        raise ValueError(f"payload must be {ID_BYTES} bytes, got {len(payload)}")
    data = payload + zlib.crc32(payload).to_bytes(4, "big")
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.float32) * 2 - 1


def bits_payload(soft: np.ndarray) -> bytes | None:
    """The 8-byte id when the signs of ``soft`` carry a valid CRC, else None."""
    data = np.packbits((np.asarray(soft) > 0).astype(np.uint8)).tobytes()
    payload, crc = data[:ID_BYTES], data[ID_BYTES:]
    return payload if zlib.crc32(payload).to_bytes(4, "big") == crc else None


@cache
def patterns(tile: int) -> np.ndarray:
    """[96, T, T] float32: orthonormal (unit RMS) band-limited patterns derived from ``KEY``."""
    radius = np.hypot(np.fft.fftfreq(tile)[:, None], np.fft.rfftfreq(tile)[None, :])
    band = (radius >= 1.0 / BAND[1]) & (radius <= 1.0 / BAND[0])  # radius in cycles/px
    shape = (2, N_BITS, *band.shape)
    # Uniform [-1, 1) numbers from SHAKE-256 of the key, not numpy's generators: the
    # patterns must stay the same for as long as marked images exist.
    stream = hashlib.shake_256(KEY + b"/%d" % tile).digest(8 * int(np.prod(shape)))
    uniform = np.frombuffer(stream, dtype=">u8").astype(np.float64) / 2.0**63 - 1.0
    re, im = uniform.reshape(shape)
    p = np.fft.irfft2((re + 1j * im) * band, s=(tile, tile)).reshape(N_BITS, tile * tile)
    # Orthonormal rows (Cholesky whitening of the Gram matrix), still inside the band.
    q = np.linalg.solve(np.linalg.cholesky(p @ p.T), p)
    return (q * tile).reshape(N_BITS, tile, tile).astype(np.float32)


@cache
def _pattern_spectra(tile: int) -> np.ndarray:
    return np.conj(np.fft.rfft2(patterns(tile)))


def embed(image: Image.Image, payload: bytes, strength: float = STRENGTH) -> Image.Image:
    """``image`` with ``payload`` (8 bytes) added to its luma; RGB, same size."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image is {w}x{h}; a watermark needs at least {MIN_SIDE} px a side")
    t = tile_for(w, h)
    tile = np.tensordot(payload_bits(payload), patterns(t), axes=1)
    tile /= tile.std()  # [T, T], unit RMS
    pattern = np.tile(tile, (-(-h // t), -(-w // t)))[:h, :w]
    delta = strength * texture_mask(luma(rgb)) * pattern  # [H, W] in luma levels
    # The same delta on R, G and B changes luma by exactly delta and leaves hue alone.
    marked = rgb.astype(np.float32) + delta[:, :, None]
    return Image.fromarray(np.clip(np.rint(marked), 0, 255).astype(np.uint8), "RGB")


def detect(image: Image.Image, scales: tuple[float, ...] = SCALES) -> Detection:
    """Look for a payload at each of ``scales``; the first that passes its CRC wins."""
    y = luma(np.asarray(image.convert("RGB"), dtype=np.uint8))
    h, w = y.shape
    tries = [
        (s, LARGE_TILE)
        for s in scales
        if min(h, w) / s >= 2 * LARGE_TILE and h * w / (s * s) <= MAX_PLANE_PIXELS
    ]
    if min(h, w) < 2 * LARGE_TILE and min(h, w) >= MIN_SIDE:
        tries.append((1.0, SMALL_TILE))
    best = 0.0
    for scale, tile in tries:
        plane = y if scale == 1.0 else _resize(y, 1.0 / scale)
        soft, confidence = _read(flatten(plane), tile)
        payload = bits_payload(soft)
        if payload is not None:
            return Detection(True, payload.hex(), scale, confidence)
        best = max(best, confidence)
    return Detection(False, None, None, best)


def luma(rgb: np.ndarray) -> np.ndarray:
    """[H, W] float32 BT.601 luma of [H, W, 3] uint8 RGB."""
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def texture_mask(y: np.ndarray) -> np.ndarray:
    """[H, W] float32 in [0.3, 2]: local luma standard deviation (9x9) over 8 levels.

    Busy regions hide more pattern (contrast masking); flat ones get little.
    """
    mean = box_mean(y, 4)
    var = np.maximum(box_mean(y * y, 4) - mean * mean, 0.0)
    return np.clip(np.sqrt(var) / 8.0, 0.3, 2.0).astype(np.float32)


def flatten(y: np.ndarray) -> np.ndarray:
    """Luma detail (5x5 high-pass) divided by its local RMS (17x17).

    To the detector the image itself is noise, loud where the image is busy;
    the pattern is louder there too (``texture_mask``). Dividing by the local
    RMS weighs every region by what it can tell (maximal-ratio combining)
    instead of letting busy regions drown out flat ones.
    """
    detail = y - box_mean(y, 2)
    return (detail / np.sqrt(np.maximum(box_mean(detail * detail, 8), 1.0))).astype(np.float32)


def box_mean(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window with edges replicated, from a summed-area table."""
    k = 2 * radius + 1
    s = np.pad(a.astype(np.float64), radius + 1, mode="edge").cumsum(0).cumsum(1)
    h, w = a.shape
    return (s[k : k + h, k : k + w] - s[:h, k : k + w] - s[k : k + h, :w] + s[:h, :w]) / (k * k)


def fold(a: np.ndarray, tile: int) -> np.ndarray:
    """[T, T]: the sum of ``a`` over every tile position; pixel (i, j) lands on (i%T, j%T)."""
    h, w = a.shape
    padded = np.pad(a, ((0, -h % tile), (0, -w % tile)))
    return padded.reshape(padded.shape[0] // tile, tile, -1, tile).sum(axis=(0, 2))


def _read(detail: np.ndarray, tile: int) -> tuple[np.ndarray, float]:
    """[96] soft bits at the best cyclic shift of the fold, and a confidence figure."""
    spectrum = np.fft.rfft2(fold(detail - detail.mean(), tile))
    corr = np.fft.irfft2(spectrum[None] * _pattern_spectra(tile), s=(tile, tile))  # [96, T, T]
    energy = np.square(corr).sum(axis=0)  # [T, T]: largest where every pattern lines up
    dy, dx = np.unravel_index(int(np.argmax(energy)), energy.shape)
    soft = corr[:, dy, dx]
    return soft, float(np.abs(soft).mean() / (corr.std() + 1e-12))


def _resize(y: np.ndarray, factor: float) -> np.ndarray:
    h, w = y.shape
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(y, "F").resize(size, Image.Resampling.BICUBIC))
