"""First-party face detector: OpenCV zoo YuNet detection + SFace recognition.

Its weights are permissive (YuNet MIT, SFace Apache-2.0), unlike insightface's packs,
which are for non-commercial research only: this is the detector for commercial use.
"""

from __future__ import annotations

import importlib.metadata
import re
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from beaver import FaceDetector, FaceDetectorSpec, hookimpl

MIN_OPENCV = (4, 9)
"""FaceDetectorYN reads YuNet 2023's output format from OpenCV 4.8; the extra pins 4.9."""
_OPENCV_DISTRIBUTIONS = (
    "opencv-python-headless",
    "opencv-python",
    "opencv-contrib-python-headless",
    "opencv-contrib-python",
)


class OpenCVOptions(BaseModel):
    """Options of the ``opencv`` detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_pack: str = Field("yunet_sface", description="Pack name in the models dir, or a folder.")
    models_dir: Path | None = Field(
        None, description="Where pack names are looked up; None: the models_dir setting."
    )
    min_score: float = Field(0.7, ge=0, le=1, description="YuNet score threshold.")
    input_size: int = Field(
        640, ge=160, description="Long side the image is scaled to before YuNet."
    )
    nms: float = Field(0.3, gt=0, le=1, description="Overlap (IoU) above which boxes merge.")


def _create(options: OpenCVOptions) -> FaceDetector:
    from beaver_opencv._detector import load_detector

    return load_detector(
        options.model_pack,
        options.models_dir,
        min_score=options.min_score,
        input_size=options.input_size,
        nms=options.nms,
    )


def opencv_version() -> tuple[int, ...] | None:
    """The installed OpenCV wheel's version from its metadata (cv2 is not imported)."""
    for dist in _OPENCV_DISTRIBUTIONS:
        try:
            text = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        return tuple(int(part) for part in re.findall(r"\d+", text)[:3])
    return None  # built from source or by a system package manager: assume it is fine


def check() -> str | None:
    """Why the plugin cannot run: an OpenCV too old for YuNet 2023, or None."""
    version = opencv_version()
    if version is not None and version < MIN_OPENCV:
        found = ".".join(str(v) for v in version)
        wanted = ".".join(str(v) for v in MIN_OPENCV)
        return (
            f"needs OpenCV {wanted} or newer (found {found}): pip install -U 'eager-beaver[opencv]'"
        )
    return None


@hookimpl
def beaver_face_detectors() -> Iterator[FaceDetectorSpec]:
    """The OpenCV YuNet + SFace detector."""
    yield FaceDetectorSpec(
        name="opencv",
        factory=_create,
        options=OpenCVOptions,
        description="OpenCV zoo YuNet detector + SFace embedding; permissive weights, "
        "fine for commercial use",
        licence="code MIT; weights YuNet MIT, SFace Apache-2.0",
        requires=("cv2", "onnxruntime"),
        install="eager-beaver[opencv]",
        check=check,
    )
