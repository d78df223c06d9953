"""Which file of an ``opencv`` model pack is the YuNet detector and which the recognizer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from beaver.errors import ModelError

YUNET_OUTPUTS = frozenset(
    f"{kind}_{stride}" for kind in ("cls", "obj", "bbox", "kps") for stride in (8, 16, 32)
)
"""The outputs ``cv2.FaceDetectorYN`` reads: a graph with all of them is a YuNet."""
CROP_SIZE = 112
"""Side of the aligned face crop every recognizer of this plugin takes."""
PULL_HINT = (
    "Run `beaver models pull yunet_sface`, or put the missing file into the folder "
    "(a YuNet face_detection_yunet_*.onnx and one 112x112 recognizer such as SFace)."
)


@dataclass(frozen=True)
class PackFiles:
    """The two models of a pack folder."""

    folder: Path
    detector: Path
    recognizer: Path


def corrupt(path: Path, exc: BaseException) -> ModelError:
    """The error for a model file that its runtime cannot load."""
    lines = str(exc).strip().splitlines() or [type(exc).__name__]
    # OpenCV prefixes "OpenCV(x.y) /io/opencv/…/file.cpp:123: error: (-210:…)": keep the reason.
    reason = lines[-1].rsplit("error: ", 1)[-1].split(" in function ")[0]
    return ModelError(
        f"{path}: not a readable ONNX model ({reason[:200]}).",
        hint="The file is damaged or not a model: delete it and run "
        "`beaver models pull yunet_sface` (or copy it again).",
    )


def open_session(path: Path, providers: Sequence[str] = ("CPUExecutionProvider",)) -> Any:
    """An onnxruntime session for ``path``; ModelError naming the file when it will not load."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: its warnings are for developers
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=list(providers))
    except Exception as exc:  # noqa: BLE001 - onnxruntime's error classes are not public API
        raise corrupt(path, exc) from None


def takes_face_crops(session: Any) -> bool:
    """Whether a session's one input is an Nx3x112x112 image batch (dynamic sizes allowed)."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
        return False
    _, channels, height, width = inputs[0].shape
    if isinstance(channels, int) and channels != 3:
        return False
    return all(d == CROP_SIZE for d in (height, width) if isinstance(d, int))


def is_yunet(session: Any) -> bool:
    """Whether a session has every output ``cv2.FaceDetectorYN`` reads."""
    return {o.name for o in session.get_outputs()} >= YUNET_OUTPUTS


def find_pack_files(folder: Path) -> PackFiles:
    """Route the .onnx files of ``folder``: names first, graphs only when names do not decide."""
    models = sorted(p for p in folder.glob("*.onnx") if p.is_file())
    if not models:
        raise ModelError(f"{folder}: no .onnx files in this model pack.", hint=PULL_HINT)
    detectors = [p for p in models if "yunet" in p.name.lower()]
    if not detectors:
        detectors = [p for p in models if is_yunet(open_session(p))]
    if not detectors:
        raise ModelError(
            f"{folder}: no YuNet face detector in this model pack "
            f"(looked at {', '.join(p.name for p in models)}).",
            hint=PULL_HINT,
        )
    # Several YuNets (the official file and a re-export): the first name wins, stably.
    detector = detectors[0]
    others = [p for p in models if p not in detectors]
    return PackFiles(folder, detector, _recognizer(folder, others))


def _recognizer(folder: Path, candidates: list[Path]) -> Path:
    if not candidates:
        raise ModelError(
            f"{folder}: no face recognizer in this model pack (only the YuNet detector).",
            hint=PULL_HINT,
        )
    if len(candidates) == 1:
        return candidates[0]
    sface = [p for p in candidates if "sface" in p.name.lower()]
    if len(sface) == 1:
        return sface[0]
    crops = [p for p in candidates if takes_face_crops(open_session(p))]
    if len(crops) == 1:
        return crops[0]
    names = ", ".join(p.name for p in (crops or candidates))
    raise ModelError(
        f"{folder}: cannot tell which model is the face recognizer ({names}).",
        hint="Keep one recognizer next to the YuNet detector, or register a folder that "
        "holds just the two: `beaver models add PATH --name NAME`.",
    )
