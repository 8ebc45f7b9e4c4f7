"""InstantID's control image: the enrolled face's five keypoints, placed and drawn.

IdentityNet (InstantID's ControlNet, Wang et al. 2024, arXiv:2401.07519) was
trained on images of insightface's five keypoints (eye centres, nose tip, mouth
corners) drawn as InstantID's ``draw_kps`` draws them: a limb from each point to
the nose as a filled ellipse 8 px thick, dimmed to 60%, then a 10 px disc per
point, each in its own colour, on black. The same drawing is done here with
Pillow (no OpenCV), with the sizes scaled to the image (they are InstantID's at
1024 px).

The keypoints come from enrollment, relative to the face box
(``IdentityProfile.keypoints``), so the face can be put where the user asks:
``FacePlacement`` gives the box centre as fractions of the width and height and
its size as a fraction of the shorter side; the default is centred.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from imagine.request import InvalidArgument

# draw_kps's colours: right eye... in insightface's order (eye, eye, nose, mouth, mouth).
COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
LIMBS = ((0, 2), (1, 2), (3, 2), (4, 2))  # every point to the nose tip
REFERENCE_SIDE = 1024  # draw_kps's stick width (4) and disc radius (10) are for this size


@dataclass(frozen=True)
class FacePlacement:
    """Where the face goes: its box centre (fractions of width, height) and size."""

    x: float = 0.5
    y: float = 0.5
    size: float = 0.5  # the face box's longer side, as a fraction of the image's shorter side

    def checked(self) -> FacePlacement:
        for name, value in (("x", self.x), ("y", self.y)):
            if not 0.0 <= value <= 1.0:
                raise InvalidArgument(f"face position {name} must be 0-1, got {value!r}")
        if not 0.05 <= self.size <= 1.0:
            raise InvalidArgument(f"face size must be 0.05-1, got {self.size!r}")
        return self

    @classmethod
    def parse(cls, text: str) -> FacePlacement:
        """``"X,Y"`` or ``"X,Y,SIZE"``, fractions, e.g. ``"0.5,0.4,0.35"``."""
        try:
            values = [float(v) for v in text.split(",")]
        except ValueError:
            values = []
        if len(values) not in (2, 3):
            raise InvalidArgument(
                f"face position must be X,Y or X,Y,SIZE (fractions), got {text!r}"
            )
        return cls(*values).checked()


def place(keypoints: np.ndarray, placement: FacePlacement, width: int, height: int) -> np.ndarray:
    """[5, 2] relative keypoints (``IdentityProfile.keypoints``) -> pixels of a W x H image."""
    side = placement.size * min(width, height)
    centre = np.array([placement.x * width, placement.y * height], np.float32)
    return np.asarray(keypoints, np.float32) * side + centre


def draw_keypoints(points: np.ndarray, width: int, height: int) -> Image.Image:
    """InstantID's ``draw_kps`` of [5, 2] pixel keypoints on a black W x H RGB image."""
    k = max(width, height) / REFERENCE_SIDE
    stick, radius = 4 * k, 10 * k
    limbs = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(limbs)
    for a, b in LIMBS:
        (xa, ya), (xb, yb) = points[a], points[b]
        length = math.hypot(xa - xb, ya - yb)
        angle = math.atan2(ya - yb, xa - xb)
        cx, cy = (xa + xb) / 2, (ya + yb) / 2
        ellipse = [
            (
                cx
                + length / 2 * math.cos(t) * math.cos(angle)
                - stick * math.sin(t) * math.sin(angle),
                cy
                + length / 2 * math.cos(t) * math.sin(angle)
                + stick * math.sin(t) * math.cos(angle),
            )
            for t in np.linspace(0, 2 * math.pi, 72, endpoint=False)
        ]
        draw.polygon(ellipse, fill=COLOURS[a])
    out = Image.fromarray((np.asarray(limbs, np.float32) * 0.6).astype(np.uint8))
    draw = ImageDraw.Draw(out)
    for (x, y), colour in zip(points, COLOURS, strict=True):
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=colour)
    return out


def control_image(
    keypoints: np.ndarray, placement: FacePlacement, width: int, height: int
) -> Image.Image:
    """The control image IdentityNet reads: the face's keypoints placed and drawn."""
    return draw_keypoints(place(keypoints, placement, width, height), width, height)
