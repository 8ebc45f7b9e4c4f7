"""The ONNX port of dlib's face ResNet against dlib itself, on the same aligned chips.

``test_dlib_backend.py`` checks the analyzer end to end (chip extraction
included); this checks the port alone: the layers read from dlib's .dat file and
the graph rebuilt from them give dlib's own descriptors.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from identity.dlib_backend import MODEL_FILES, models_folder
from identity.dlib_resnet import CHIP, DlibResNet
from tests.photos import astronaut_image, encode, group, hopper


@pytest.fixture(scope="module")
def chips(dlib_analyzer) -> np.ndarray:
    """[N, 150, 150, 3] uint8 RGB: every real face of the test photos, aligned as dlib aligns."""
    found = []
    for data in (encode(astronaut_image()), hopper(), group()):
        pixels = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        for face in dlib_analyzer.detect(pixels):
            if face.score >= dlib_analyzer.min_detection_score:
                found.append(dlib_analyzer.align(pixels, face, CHIP))
    return np.stack(found)


def test_onnx_port_gives_dlibs_own_descriptors(chips):
    import dlib

    path = models_folder() / MODEL_FILES["embedding"]
    assert len(chips) >= 6  # two portraits and the group photo's faces

    got = DlibResNet(path)(chips)  # [N, 128] float32, raw (not normalised)
    reference = dlib.face_recognition_model_v1(str(path))
    expected = np.array(reference.compute_face_descriptor(list(chips)))  # [N, 128] float64

    assert got.shape == (len(chips), 128) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-5  # float rounding; raw norms are about 1.45
    cosine = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    assert cosine.min() > 1 - 1e-7  # the figure dlib_resnet.py's docstring gives
