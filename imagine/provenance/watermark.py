"""Invisible watermark: a keyed, error-corrected payload spread over a repeating tile of luma noise.

Scheme ``tiled-ss-v2``: spread spectrum (Cox et al. 1997) over a periodic tile
(Kutter 1998), so that a crop only shifts the tile and a resize only changes
its period, which the detector measures.

- payload: a 64-bit id, a 24-bit check (BLAKE2b of the id keyed with the
  secret), then BCH parity (``bchlib``, GF(2^8), t = 9, 68 bits): 156 bits of
  which any 9 may be wrong. A random 156-bit word decodes and passes the check
  with probability about 2^-45 per attempt;
- each bit k has its own pattern p_k: [T, T] float32, band-limited to periods
  of 4-16 px (JPEG keeps them, and so does a 40% downscale), orthonormal to the
  others, and derived with SHAKE-256 from the deployment's **secret** key, so
  that only the key's holder can read or forge the mark;
- the tile W = sum_k s_k * p_k (s_k = +-1) repeats over the whole image and is
  added to luma, scaled by a texture mask (more where the image is busy, less
  on flat skin and sky);
- detection high-passes luma and divides it by its local RMS, folds it onto one
  tile (summing every tile position), correlates the fold with every p_k at
  every cyclic shift at once through the FFT, takes the shift where the
  patterns agree most, reads the signs and decodes. First at the size given;
  then the tile's period is measured from the autocorrelation of the image
  (the tile repeats, so its autocorrelation peaks at multiples of the period,
  whatever the key), the image is rescaled so that the period is T again (per
  axis: aspect changes too), and read once more. Flipped images are read by
  flipping the fold.

T is 128 px, or 64 px for images under 256 px on their shorter side (smoke
outputs). Images marked by ``tiled-ss-v1`` (a public key, 96 bits: id and
CRC-32, no error correction) are still read, as legacy marks that anyone could
have made. ``benchmarks/watermark.py`` measures robustness and false positives.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from PIL import Image

SCHEME = "tiled-ss-v2"
LEGACY_SCHEME = "tiled-ss-v1"
LEGACY_KEY = b"imagine-me/watermark/tiled-ss-v1"  # public: v1 marks prove nothing alone
ID_BYTES = 8  # the 64-bit id
CHECK_BYTES = 3  # keyed check after the id
BCH_T, BCH_M = 9, 8  # bits corrected, Galois field GF(2^M)
KEY_BYTES = 32
BAND = (4.0, 16.0)  # pattern periods in px, shortest and longest
STRENGTH = 1.5  # luma levels (0-255), RMS of the pattern where the texture mask is 1
LARGE_TILE, SMALL_TILE = 128, 64
MIN_SIDE = 64  # smaller images cannot carry the payload
# Sizes relative to the marked image that are searched: from a third to twice.
MIN_SCALE, MAX_SCALE = 0.3, 2.1
# The detector skips a scale whose rescaled plane would be larger (memory: about 40
# bytes a pixel). Marked images are at most about 2048 px a side.
MAX_PLANE_PIXELS = 3072 * 3072
PERIOD_CANDIDATES = 3  # autocorrelation peaks tried, strongest first
FLIPS = ("none", "horizontal", "vertical", "both")


class Scheme:
    """A key and a payload code: what it takes to write and read one kind of mark."""

    name: str
    n_bits: int

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._patterns: dict[int, np.ndarray] = {}
        self._spectra: dict[int, np.ndarray] = {}

    @property
    def key_id(self) -> str:
        """A public fingerprint of the key (8 hex digits): names the key, reveals nothing."""
        return hashlib.sha256(b"imagine-me/watermark-key-id/" + self.key).hexdigest()[:8]

    def encode(self, payload: bytes) -> np.ndarray:
        """[n_bits] float32 of +-1."""
        raise NotImplementedError

    def decode(self, soft: np.ndarray) -> tuple[bytes, int] | None:
        """(the 8-byte id, bits corrected) when ``soft`` decodes and checks, else None."""
        raise NotImplementedError

    def seed(self, tile: int) -> bytes:
        raise NotImplementedError

    def patterns(self, tile: int) -> np.ndarray:
        """[n_bits, T, T] float32: orthonormal (unit RMS) band-limited patterns from the key."""
        if tile not in self._patterns:
            self._patterns[tile] = derive_patterns(self.seed(tile), self.n_bits, tile)
        return self._patterns[tile]

    def spectra(self, tile: int) -> np.ndarray:
        if tile not in self._spectra:
            self._spectra[tile] = np.conj(np.fft.rfft2(self.patterns(tile)))
        return self._spectra[tile]


class KeyedScheme(Scheme):
    """``tiled-ss-v2``: a secret key; id, keyed check and BCH parity (156 bits)."""

    name = SCHEME

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a watermark key is {KEY_BYTES} bytes, got {len(key)}")
        super().__init__(key)

    @cached_property
    def _bch(self) -> Any:
        import bchlib

        return bchlib.BCH(BCH_T, m=BCH_M)

    @property
    def n_bits(self) -> int:  # type: ignore[override]
        return (ID_BYTES + CHECK_BYTES) * 8 + self._bch.ecc_bits  # 156: the parity's 68 bits

    def seed(self, tile: int) -> bytes:
        return b"imagine-me/watermark/tiled-ss-v2/%d/" % tile + self.key

    def check(self, payload: bytes) -> bytes:
        return hashlib.blake2b(payload, key=self.key, digest_size=CHECK_BYTES).digest()

    def encode(self, payload: bytes) -> np.ndarray:
        if len(payload) != ID_BYTES:
            raise ValueError(f"payload must be {ID_BYTES} bytes, got {len(payload)}")
        data = payload + self.check(payload)
        return _to_signs(data + bytes(self._bch.encode(data)))[: self.n_bits]

    def decode(self, soft: np.ndarray) -> tuple[bytes, int] | None:
        raw = np.packbits((np.asarray(soft) > 0).astype(np.uint8)).tobytes()  # zero-padded
        cut = ID_BYTES + CHECK_BYTES
        data, ecc = bytearray(raw[:cut]), bytearray(raw[cut:])
        errors = self._bch.decode(data, ecc)
        if errors < 0:
            return None
        self._bch.correct(data, ecc)
        payload, check = bytes(data[:ID_BYTES]), bytes(data[ID_BYTES:])
        return (payload, errors) if check == self.check(payload) else None


class LegacyScheme(Scheme):
    """``tiled-ss-v1`` (until issue 21): the public key, id and CRC-32 (96 bits), no ECC."""

    name = LEGACY_SCHEME
    n_bits = (ID_BYTES + 4) * 8

    def __init__(self) -> None:
        super().__init__(LEGACY_KEY)

    def seed(self, tile: int) -> bytes:
        return LEGACY_KEY + b"/%d" % tile

    def encode(self, payload: bytes) -> np.ndarray:
        if len(payload) != ID_BYTES:
            raise ValueError(f"payload must be {ID_BYTES} bytes, got {len(payload)}")
        return _to_signs(payload + zlib.crc32(payload).to_bytes(4, "big"))

    def decode(self, soft: np.ndarray) -> tuple[bytes, int] | None:
        data = np.packbits((np.asarray(soft) > 0).astype(np.uint8)).tobytes()
        payload, crc = data[:ID_BYTES], data[ID_BYTES:]
        return (payload, 0) if zlib.crc32(payload).to_bytes(4, "big") == crc else None


LEGACY = LegacyScheme()


@dataclass(frozen=True)
class Detection:
    """What the detector read from an image."""

    found: bool  # True only when the bits decode and pass the check
    payload: str | None = None  # the 64-bit id as 16 hex digits, when found
    scale: float | None = None  # the image's width relative to the marked one, when found
    aspect: float | None = None  # height scale / width scale (1.0 unless stretched)
    flip: str | None = None  # "none" | "horizontal" | "vertical" | "both"
    scheme: str | None = None  # "tiled-ss-v2", or "tiled-ss-v1" for a legacy mark
    key_id: str | None = None  # fingerprint of the key that matched
    bit_errors: int | None = None  # bits the code corrected
    bits: int | None = None  # bits in the payload's code word (156; 96 for legacy marks)
    bit_accuracy: float | None = None  # share of the read bits that were right
    confidence: float = 0.0  # mean |bit correlation| over the noise at other shifts: ~1 unmarked
    tries: int = 0  # readings attempted (sizes x tiles)
    # [n_bits] correlations of the strongest reading of the first scheme, found or not:
    # for measuring bit accuracy against known bits (benchmarks/watermark.py).
    soft: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def legacy(self) -> bool:
        return self.scheme == LEGACY_SCHEME


def derive_patterns(seed: bytes, n_bits: int, tile: int) -> np.ndarray:
    radius = np.hypot(np.fft.fftfreq(tile)[:, None], np.fft.rfftfreq(tile)[None, :])
    band = (radius >= 1.0 / BAND[1]) & (radius <= 1.0 / BAND[0])  # radius in cycles/px
    shape = (2, n_bits, *band.shape)
    # Uniform [-1, 1) numbers from SHAKE-256 of the seed, not numpy's generators: the
    # patterns must stay the same for as long as marked images exist.
    stream = hashlib.shake_256(seed).digest(8 * int(np.prod(shape)))
    uniform = np.frombuffer(stream, dtype=">u8").astype(np.float64) / 2.0**63 - 1.0
    re, im = uniform.reshape(shape)
    p = np.fft.irfft2((re + 1j * im) * band, s=(tile, tile)).reshape(n_bits, tile * tile)
    # Orthonormal rows (Cholesky whitening of the Gram matrix), still inside the band.
    q = np.linalg.solve(np.linalg.cholesky(p @ p.T), p)
    return (q * tile).reshape(n_bits, tile, tile).astype(np.float32)


def tile_for(width: int, height: int) -> int:
    return LARGE_TILE if min(width, height) >= 2 * LARGE_TILE else SMALL_TILE


def embed(
    image: Image.Image, payload: bytes, scheme: Scheme, strength: float = STRENGTH
) -> Image.Image:
    """``image`` with ``payload`` (8 bytes) added to its luma; RGB, same size."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    h, w = rgb.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image is {w}x{h}; a watermark needs at least {MIN_SIDE} px a side")
    t = tile_for(w, h)
    tile = np.tensordot(scheme.encode(payload), scheme.patterns(t), axes=1)
    tile /= tile.std()  # [T, T], unit RMS
    pattern = np.tile(tile, (-(-h // t), -(-w // t)))[:h, :w]
    delta = strength * texture_mask(luma(rgb)) * pattern  # [H, W] in luma levels
    # The same delta on R, G and B changes luma by exactly delta and leaves hue alone.
    marked = rgb.astype(np.float32) + delta[:, :, None]
    return Image.fromarray(np.clip(np.rint(marked), 0, 255).astype(np.uint8), "RGB")


@dataclass
class _Search:
    schemes: Sequence[Scheme]
    flips: Sequence[str]
    best: float = 0.0
    best_soft: np.ndarray | None = None
    tries: int = 0
    seen: set[tuple[float, float, int]] = field(default_factory=set)

    def read(self, y: np.ndarray, sx: float, sy: float, tile: int) -> Detection | None:
        """Read ``y`` as if it were the marked image scaled by (sx, sy), tile ``tile``."""
        key = (round(sx, 4), round(sy, 4), tile)
        if key in self.seen:
            return None
        self.seen.add(key)
        self.tries += 1
        plane = y if (sx, sy) == (1.0, 1.0) else rescale(y, 1.0 / sx, 1.0 / sy)
        folded = fold(flatten(plane), tile)
        for flip in self.flips:
            spectrum = np.fft.rfft2(_flipped(folded, flip))
            for scheme in self.schemes:
                soft, confidence = _correlate(spectrum, scheme.spectra(tile))
                if scheme is self.schemes[0] and confidence > self.best:
                    self.best, self.best_soft = confidence, soft
                decoded = scheme.decode(soft)
                if decoded is None:
                    continue
                payload, errors = decoded
                return Detection(
                    found=True,
                    payload=payload.hex(),
                    scale=round(sx, 4),
                    aspect=round(sy / sx, 4),
                    flip=flip,
                    scheme=scheme.name,
                    key_id=scheme.key_id,
                    bit_errors=errors,
                    bits=scheme.n_bits,
                    bit_accuracy=1.0 - errors / scheme.n_bits,
                    confidence=confidence,
                    tries=self.tries,
                    soft=soft,
                )
        return None


def detect(
    image: Image.Image,
    schemes: Sequence[Scheme],
    *,
    search: bool = True,
    flips: Sequence[str] = FLIPS,
) -> Detection:
    """Look for a mark of any of ``schemes``: at the given size, then (``search``) at the
    sizes the tile's period says, each flipped in turn. The first that decodes wins."""
    y = luma(np.asarray(image.convert("RGB"), dtype=np.uint8))
    h, w = y.shape
    if min(h, w) < MIN_SIDE // 2:
        return Detection(False)
    state = _Search(schemes, flips if search else ("none",))
    tiles = (LARGE_TILE, SMALL_TILE) if min(h, w) < 2 * LARGE_TILE else (LARGE_TILE,)
    for tile in tiles:
        if found := state.read(y, 1.0, 1.0, tile):
            return found
    if search:
        for sx, sy, tile in _candidate_sizes(y):
            if found := state.read(y, sx, sy, tile):
                return found
    return Detection(False, confidence=state.best, tries=state.tries, soft=state.best_soft)


def _candidate_sizes(y: np.ndarray) -> Iterator[tuple[float, float, int]]:
    """(x scale, y scale, tile) to try, from the periods the autocorrelation shows."""
    h, w = y.shape
    for px, py in tile_periods(flatten(y)):
        for tile in (LARGE_TILE, SMALL_TILE):
            sx, sy = px / tile, py / tile
            if not (MIN_SCALE <= sx <= MAX_SCALE and MIN_SCALE <= sy <= MAX_SCALE):
                continue
            if h * w / (sx * sy) > MAX_PLANE_PIXELS or min(h / sy, w / sx) < MIN_SIDE:
                continue
            if tile == SMALL_TILE and min(h / sy, w / sx) >= 2 * LARGE_TILE + 8:
                continue  # an image that large was marked with the large tile
            yield sx, sy, tile


def tile_periods(detail: np.ndarray, count: int = PERIOD_CANDIDATES) -> list[tuple[float, float]]:
    """The strongest repeat periods (x, y) in px of ``detail``, strongest first.

    A tiled pattern's autocorrelation peaks at every multiple of its period along
    each axis; a comb that sums the autocorrelation at P, 2P, 3P, ... finds P to a
    fraction of a pixel (Kutter 1998 used the same peaks to undo affine changes).
    """
    h, w = detail.shape
    spectrum = np.fft.rfft2(detail - detail.mean())
    auto = np.fft.irfft2(np.abs(spectrum) ** 2, s=(h, w))
    auto /= auto[0, 0] + 1e-12
    rows, cols = _peaky(auto[: h // 2, 0]), _peaky(auto[0, : w // 2])  # lag profiles, y and x
    hi = min(MAX_SCALE * LARGE_TILE, min(h, w) // 2 - 2)
    periods = np.arange(MIN_SCALE * SMALL_TILE, hi, PERIOD_STEP)
    if len(periods) == 0:
        return []
    combined = _comb(rows, periods) + _comb(cols, periods)  # a uniform scale first
    strong = _strongest(periods, _z(combined), count, PERIOD_Z)
    # Nothing stands out (an unmarked image, most likely): try the best guess alone.
    candidates = strong or _strongest(periods, combined, 1, 0.0)
    out: list[tuple[float, float]] = []
    for period in candidates:
        # Then each axis on its own, within 6%: an aspect change moves them apart.
        near = np.arange(period * 0.94, period * 1.06, PERIOD_STEP / 4)
        px = float(near[np.argmax(_comb(cols, near))])
        py = float(near[np.argmax(_comb(rows, near))])
        out += [(px, py), (period, period)]
    # A larger aspect change: each axis's own strongest period.
    alone = [_strongest(periods, _z(_comb(p, periods)), 1, PERIOD_Z) for p in (cols, rows)]
    if all(alone):
        out.append((alone[0][0], alone[1][0]))
    return list(dict.fromkeys((round(a, 3), round(b, 3)) for a, b in out))


PERIOD_STEP = 0.05  # px, the grid of candidate periods
# A period is a candidate when its comb score is this many robust standard deviations
# above the median over all periods: unmarked images peak at 3-5, marked ones at 8-130
# (benchmarks/watermark.py). When none is, only the single best guess is tried.
PERIOD_Z = 6.0
HARMONICS = 4


def _peaky(profile: np.ndarray) -> np.ndarray:
    """``profile`` above its 9-lag running mean: the image's slow trends are not periods."""
    smooth = np.convolve(profile, np.ones(9) / 9, mode="same")
    return np.clip(profile - smooth, 0, None)


def _comb(profile: np.ndarray, periods: np.ndarray) -> np.ndarray:
    """For each period P: the profile at P, 2P, ... (up to ``HARMONICS``), summed over
    the square root of how many fit (a mean that still favours more evidence)."""
    total, n = np.zeros(len(periods)), np.zeros(len(periods))
    lags = np.arange(len(profile))
    for k in range(1, HARMONICS + 1):
        ok = periods * k < len(profile) - 1
        total[ok] += np.interp(periods[ok] * k, lags, profile)
        n[ok] += 1
    return total / np.sqrt(np.maximum(n, 1))


def _z(scores: np.ndarray) -> np.ndarray:
    """Scores in robust standard deviations above their median."""
    median = np.median(scores)
    spread = 1.4826 * np.median(np.abs(scores - median)) + 1e-12
    return (scores - median) / spread


def _strongest(periods: np.ndarray, scores: np.ndarray, count: int, floor: float) -> list[float]:
    found: list[float] = []
    for i in np.argsort(scores)[::-1]:
        if scores[i] <= floor or len(found) == count:
            break
        if all(abs(periods[i] - p) > 1.5 for p in found):
            found.append(float(periods[i]))
    return found


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
    padded = np.pad(a - a.mean(), ((0, -h % tile), (0, -w % tile)))
    return padded.reshape(padded.shape[0] // tile, tile, -1, tile).sum(axis=(0, 2))


def rescale(y: np.ndarray, fx: float, fy: float) -> np.ndarray:
    """``y`` resampled by exactly (fx, fy): the box makes the factor exact, not rounded."""
    h, w = y.shape
    out_w, out_h = max(1, int(w * fx)), max(1, int(h * fy))
    box = (0.0, 0.0, out_w / fx, out_h / fy)
    resized = Image.fromarray(y, "F").resize((out_w, out_h), Image.Resampling.BICUBIC, box=box)
    return np.asarray(resized)


def _flipped(folded: np.ndarray, flip: str) -> np.ndarray:
    # A flipped image folds to the flipped fold, cyclically shifted: the search over
    # shifts absorbs the shift, so flipping the [T, T] fold back is enough.
    if flip == "horizontal":
        return folded[:, ::-1]
    if flip == "vertical":
        return folded[::-1, :]
    if flip == "both":
        return folded[::-1, ::-1]
    return folded


def _correlate(spectrum: np.ndarray, pattern_spectra: np.ndarray) -> tuple[np.ndarray, float]:
    """[n] soft bits at the best cyclic shift of the fold, and a confidence figure."""
    tile = pattern_spectra.shape[-2]
    corr = np.fft.irfft2(spectrum[None] * pattern_spectra, s=(tile, tile))  # [n, T, T]
    energy = np.square(corr).sum(axis=0)  # [T, T]: largest where every pattern lines up
    dy, dx = np.unravel_index(int(np.argmax(energy)), energy.shape)
    soft = corr[:, dy, dx]
    return soft, float(np.abs(soft).mean() / (corr.std() + 1e-12))


def _to_signs(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.float32) * 2 - 1
