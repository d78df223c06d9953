"""Embeddings of aligned 112x112 face crops with onnxruntime: SFace or any ArcFace-style model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from beaver.errors import ModelError
from beaver_opencv._pack import CROP_SIZE, open_session, takes_face_crops

Preprocessing = Literal["sface", "arcface"]


def preprocessing_for(path: Path) -> Preprocessing:
    """How a recognizer wants its pixels, from its file name.

    SFace takes raw 0-255 RGB, as ``cv2.FaceRecognizerSF.feature`` feeds it; other
    recognizers get the ArcFace convention insightface uses, RGB scaled to [-1, 1].
    """
    return "sface" if "sface" in path.name.lower() else "arcface"


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime has it, then the CPU."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    wanted = ("CUDAExecutionProvider", "CPUExecutionProvider")
    return [p for p in wanted if p in available] or ["CPUExecutionProvider"]


class Recognizer:
    """One recognizer model: aligned RGB crops in, L2-normalised float32 embeddings out."""

    def __init__(self, path: Path, providers: list[str] | None = None) -> None:
        self.path = path
        self.preprocessing = preprocessing_for(path)
        self._session: Any = open_session(path, providers or default_providers())
        if not takes_face_crops(self._session):
            shapes = [list(i.shape) for i in self._session.get_inputs()]
            raise ModelError(
                f"{path}: not a face recognizer this plugin can feed: it takes {shapes}, "
                f"not one Nx3x{CROP_SIZE}x{CROP_SIZE} image batch.",
                hint="Use SFace (`beaver models pull yunet_sface`) or another 112x112 "
                "ArcFace-style recognizer.",
            )
        first = self._session.get_inputs()[0]
        self._input = first.name
        batch = first.shape[0]
        # A model exported with a fixed batch of 1 has to be fed one face at a time.
        self.batch: int | None = batch if isinstance(batch, int) else None
        self.dim = self._output_dim()

    def _output_dim(self) -> int:
        width = self._session.get_outputs()[0].shape[-1]
        if isinstance(width, int):
            return width
        blank = np.zeros((1, CROP_SIZE, CROP_SIZE, 3), dtype=np.uint8)
        return int(self._run(blank).shape[1])

    def _run(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        pixels = crops.astype(np.float32).transpose(0, 3, 1, 2)
        if self.preprocessing == "arcface":
            pixels = (pixels - 127.5) / 127.5
        out = self._session.run(None, {self._input: np.ascontiguousarray(pixels)})[0]
        return np.asarray(out, dtype=np.float32).reshape(len(crops), -1)

    def embed(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        """Embeddings of an (N, 112, 112, 3) uint8 batch of aligned RGB crops, one row each."""
        if len(crops) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.batch is None:
            raw = self._run(crops)
        else:
            raw = np.concatenate([self._run(crops[i : i + 1]) for i in range(len(crops))])
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        # A zero vector stays zero rather than turning into NaNs.
        normalised: npt.NDArray[np.float32] = (raw / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised
