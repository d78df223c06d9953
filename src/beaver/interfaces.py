"""What a plugin's factory returns: the runtime interfaces of detectors, captioners, trainers.

Plugins implement these protocols structurally; nothing needs to subclass them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    from PIL import Image


@dataclass(frozen=True)
class DetectedFace:
    """One face found in an image, in the pixel coordinates of the image passed in."""

    bbox: tuple[float, float, float, float]
    """``[x1, y1, x2, y2]``."""
    score: float
    landmarks: tuple[tuple[float, float], ...] = ()
    """Five points (eyes, nose, mouth corners) when the detector provides them."""
    embedding: npt.NDArray[np.float32] | None = None
    """Identity embedding, L2-normalised, when the plugin computes one."""


@runtime_checkable
class FaceDetector(Protocol):
    """Finds faces in an RGB ``uint8`` array of shape ``(H, W, 3)``."""

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        """Return every face found, best first."""
        ...


@runtime_checkable
class FaceLocator(Protocol):
    """Optional, for speed: a detector that can find faces and embed them separately.

    The scanner then embeds only the faces that pass its filters, each from a decode of the
    photo big enough for the recognizer, instead of every face ``detect`` finds.
    """

    def locate(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        """Every face found, best first, without embeddings."""
        ...

    def embed(
        self, image: npt.NDArray[np.uint8], landmarks: Sequence[Sequence[tuple[float, float]]]
    ) -> list[npt.NDArray[np.float32]]:
        """L2-normalised embeddings of the faces with these five-point landmarks."""
        ...


@dataclass(frozen=True)
class Caption:
    """A captioner's answer for one image."""

    text: str
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Captioner(Protocol):
    """Captions a batch of RGB PIL images."""

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """Return one caption per image, in order."""
        ...


@runtime_checkable
class Trainer(Protocol):
    """Turns a training plan (``beaver.train.plan.TrainPlan``) into one trainer's files."""

    def write(self, plan: Any, out_dir: Path) -> list[Path]:
        """Write the backend's files under ``out_dir``; return the paths written."""
        ...

    def script(self, plan: Any, out_dir: Path) -> str:
        """Bash lines that launch the trainer, for train.sh (run under ``set -euo pipefail``).

        They check the trainer is installed, and if not say how to install it and
        ``exit 3``; then they launch it in the foreground.
        """
        ...

    def launch_problem(self, plan: Any) -> str | None:
        """Why ``beaver train --run`` cannot launch this backend now, or None."""
        ...
