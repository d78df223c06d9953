"""First-party face detector: any insightface-format pack (SCRFD + ArcFace), via onnxruntime."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from beaver import FaceDetectorSpec, hookimpl

if TYPE_CHECKING:
    from beaver_insightface._detector import InsightFaceDetector


class InsightFaceOptions(BaseModel):
    """Options of the ``insightface`` detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_pack: str = Field(
        "buffalo_l", min_length=1, description="Pack name in the models dir, or a folder."
    )
    models_dir: Path | None = Field(
        None, description="Where pack names are looked up; None: the configured models dir."
    )
    min_score: float = Field(
        0.5, ge=0, le=1, description="Detection score threshold (SCRFD's det_thresh)."
    )
    det_size: int = Field(
        640, ge=160, multiple_of=32, description="Detector input size (square, multiple of 32)."
    )
    providers: list[str] | None = Field(
        None, min_length=1, description="onnxruntime providers; None: CUDA when present, else CPU."
    )
    nms: float = Field(
        0.4, gt=0, le=1, description="Overlap (IoU) above which two detections are one face."
    )
    workers: int = Field(
        1,
        ge=1,
        description="Photos detected at once; on CPU, onnxruntime's threads are split among them.",
    )


def create_detector(options: InsightFaceOptions) -> InsightFaceDetector:
    """The factory: loads the pack's detector and recognizer (imports insightface)."""
    from beaver_insightface._detector import load_detector

    return load_detector(options)


def check() -> str | None:
    """Cheap readiness check: finds the modules the factory imports without importing them."""
    missing = [m for m in ("insightface", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return f"needs {', '.join(missing)}: pip install 'eager-beaver[insightface]'"
    # insightface imports cv2 but does not depend on any OpenCV distribution.
    if importlib.util.find_spec("cv2") is None:
        return "needs cv2: pip install opencv-python-headless"
    return None


@hookimpl
def beaver_face_detectors() -> Iterator[FaceDetectorSpec]:
    """The insightface detector."""
    yield FaceDetectorSpec(
        name="insightface",
        factory=create_detector,
        options=InsightFaceOptions,
        description="insightface pack (SCRFD detector + ArcFace embedding), default buffalo_l",
        licence="code MIT; insightface weights non-commercial research only",
        requires=("insightface", "onnxruntime"),
        install="eager-beaver[insightface]",
        check=check,
    )
