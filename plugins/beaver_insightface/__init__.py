"""First-party face detector: any insightface-format pack (SCRFD + ArcFace), via onnxruntime."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from beaver import FaceDetectorSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class InsightFaceOptions(BaseModel):
    """Options of the ``insightface`` detector."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_pack: str = Field("buffalo_l", description="Pack name in the models dir, or a folder.")
    det_size: int = Field(640, ge=160, description="Detector input size (square).")
    providers: list[str] | None = Field(
        None, description="onnxruntime providers; None: CUDA when present, else CPU."
    )


@hookimpl
def beaver_face_detectors() -> Iterator[FaceDetectorSpec]:
    """The insightface detector."""
    yield FaceDetectorSpec(
        name="insightface",
        factory=pending_factory("The insightface face detector"),
        options=InsightFaceOptions,
        description="insightface pack (SCRFD detector + ArcFace embedding), default buffalo_l",
        licence="code MIT; insightface weights non-commercial research only",
        requires=("insightface", "onnxruntime"),
        install="eager-beaver[insightface]",
        check=pending_check,
    )
