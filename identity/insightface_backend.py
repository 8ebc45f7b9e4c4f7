"""insightface face analysis from a model pack the user provides.

``FaceAnalysis`` loads every ``*.onnx`` in ``<root>/models/<pack>/`` and
recognises each model by its input/output shapes (buffalo_l: SCRFD-10G
detector ``det_10g.onnx`` + ArcFace ResNet-50 ``w600k_r50.onnx``; antelopev2:
``scrfd_10g_bnkps.onnx`` + ``glintr100.onnx``). Only detection and recognition
are loaded; the pack's landmark and gender/age models are skipped.

Embeddings are ArcFace's 512-d features, L2-normalised (``Face.normed_embedding``),
of the face aligned by insightface's own ``face_align.norm_crop`` on the
detector's 5 keypoints.

insightface is never allowed near the network: the pack folder is checked
before ``FaceAnalysis`` runs, and it is given that folder as a path, so its
download fallback (``ensure_available``) is never reached. Its bare
``AssertionError`` for a pack without a detector becomes ``AnalyzerUnavailable``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Self

import numpy as np

from identity.analyzer import DetectedFace, FaceSettings, l2_normalize
from identity.errors import AnalyzerUnavailable

# face_align calls scikit-image's deprecated SimilarityTransform.estimate on
# every crop; the warning is insightface's to fix and would reach CLI users.
warnings.filterwarnings(
    "ignore",
    message="`estimate` is deprecated",
    category=FutureWarning,
    module="insightface.utils.face_align",
)

EXPECTED_FILES = (
    "a face detector (SCRFD/RetinaFace ONNX, e.g. det_10g.onnx) and an ArcFace "
    "recognition model (e.g. w600k_r50.onnx)"
)


def pack_folder(settings: FaceSettings) -> Path:
    """``<root>/models/<pack>``, checked to hold ONNX models; never downloads."""
    pack = settings.insightface_pack
    if settings.insightface_root is None:
        raise AnalyzerUnavailable(
            "the insightface backend needs a model pack: set IMAGINE_INSIGHTFACE_ROOT to a "
            f"folder holding models/{pack}/ with {EXPECTED_FILES}"
        )
    folder = Path(settings.insightface_root).expanduser().resolve() / "models" / pack
    if not folder.is_dir():
        raise AnalyzerUnavailable(
            f"insightface model pack {pack!r} not found: expected the folder {folder} "
            f"with {EXPECTED_FILES} (models are never downloaded)"
        )
    if not any(folder.glob("*.onnx")) and not (folder / "manifest.json").is_file():
        nested = folder / pack  # antelopev2.zip unpacks into a folder of its own name
        hint = (
            f" (they are in {nested}: move them up one level)" if any(nested.glob("*.onnx")) else ""
        )
        raise AnalyzerUnavailable(
            f"insightface model pack folder {folder} holds no .onnx files{hint}; "
            f"expected {EXPECTED_FILES}"
        )
    return folder


def providers_for(device: str) -> list[str]:
    """ONNX Runtime execution providers for ``device`` ("auto" | "cpu" | "cuda")."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cpu" or (device == "auto" and not has_cuda):
        return ["CPUExecutionProvider"]
    if device in ("auto", "cuda"):
        if not has_cuda:
            raise AnalyzerUnavailable(
                f"device 'cuda' was asked for, but onnxruntime offers only {available} "
                "(install onnxruntime-gpu on a CUDA machine)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise AnalyzerUnavailable(f"the device must be 'auto', 'cpu' or 'cuda', not {device!r}")


class InsightFaceAnalyzer:
    name = "insightface"
    embedding_dim = 512  # ArcFace; read from the recognition model's output when loaded
    # SCRFD's own default det_thresh: scores are probabilities, real faces
    # score above 0.7 and background clutter below 0.5.
    min_detection_score = 0.5
    # Cosine similarity of normed ArcFace embeddings: same-person pairs
    # mostly score 0.4-0.8, different people under 0.2; 0.3 is the usual
    # verification operating point for insightface's recognition models.
    match_threshold = 0.30
    # detect(): the margin added on each side, as a share of the photo's longer side,
    # when no face is found (a face filling the frame ends up at half the padded side).
    pad_ratio = 0.5
    landmark_layout = "insightface-5"

    def __init__(self, app: Any, pack: str, providers: list[str]) -> None:
        from insightface.utils import face_align

        self._face_align = face_align
        self._detector = app.det_model
        self._recognizer = app.models["recognition"]
        self.providers = providers
        self.model_id = f"{pack}/{Path(self._recognizer.model_file).stem}"
        width = self._recognizer.output_shape[-1]  # [1, 512] for ArcFace
        if isinstance(width, int):
            self.embedding_dim = width

    @classmethod
    def from_settings(cls, settings: FaceSettings) -> Self:
        folder = pack_folder(settings)
        providers = providers_for(settings.device)
        from insightface.app import FaceAnalysis

        try:
            app = FaceAnalysis(
                name=str(folder),  # a folder path: loaded as is, never downloaded
                allowed_modules=["detection", "recognition"],
                providers=providers,
            )
        except AssertionError:  # FaceAnalysis asserts that a detector was found
            raise AnalyzerUnavailable(
                f"no face detector among {_onnx_names(folder)} in {folder}; expected "
                f"{EXPECTED_FILES}"
            ) from None
        except Exception as exc:  # onnxruntime's load errors share no narrower base class
            raise AnalyzerUnavailable(
                f"insightface could not load the model pack in {folder}: {exc}"
            ) from exc
        if "recognition" not in app.models:
            raise AnalyzerUnavailable(
                f"no ArcFace recognition model (input 1x3x112x112) among {_onnx_names(folder)} "
                f"in {folder}; expected {EXPECTED_FILES}"
            )
        if not app.det_model.use_kps:
            raise AnalyzerUnavailable(
                f"the detector {Path(app.det_model.model_file).name} in {folder} gives no "
                "5-point keypoints, which alignment needs; use a *_kps / buffalo detector"
            )
        ctx_id = 0 if providers[0] == "CUDAExecutionProvider" else -1
        app.prepare(ctx_id=ctx_id, det_thresh=cls.min_detection_score)
        return cls(app, settings.insightface_pack, providers)

    def detect(self, image: np.ndarray) -> list[DetectedFace]:
        """Faces in ``image``; when none is real, faces found on a padded copy.

        SCRFD runs at 640 px, and a face that fills the frame is then larger than its
        biggest anchors: it is missed. IP-Adapter FaceID's and InstantID's authors pad
        such photos before detection; so does this, once, with a black margin of
        ``pad_ratio`` of the longer side on every side, and maps the faces back into
        the photo's coordinates (``DetectedFace.padded``). Alignment then reads past the
        photo's edges as black, as it would have on the padded copy.
        """
        faces = self._scan(image)
        if any(f.score >= self.min_detection_score for f in faces):
            return faces
        margin = round(self.pad_ratio * max(image.shape[:2]))
        padded = np.pad(image, ((margin, margin), (margin, margin), (0, 0)))
        return self._scan(padded, offset=margin) or faces

    def _scan(self, image: np.ndarray, offset: int = 0) -> list[DetectedFace]:
        """Detections in ``image``, shifted by ``-offset`` (the margin of a padded copy)."""
        from insightface.app.common import Face

        boxes, kpss = self._detector.detect(_bgr(image))  # [N, 5] x0 y0 x1 y1 score, [N, 5, 2]
        boxes, kpss = np.array(boxes), np.array(kpss, dtype=np.float32)
        boxes[:, :4] -= offset
        kpss -= offset
        faces = []
        for i, row in enumerate(boxes):
            kps = kpss[i]  # [5, 2] eyes, nose tip, mouth corners
            left, right = sorted((kps[0], kps[1]), key=lambda p: float(p[0]))
            faces.append(
                DetectedFace(
                    box=(float(row[0]), float(row[1]), float(row[2]), float(row[3])),
                    score=float(row[4]),
                    left_eye=(float(left[0]), float(left[1])),
                    right_eye=(float(right[0]), float(right[1])),
                    nose=(float(kps[2][0]), float(kps[2][1])),
                    landmarks=kps,
                    native=Face(bbox=row[:4], kps=kps, det_score=float(row[4])),
                    padded=offset > 0,
                )
            )
        return sorted(faces, key=lambda f: f.score, reverse=True)

    def embed(self, image: np.ndarray, face: DetectedFace) -> np.ndarray:
        native: Any = face.native  # insightface's Face
        self._recognizer.get(_bgr(image), native)  # norm_crop to 112 px, sets .embedding
        return l2_normalize(native.normed_embedding)  # [512] float32

    def align(self, image: np.ndarray, face: DetectedFace, size: int) -> np.ndarray:
        if size % 112 and size % 128:
            raise ValueError(f"insightface crops are multiples of 112 or 128 px, got size={size}")
        # ArcFace's 5-point template, on the detector's keypoints.
        return self._face_align.norm_crop(image, landmark=face.landmarks, image_size=size)


def _bgr(image: np.ndarray) -> np.ndarray:
    """insightface's models take OpenCV's BGR order; ours are RGB."""
    return np.ascontiguousarray(image[:, :, ::-1])


def _onnx_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.onnx"))
