"""dlib's face-recognition ResNet, run by ONNX Runtime with dlib's own weights.

The ``dlib-bin`` wheel has no BLAS, so dlib spends about 145 ms per face in this
network's convolutions; ONNX Runtime runs the same weights in about 9 ms on one
core. The weights are read from ``dlib_face_recognition_resnet_model_v1.dat``
itself and the graph is rebuilt layer by layer, so descriptors match dlib's to
float rounding (cosine 1 - 1e-7 on the test photos; ``tests/identity/test_dlib_resnet.py``).

The network (dlib's ``dnn_face_recognition_ex.cpp``): 150x150 RGB chip, minus
the mean colour, over 256 -> 7x7/2 conv, affine (frozen batch norm), ReLU, 3x3/2
max pool -> 14 residual blocks of two 3x3 convs (32, 64, 128, 256, 256 channels;
the first block of each stage strides 2 and its shortcut is a 2x2/2 average
pool) -> global average pool -> 256x128 fully connected, no bias.

dlib serialises a network input-first, and each layer's parameters follow its
type tag (``con_4``, ``affine_``, ...). Integers use dlib's compact encoding
(a length byte with the sign in bit 7, then little-endian bytes), scalars are
a mantissa and a power of two, and tensors are a version, four dimensions and
raw little-endian float32.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CHIP = 150  # px, the network's input side
LAYER_TAG = re.compile(
    rb"\x01[\x04-\x15](input_rgb_image_sized|con_4|affine_|relu_|max_pool_2|avg_pool_2|add_prev_|fc_2)"
)
EXPECTED_LAYERS = {"con_4": 29, "affine_": 29, "relu_": 29, "add_prev_": 14, "avg_pool_2": 5}


class UnexpectedModel(ValueError):
    """The .dat file is not the network this module knows how to rebuild."""


@dataclass(frozen=True)
class Layer:
    kind: str  # the dlib type tag
    arrays: tuple[
        np.ndarray, ...
    ] = ()  # conv: weight [O, I, kh, kw], bias [O]; affine: gamma, beta
    ints: tuple[int, ...] = ()  # conv: strides, pads; pools: kh, kw, sy, sx, py, px


class _Reader:
    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    def int(self) -> int:
        head = self.data[self.pos]
        size = head & 0x0F
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if head & 0x80 else value

    def scalar(self) -> float:
        mantissa = self.int()
        return mantissa * 2.0 ** self.int()

    def tag(self) -> str:
        size = self.int()
        self.pos += size
        return self.data[self.pos - size : self.pos].decode()

    def tensor(self) -> np.ndarray:
        if self.int() != 2:
            raise UnexpectedModel("unknown dlib tensor version")
        count = int(np.prod([self.int() for _ in range(4)]))
        values = np.frombuffer(self.data, "<f4", count, self.pos).astype(np.float32)
        self.pos += 4 * count
        return values


def read_layers(path: Path) -> list[Layer]:
    """The layers of dlib's serialised ResNet, input first."""
    data = path.read_bytes()
    layers = []
    for match in LAYER_TAG.finditer(data):
        r = _Reader(data, match.start())
        kind = r.tag()
        if kind == "input_rgb_image_sized":
            mean = np.array([r.scalar() for _ in range(3)], np.float32)  # R, G, B
            layers.append(Layer(kind, (mean,), (r.int(),)))
        elif kind == "con_4":
            params = r.tensor()  # filters then biases, flattened
            filters, rows, cols, sy, sx, py, px = (r.int() for _ in range(7))
            weight = params[:-filters].reshape(filters, -1, rows, cols)
            layers.append(Layer(kind, (weight, params[-filters:]), (sy, sx, py, px)))
        elif kind == "affine_":
            params = r.tensor()  # gamma then beta, one per channel
            layers.append(Layer(kind, tuple(np.split(params, 2))))
        elif kind in ("max_pool_2", "avg_pool_2"):
            layers.append(Layer(kind, ints=tuple(r.int() for _ in range(6))))
        elif kind == "fc_2":
            outputs, inputs = r.int(), r.int()
            layers.append(Layer(kind, (r.tensor().reshape(inputs, outputs),)))
        else:
            layers.append(Layer(kind))
    counts = {k: sum(layer.kind == k for layer in layers) for k in EXPECTED_LAYERS}
    if counts != EXPECTED_LAYERS or layers[0].kind != "input_rgb_image_sized":
        raise UnexpectedModel(f"{path.name} is not dlib's ResNet-29 face model: {counts}")
    return layers


class _Graph:
    """A small ONNX graph builder that tracks the [C, H, W] shape of each value."""

    def __init__(self) -> None:
        import onnx

        self.onnx = onnx
        self.nodes: list = []
        self.weights: list = []

    def const(self, value: np.ndarray) -> str:
        name = f"w{len(self.weights)}"
        self.weights.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        name = f"{op_type.lower()}{len(self.nodes)}"
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [name], **attrs))
        return name

    def pad_to(self, x: str, shape: tuple[int, ...], target: tuple[int, ...]) -> str:
        """dlib's add_prev adds tensors of different sizes as if the smaller were
        zero-padded at the end of each axis (channels, then bottom and right)."""
        if shape == target:
            return x
        ends = [t - s for t, s in zip(target, shape, strict=True)]  # C, H, W
        pads = np.array([0, 0, 0, 0, 0, *ends], np.int64)  # N C H W begins, then ends
        return self.op("Pad", [x, self.const(pads)])


def build_onnx(layers: list[Layer]):
    """An ONNX model: chips [N, 150, 150, 3] uint8 RGB -> descriptors [N, 128] float32."""
    import onnx

    g = _Graph()
    mean = layers[0].arrays[0].reshape(1, 3, 1, 1)
    x = g.op("Transpose", [g.op("Cast", ["chips"], to=onnx.TensorProto.FLOAT)], perm=[0, 3, 1, 2])
    x = g.op("Div", [g.op("Sub", [x, g.const(mean)]), g.const(np.array(256, np.float32))])
    shape: tuple[int, ...] = (3, CHIP, CHIP)  # C, H, W of x
    block_in, block_shape = x, shape
    shortcut: tuple[str, tuple[int, ...]] | None = None
    convs = 0
    for layer in layers[1:]:
        if layer.kind == "con_4":
            if convs % 2 == 1:  # after the stem, convs come in pairs: one residual block each
                block_in, block_shape = x, shape
            convs += 1
            weight, bias = layer.arrays
            sy, sx, py, px = layer.ints
            kh, kw = weight.shape[2:]
            x = g.op(
                "Conv",
                [x, g.const(weight), g.const(bias)],
                kernel_shape=[kh, kw],
                strides=[sy, sx],
                pads=[py, px, py, px],
            )
            shape = (weight.shape[0], _out(shape[1], kh, sy, py), _out(shape[2], kw, sx, px))
        elif layer.kind == "affine_":
            gamma, beta = (a.reshape(1, -1, 1, 1) for a in layer.arrays)
            x = g.op("Add", [g.op("Mul", [x, g.const(gamma)]), g.const(beta)])
        elif layer.kind == "relu_":
            x = g.op("Relu", [x])
        elif layer.kind in ("max_pool_2", "avg_pool_2"):
            kh, kw, sy, sx, py, px = layer.ints
            if kh == 0:  # avg_pool_everything
                x = g.op("Flatten", [g.op("GlobalAveragePool", [x])])
                continue
            pool = dict(kernel_shape=[kh, kw], strides=[sy, sx], pads=[py, px, py, px])
            if layer.kind == "max_pool_2":
                x = g.op("MaxPool", [x], **pool)
                shape = (shape[0], _out(shape[1], kh, sy, py), _out(shape[2], kw, sx, px))
            else:  # the shortcut of a down-sampling block
                c, h, w = block_shape
                pooled = (c, _out(h, kh, sy, py), _out(w, kw, sx, px))
                shortcut = (g.op("AveragePool", [block_in], **pool), pooled)
        elif layer.kind == "add_prev_":
            other, other_shape = shortcut or (block_in, block_shape)
            target = tuple(max(a, b) for a, b in zip(shape, other_shape, strict=True))
            x = g.op("Add", [g.pad_to(x, shape, target), g.pad_to(other, other_shape, target)])
            shape, shortcut = target, None
        elif layer.kind == "fc_2":
            x = g.op("MatMul", [x, g.const(layer.arrays[0])])
    graph = onnx.helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [onnx.helper.make_tensor_value_info("chips", onnx.TensorProto.UINT8, ["N", CHIP, CHIP, 3])],
        [onnx.helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, ["N", 128])],
        initializer=g.weights,
    )
    return onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=9
    )


def _out(size: int, kernel: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - kernel) // stride + 1


class DlibResNet:
    """dlib's 128-d face descriptor on aligned 150 px chips, through ONNX Runtime."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads  # one face at a time; dlib used one core too
        options.inter_op_num_threads = 1
        model = build_onnx(read_layers(path)).SerializeToString()
        self._session = onnxruntime.InferenceSession(
            model, options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, chips: np.ndarray) -> np.ndarray:
        """[N, 150, 150, 3] uint8 RGB chips -> [N, 128] float32 raw descriptors."""
        return self._session.run(None, {"chips": np.ascontiguousarray(chips, np.uint8)})[0]
