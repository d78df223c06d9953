"""First-party face detector: OpenCV zoo YuNet detection + SFace recognition."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from beaver import FaceDetectorSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class OpenCVOptions(BaseModel):
    """Options of the ``opencv`` detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_pack: str = Field("yunet_sface", description="Pack name in the models dir, or a folder.")
    score_threshold: float = Field(0.7, ge=0, le=1, description="YuNet score threshold.")
    input_size: int = Field(640, ge=160, description="Long side the image is scaled to.")


@hookimpl
def beaver_face_detectors() -> Iterator[FaceDetectorSpec]:
    """The OpenCV YuNet + SFace detector."""
    yield FaceDetectorSpec(
        name="opencv",
        factory=pending_factory("The opencv face detector"),
        options=OpenCVOptions,
        description="OpenCV zoo YuNet detector + SFace embedding (permissive weights)",
        licence="code MIT; weights YuNet MIT, SFace Apache-2.0",
        requires=("cv2", "onnxruntime"),
        install="eager-beaver[opencv]",
        check=pending_check,
    )
