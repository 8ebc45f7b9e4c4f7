"""A tiny insightface model pack, written with ``onnx`` so the backend runs offline.

- ``det_tiny.onnx``: SCRFD's 9-output layout (scores, box distances and keypoint
  offsets for strides 8/16/32, two anchors per cell) on a fixed input size. Its
  outputs are constants that decode, through insightface's own SCRFD code, to
  the faces it was built with, given in the pixel coordinates of a photo of a
  known size. With ``needs_margin`` its scores are multiplied by 1 when the top-left
  4x4 corner of its input is black and by 0 otherwise: a detector that finds a face
  only with a margin around it, as SCRFD misses a face that fills the frame.
- ``w600k_tiny.onnx``: ArcFace's shapes (1x3x112x112 -> 1x512). It average-pools
  the aligned face to 3x14x14, removes the mean and applies a fixed random
  projection, so its cosine similarity follows the pixel correlation of the two
  aligned faces: the same face matches, a colour-inverted face scores about -1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

STRIDES = (8, 16, 32)
ANCHORS = 2  # per cell, as in SCRFD-10G
OPSET = [helper.make_opsetid("", 17)]
IR_VERSION = 9


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in photo pixels
    kps: tuple[tuple[float, float], ...]  # 5 points: eyes, nose tip, mouth corners
    score: float = 0.9

    def scaled(self, factor: float, dx: float = 0.0, dy: float = 0.0) -> Face:
        x0, y0, x1, y1 = self.box
        return Face(
            box=(x0 * factor + dx, y0 * factor + dy, x1 * factor + dx, y1 * factor + dy),
            kps=tuple((x * factor + dx, y * factor + dy) for x, y in self.kps),
            score=self.score,
        )


# Eileen Collins in scikit-image's 512x512 astronaut photo, read off the image.
ASTRONAUT = Face(
    box=(176.0, 70.0, 268.0, 172.0),
    kps=((204.0, 100.0), (246.0, 103.0), (225.5, 125.5), (204.0, 141.0), (241.0, 142.5)),
)


def write_pack(
    root: Path,
    faces: list[Face],
    photo_size: tuple[int, int],
    *,
    pack: str = "tiny",
    input_size: int = 160,
    detector: bool = True,
    keypoints: bool = True,
    recognizer: bool = True,
    needs_margin: bool = False,
) -> Path:
    """Write ``root/models/<pack>/`` and return ``root``."""
    folder = root / "models" / pack
    folder.mkdir(parents=True, exist_ok=True)
    if detector:
        model = detector_model(faces, photo_size, input_size, keypoints, needs_margin)
        onnx.save(model, folder / "det_tiny.onnx")
    if recognizer:
        onnx.save(recognition_model(), folder / "w600k_tiny.onnx")
    return root


def detector_model(
    faces: list[Face],
    photo_size: tuple[int, int],
    input_size: int,
    keypoints: bool = True,
    needs_margin: bool = False,
):
    """Constant SCRFD outputs for ``faces`` seen in a ``photo_size`` (W, H) photo;
    without ``keypoints``, the 6-output layout of a box-only detector; with
    ``needs_margin``, scores only when the input's top-left corner is black."""
    width, height = photo_size
    # SCRFD letterboxes the photo into the top-left of its square input.
    scale = input_size / height if height > width else int(input_size * height / width) / height
    scores, boxes, kpss = [], [], []
    for stride in STRIDES:
        cells = input_size // stride
        scores.append(np.zeros((cells * cells * ANCHORS, 1), np.float32))
        boxes.append(np.zeros((cells * cells * ANCHORS, 4), np.float32))
        kpss.append(np.zeros((cells * cells * ANCHORS, 10), np.float32))
    level, stride = 2, STRIDES[2]  # every face goes to the stride-32 level
    cells = input_size // stride
    for face in faces:
        f = face.scaled(scale)
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        col, row = min(cells - 1, int(cx // stride)), min(cells - 1, int(cy // stride))
        anchor = (row * cells + col) * ANCHORS
        ax, ay = col * stride, row * stride
        scores[level][anchor] = face.score
        boxes[level][anchor] = np.array(
            [ax - f.box[0], ay - f.box[1], f.box[2] - ax, f.box[3] - ay]
        )
        kpss[level][anchor] = (np.array(f.kps, np.float32) - (ax, ay)).reshape(-1)
        boxes[level][anchor] /= stride
        kpss[level][anchor] /= stride
    kinds = ("score", "bbox", "kps") if keypoints else ("score", "bbox")
    outputs = [*scores, *boxes, *kpss][: len(kinds) * len(STRIDES)]
    names = [f"{kind}_{s}" for kind in kinds for s in STRIDES]
    gated = {f"score_{s}" for s in STRIDES} if needs_margin else set()
    nodes = [
        helper.make_node(
            "Constant",
            [],
            [f"raw_{name}" if name in gated else name],
            name=f"const_{name}",
            value=numpy_helper.from_array(v),
        )
        for name, v in zip(names, outputs, strict=True)
    ]
    initializers = []
    if needs_margin:
        # insightface feeds (pixel - 127.5) / 128: black is -0.996. Gate = mean of the
        # top-left 4x4 of every channel < -0.9, as 0.0 or 1.0.
        initializers = [
            numpy_helper.from_array(np.array([0, 0], np.int64), "corner_starts"),
            numpy_helper.from_array(np.array([4, 4], np.int64), "corner_ends"),
            numpy_helper.from_array(np.array([2, 3], np.int64), "corner_axes"),
            numpy_helper.from_array(np.array(-0.9, np.float32), "black"),
        ]
        nodes += [
            helper.make_node(
                "Slice",
                ["input.1", "corner_starts", "corner_ends", "corner_axes"],
                ["corner"],
                name="corner",
            ),
            helper.make_node("ReduceMean", ["corner"], ["corner_mean"], keepdims=0, name="mean"),
            helper.make_node("Less", ["corner_mean", "black"], ["is_black"], name="less"),
            helper.make_node("Cast", ["is_black"], ["gate"], to=TensorProto.FLOAT, name="cast"),
        ]
        nodes += [
            helper.make_node("Mul", [f"raw_{name}", "gate"], [name], name=f"gate_{name}")
            for name in sorted(gated)
        ]
    graph = helper.make_graph(
        nodes,
        "scrfd_tiny",
        [
            helper.make_tensor_value_info(
                "input.1", TensorProto.FLOAT, [1, 3, input_size, input_size]
            )
        ],
        [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, list(v.shape))
            for name, v in zip(names, outputs, strict=True)
        ],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)


def recognition_model(seed: int = 0):
    """[1, 3, 112, 112] -> [1, 512]: pool, centre, random projection."""
    projection = np.random.default_rng(seed).standard_normal((3 * 14 * 14, 512)).astype(np.float32)
    nodes = [
        helper.make_node(
            "AveragePool", ["data"], ["pooled"], name="pool", kernel_shape=[8, 8], strides=[8, 8]
        ),
        helper.make_node("Flatten", ["pooled"], ["flat"], name="flatten", axis=1),
        helper.make_node("ReduceMean", ["flat"], ["mean"], name="mean", axes=[1], keepdims=1),
        helper.make_node("Sub", ["flat", "mean"], ["centred"], name="centre"),
        helper.make_node("MatMul", ["centred", "projection"], ["fc1"], name="project"),
    ]
    graph = helper.make_graph(
        nodes,
        "arcface_tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 112, 112])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 512])],
        initializer=[numpy_helper.from_array(projection, "projection")],
    )
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR_VERSION)
