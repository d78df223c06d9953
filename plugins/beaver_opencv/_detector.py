"""The ``opencv`` face detector: YuNet through ``cv2.FaceDetectorYN``, embeddings via onnxruntime.

Imported by the plugin's factory only, so listing plugins never loads OpenCV.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from beaver.errors import ModelError
from beaver.faces.align import align_face
from beaver.fsutil import file_sha256
from beaver.interfaces import DetectedFace
from beaver.models.store import resolve_pack
from beaver_opencv._pack import PackFiles, corrupt, find_pack_files
from beaver_opencv._recognizer import Recognizer

YUNET_SIZE = 640
"""The input side YuNet was trained at: it misses faces much wider than half of it."""
_TOP_K = 5000  # candidates kept before NMS, OpenCV's default

Rows = npt.NDArray[np.float32]
"""``cv2.FaceDetectorYN`` rows: x, y, w, h, five (x, y) landmarks, score."""


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """Hide OpenCV's log lines while a model loads (5.x warns about targets on stderr)."""
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    level = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    try:
        yield
    finally:
        logging.setLogLevel(level)


def _resize(rgb: npt.NDArray[np.uint8], long_side: int) -> npt.NDArray[np.uint8]:
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Area averaging when shrinking avoids aliasing that would hide small faces.
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return np.asarray(cv2.resize(rgb, size, interpolation=interpolation), dtype=np.uint8)


class OpenCVFaceDetector:
    """Finds faces with YuNet and embeds them with the pack's recognizer. Not thread-safe."""

    def __init__(
        self,
        files: PackFiles,
        pack_label: str,
        *,
        min_score: float = 0.7,
        input_size: int = YUNET_SIZE,
        nms: float = 0.3,
    ) -> None:
        self.files = files
        self.input_size = input_size
        self._yunet = self._load_yunet(files.detector, min_score, nms)
        self._recognizer = Recognizer(files.recognizer)
        self.embedding_dim: int = self._recognizer.dim
        # Embeddings of different recognizers never mix: the recognizer's bytes name the space.
        digest = file_sha256(files.recognizer)[:16]
        self.model_id: str = f"opencv:{pack_label}:{digest}"

    @staticmethod
    def _load_yunet(path: Path, min_score: float, nms: float) -> cv2.FaceDetectorYN:
        try:
            with _quiet_opencv():
                yunet = cv2.FaceDetectorYN.create(
                    str(path), "", (YUNET_SIZE, YUNET_SIZE), min_score, nms, _TOP_K
                )
        except cv2.error as exc:
            raise corrupt(path, exc) from None
        try:
            # One tiny run proves the graph has YuNet's outputs, not just that it parses.
            yunet.setInputSize((32, 32))
            yunet.detect(np.zeros((32, 32, 3), dtype=np.uint8))
        except cv2.error:
            raise ModelError(
                f"{path}: not a YuNet face detector (OpenCV's FaceDetectorYN cannot run it).",
                hint="Use the OpenCV zoo's face_detection_yunet_2023mar.onnx: "
                "`beaver models pull yunet_sface`.",
            ) from None
        return yunet

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        """Every face in an RGB uint8 (H, W, 3) image, best first, in its pixel coordinates."""
        faces = self.locate(image)
        embeddings = self.embed(np.ascontiguousarray(image), [f.landmarks for f in faces])
        return [
            DetectedFace(f.bbox, f.score, f.landmarks, e)
            for f, e in zip(faces, embeddings, strict=True)
            if np.any(e)  # landmarks that fit no transform: the face cannot be embedded
        ]

    def locate(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        """Every face in an RGB uint8 image, best first, without embeddings."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            msg = f"need an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}"
            raise ValueError(msg)
        if image.shape[0] == 0 or image.shape[1] == 0:
            return []
        rows = self.find(np.ascontiguousarray(image))
        faces = []
        for row in rows[np.argsort(-rows[:, 14], kind="stable")]:
            x, y, w, h = (float(v) for v in row[:4])
            landmarks = tuple((float(px), float(py)) for px, py in row[4:14].reshape(5, 2))
            faces.append(DetectedFace((x, y, x + w, y + h), float(row[14]), landmarks))
        return faces

    def embed(
        self,
        image: npt.NDArray[np.uint8],
        landmarks: Sequence[Sequence[tuple[float, float]]],
    ) -> list[npt.NDArray[np.float32]]:
        """Embeddings of faces given by their five landmarks in an RGB image."""
        if not landmarks:
            return []
        crops: list[npt.NDArray[np.uint8] | None] = []
        for marks in landmarks:
            # YuNet lists the eye and mouth corner on the image's left first (the person's
            # right), then nose: already insightface's order, which align_face expects.
            try:
                crops.append(align_face(image, np.asarray(marks, dtype=np.float64)))
            except ValueError:
                crops.append(None)  # landmarks that fit no transform
        good = [c for c in crops if c is not None]
        vectors: Iterator[npt.NDArray[np.float32]] = iter(
            self._recognizer.embed(np.stack(good)) if good else []
        )
        dim = self.embedding_dim
        return [next(vectors) if c is not None else np.zeros(dim, dtype=np.float32) for c in crops]

    def find(self, image: npt.NDArray[np.uint8]) -> Rows:
        """YuNet's rows for an RGB image, mapped back to its pixels (no embeddings)."""
        rows = self.detect_at(image, self.input_size, border=0)
        if len(rows):
            return rows
        # Nothing found: maybe a close-up. YuNet misses faces much wider than ~300 px of
        # its input, so look again at the photo shrunk to a third of YuNet's size, with a
        # border for context (measured on close-up crops: as good as a wider border).
        content = max(32, min(self.input_size, YUNET_SIZE) // 3)
        return self.detect_at(image, content, border=content // 2)

    def detect_at(self, image: npt.NDArray[np.uint8], long_side: int, *, border: int) -> Rows:
        """Run YuNet on the image scaled to ``long_side`` inside a black ``border``."""
        small = _resize(image, long_side)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        if border:
            # Black, as OpenCV pads its input itself: the border only adds context.
            bgr = cv2.copyMakeBorder(
                bgr, border, border, border, border, cv2.BORDER_CONSTANT, value=(0, 0, 0)
            )
        self._yunet.setInputSize((bgr.shape[1], bgr.shape[0]))
        # The stubs say a Mat, but no face at all comes back as None.
        found: object = self._yunet.detect(bgr)[1]
        if found is None:
            return np.zeros((0, 15), dtype=np.float32)
        rows = np.array(found, dtype=np.float32).reshape(-1, 15)
        scale_x = small.shape[1] / image.shape[1]
        scale_y = small.shape[0] / image.shape[0]
        xs = [0, *range(4, 14, 2)]
        ys = [1, *range(5, 14, 2)]
        rows[:, xs] = (rows[:, xs] - border) / scale_x
        rows[:, ys] = (rows[:, ys] - border) / scale_y
        rows[:, 2] /= scale_x
        rows[:, 3] /= scale_y
        return rows


def pack_label(model_pack: str, folder: Path) -> str:
    """The pack's name for model ids: the name given, or the folder's name for a path."""
    name = Path(model_pack).name
    return name if name and name not in {".", ".."} else folder.resolve().name


def load_detector(
    model_pack: str,
    models_dir: Path | None,
    *,
    min_score: float,
    input_size: int,
    nms: float,
) -> OpenCVFaceDetector:
    """Resolve the pack, route its files and load both models."""
    if models_dir is None:
        from beaver.settings import BeaverSettings

        models_dir = BeaverSettings().models_dir
    folder = resolve_pack(model_pack, models_dir)
    files = find_pack_files(folder)
    return OpenCVFaceDetector(
        files,
        pack_label(model_pack, folder),
        min_score=min_score,
        input_size=input_size,
        nms=nms,
    )
