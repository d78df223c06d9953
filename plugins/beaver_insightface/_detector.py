"""The ``insightface`` detector: SCRFD finds faces, our alignment crops them, ArcFace embeds them.

insightface and onnxruntime are imported only inside :func:`load_detector`, which the
plugin's factory calls; everything here works with insightface 0.7.3's API as well as
2.x's (``model_zoo.get_model``, the detector's ``prepare``/``detect``, the recognizer's
``session``/``input_mean``/``input_std``/``input_size``/``taskname``).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from beaver.errors import ConfigError, ModelError
from beaver.faces.align import align_face
from beaver.fsutil import file_sha256
from beaver.interfaces import DetectedFace
from beaver_insightface import _onnx_peek

if TYPE_CHECKING:
    from beaver_insightface import InsightFaceOptions

PLUGIN_NAME = "insightface"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
MAX_BATCH = 32
"""Most aligned crops per recognizer call: bounds memory on crowd photos."""

Embeddings = npt.NDArray[np.float32]


def choose_providers(requested: Sequence[str] | None, available: Sequence[str]) -> list[str]:
    """The onnxruntime providers to use: CUDA first when present unless the user named some."""
    if requested is None:
        return [CUDA, CPU] if CUDA in available else [CPU]
    missing = [p for p in requested if p not in available]
    if missing:
        raise ConfigError(
            f"onnxruntime here has no {', '.join(missing)} (it has {', '.join(available)}).",
            hint="Set [plugins.insightface] providers to some of those, or leave it unset "
            "to pick CUDA when present, else CPU.",
        )
    return list(requested)


@dataclass(frozen=True)
class PackFiles:
    """The two files of a pack that beaver uses, and what the detector's input fixes."""

    folder: Path
    detector: Path
    recognizer: Path
    detector_size: tuple[int, int] | None
    """``(width, height)`` when the detector's input is fixed, else None (any size)."""


def find_pack_files(folder: Path, pack: str) -> PackFiles:
    """Pick the detector and the recognizer among a pack's .onnx files, reading no weights.

    The first of each kind in name order wins, as in insightface's FaceAnalysis; other
    models (landmarks, gender/age) are never loaded.
    """
    files = sorted(folder.glob("*.onnx"))
    if not files:
        raise ModelError(
            f"{folder}: no .onnx files in this model pack.",
            hint=_pack_hint(pack),
        )
    detector: tuple[Path, _onnx_peek.OnnxSignature] | None = None
    recognizer: Path | None = None
    for path in files:
        try:
            signature = _onnx_peek.peek(path)
        except (OSError, _onnx_peek.OnnxPeekError) as exc:
            raise _corrupt(path, pack, exc) from None
        task = _onnx_peek.route(signature)
        if task == "detection" and detector is None:
            detector = (path, signature)
        elif task == "recognition" and recognizer is None:
            recognizer = path
    if detector is None:
        raise ModelError(
            f"{folder}: no face detector in this model pack "
            "(an SCRFD .onnx with landmarks, such as det_10g.onnx).",
            hint=_pack_hint(pack),
        )
    if recognizer is None:
        raise ModelError(
            f"{folder}: no face recognizer in this model pack "
            "(an ArcFace-style .onnx taking 112x112 crops, such as w600k_r50.onnx).",
            hint=_pack_hint(pack),
        )
    det_path, det_signature = detector
    if not _onnx_peek.has_landmarks(det_signature):
        raise ModelError(
            f"{det_path}: this detector gives no face landmarks, which beaver needs "
            "to align faces.",
            hint="Use an SCRFD model with keypoints (its name usually ends in kps.onnx).",
        )
    return PackFiles(folder, det_path, recognizer, _onnx_peek.fixed_spatial_size(det_signature))


def _pack_hint(pack: str) -> str:
    from beaver.models.catalog import known_packs

    if pack in known_packs():
        return f"Download it again with `beaver models pull {pack}`, or pick another pack."
    return "Replace the file, or pick another pack (`beaver models list` shows installed ones)."


def _corrupt(path: Path, pack: str, exc: BaseException) -> ModelError:
    return ModelError(
        f"{path}: not a readable ONNX model ({_first_line(exc)}).", hint=_pack_hint(pack)
    )


@contextlib.contextmanager
def _quiet_third_party() -> Iterator[None]:
    """Hide what insightface and its imports print or warn about while models load."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        # insightface 0.7.x prints "Applied providers…" and det_size notes on stdout,
        # where beaver writes its data (--json); they are progress chatter, not results.
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface(\.|$)")
        warnings.filterwarnings(
            "ignore", category=DeprecationWarning, module=r"(insightface|onnx)(\.|$)"
        )
        # albumentations, imported by insightface 0.7.x, checks PyPI for a newer version.
        warnings.filterwarnings(
            "ignore", message=r"A new version of Albumentations", category=UserWarning
        )
        yield


class InsightFaceDetector:
    """Finds faces with a pack's SCRFD model and embeds them with its ArcFace-style model.

    Satisfies :class:`beaver.interfaces.FaceDetector`. ``model_id`` names the embedding
    space: embeddings with different ids must never be compared.
    """

    def __init__(
        self,
        *,
        detector: Any,
        recognizer: Any,
        files: PackFiles,
        model_id: str,
        detector_size: tuple[int, int],
        dynamic_input: bool = False,
        concurrency: int = 1,
    ) -> None:
        self._detector = detector
        self.concurrency = concurrency
        """Threads that may call this detector at once (onnxruntime sessions are thread-safe)."""
        self._recognizer = recognizer
        self.files = files
        self.model_id = model_id
        self.detector_size = detector_size
        self.dynamic_input = dynamic_input
        session = recognizer.session
        self._session = session
        self._input_name: str = session.get_inputs()[0].name
        self._output_name: str = session.get_outputs()[0].name
        batch = session.get_inputs()[0].shape[0]
        # A fixed batch axis (mobilefacenet exports often say 1) takes one crop per call.
        self.batch_size = batch if isinstance(batch, int) and batch > 0 else MAX_BATCH
        self.crop_size = int(recognizer.input_size[0])
        self._mean = np.float32(recognizer.input_mean)
        self._scale = np.float32(1.0 / float(recognizer.input_std))
        self.providers: list[str] = list(session.get_providers())
        blank = np.zeros((self.crop_size, self.crop_size, 3), dtype=np.uint8)
        self.embedding_dim = int(self._run([blank]).shape[1])

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        """Every face in an RGB ``uint8`` image, best first, with L2-normalised embeddings."""
        faces = self.locate(image)
        embeddings = self.embed(image, [f.landmarks for f in faces])
        return [
            DetectedFace(bbox=f.bbox, score=f.score, landmarks=f.landmarks, embedding=e)
            for f, e in zip(faces, embeddings, strict=True)
        ]

    def locate(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        """Every face in an RGB ``uint8`` image, best first, without embeddings."""
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            msg = f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}"
            raise ValueError(msg)
        dets, kpss = self._find(image)
        if len(dets) == 0:
            # A face filling the whole frame (a selfie, a tight crop) has no context for
            # SCRFD's anchors; a margin around the photo lets it be found. Such a face is
            # big, so half the detector size is enough: the retry costs a quarter.
            half = (self.detector_size[0] // 2, self.detector_size[1] // 2)
            dets, kpss = self._find(image, margin=0.25, box=half)
            if len(dets) == 0:
                return []
            h, w = image.shape[:2]
            dets[:, [0, 2]] = dets[:, [0, 2]].clip(0, w)
            dets[:, [1, 3]] = dets[:, [1, 3]].clip(0, h)
        order = np.argsort(-dets[:, 4], kind="stable")
        return [
            DetectedFace(
                bbox=(float(d[0]), float(d[1]), float(d[2]), float(d[3])),
                score=float(d[4]),
                landmarks=tuple((float(x), float(y)) for x, y in kps),
            )
            for d, kps in zip(dets[order], kpss[order], strict=True)
        ]

    def _find(
        self,
        image: npt.NDArray[np.uint8],
        *,
        margin: float = 0.0,
        box: tuple[int, int] | None = None,
    ) -> tuple[Any, Any]:
        """Detections (boxes with scores, landmarks) in ``image``'s own pixels."""
        import cv2

        # Scale to the detector's size here, as insightface would, but on the RGB array
        # and with area averaging: the channel swap then copies a 640 px image, not a
        # 12 MP one. A dynamic-size detector gets an input that fits the photo's aspect
        # (640x480 for 4:3) instead of a square, padded canvas: less work at the same
        # scale, so the same faces.
        h, w = image.shape[:2]
        box_w, box_h = box or self.detector_size
        grow = 1.0 + 2.0 * margin
        scale = min(box_w / (w * grow), box_h / (h * grow))
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        shrunk: npt.NDArray[Any] = image
        # Halving by area averaging is exact and fast; the last step (under 2x) is linear.
        # 2000x1500 -> 640x480 takes 2.4 ms this way, 13 ms with one INTER_AREA resize.
        while shrunk.shape[1] >= 2 * size[0] and shrunk.shape[0] >= 2 * size[1]:
            half = (shrunk.shape[1] // 2, shrunk.shape[0] // 2)
            shrunk = cv2.resize(shrunk, half, interpolation=cv2.INTER_AREA)
        if (shrunk.shape[1], shrunk.shape[0]) != size:
            shrunk = cv2.resize(shrunk, size, interpolation=cv2.INTER_LINEAR)
        pad = round(max(size) * margin)
        if pad:
            shrunk = cv2.copyMakeBorder(shrunk, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
        shown = (size[0] + 2 * pad, size[1] + 2 * pad)
        input_size = box or self.detector_size
        if self.dynamic_input:
            input_size = (_multiple_of_32(shown[0]), _multiple_of_32(shown[1]))
        # insightface takes BGR (cv2.imread's order) and swaps back to RGB itself.
        bgr = np.ascontiguousarray(shrunk[:, :, ::-1])
        dets, kpss = self._detector.detect(bgr, input_size=input_size, max_num=0)
        if dets is None or len(dets) == 0 or kpss is None:
            return np.zeros((0, 5), dtype=np.float32), np.zeros((0, 5, 2), dtype=np.float32)
        # insightface maps boxes back to the array it was given; undo our margin and resize.
        sx, sy = w / size[0], h / size[1]
        dets = dets.copy()
        dets[:, [0, 2]] = (dets[:, [0, 2]] - pad) * sx
        dets[:, [1, 3]] = (dets[:, [1, 3]] - pad) * sy
        kpss = (kpss - pad) * np.array([sx, sy], dtype=np.float32)
        return dets, kpss

    def embed(
        self,
        image: npt.NDArray[np.uint8],
        landmarks: Sequence[Sequence[tuple[float, float]]],
    ) -> list[npt.NDArray[np.float32]]:
        """Embeddings of faces given by their five landmarks in ``image`` (RGB)."""
        crops = [
            align_face(image, np.asarray(marks, dtype=np.float32), self.crop_size)
            for marks in landmarks
        ]
        return list(self.embed_crops(crops))

    def embed_crops(self, crops: Sequence[npt.NDArray[np.uint8]]) -> Embeddings:
        """L2-normalised embeddings, shape ``(len(crops), dim)``, of aligned RGB crops."""
        if not crops:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        raw = self._run(crops)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        normalised: Embeddings = (raw / np.maximum(norms, 1e-12)).astype(np.float32)
        return normalised

    def _run(self, crops: Sequence[npt.NDArray[np.uint8]]) -> Embeddings:
        """The recognizer's raw output for the crops, in batches it accepts."""
        parts = []
        for start in range(0, len(crops), self.batch_size):
            batch = np.stack(crops[start : start + self.batch_size])
            # As insightface's get_feat: its BGR crops go through blobFromImages with
            # swapRB, so the network sees RGB, (pixel - mean) / std, channels first.
            blob = (batch.astype(np.float32) - self._mean) * self._scale
            blob = np.ascontiguousarray(blob.transpose(0, 3, 1, 2))
            out = self._session.run([self._output_name], {self._input_name: blob})[0]
            parts.append(np.asarray(out, dtype=np.float32).reshape(len(batch), -1))
        return np.concatenate(parts)


def _multiple_of_32(value: int) -> int:
    return max(32, -(-value // 32) * 32)


def load_detector(options: InsightFaceOptions) -> InsightFaceDetector:
    """Resolve the pack, load its detector and recognizer only, and warm both up."""
    from beaver.models.store import resolve_pack

    models_dir = options.models_dir
    if models_dir is None:
        from beaver.settings import load_settings

        models_dir = load_settings().settings.models_dir
    folder = resolve_pack(options.model_pack, models_dir)
    pack = Path(options.model_pack).name or options.model_pack
    files = find_pack_files(folder, pack)
    model_id = f"{PLUGIN_NAME}:{pack}:{file_sha256(files.recognizer)[:16]}"

    with _quiet_third_party():
        import onnxruntime
        from insightface import model_zoo

        providers = choose_providers(options.providers, onnxruntime.get_available_providers())
        cpu_only = providers == [CPU]
        # On CPU each of the scan's workers runs a photo on its own share of the cores.
        threads = max(1, (os.cpu_count() or 1) // options.workers) if cpu_only else 1
        options_ = _session_options(onnxruntime, threads)
        detector = _get_model(model_zoo, files.detector, providers, "detection", pack, options_)
        recognizer = _get_model(
            model_zoo, files.recognizer, providers, "recognition", pack, options_
        )
        size = files.detector_size or (options.det_size, options.det_size)
        if cpu_only:
            _share_one_session(detector)
        try:
            detector.prepare(
                0, input_size=size, det_thresh=options.min_score, nms_thresh=options.nms
            )
            recognizer.prepare(0)
            # Runs each model once now, so a model that loads but cannot run fails here,
            # naming its file, and first-call setup is not paid on the first photo.
            detector.detect(np.zeros((32, 32, 3), dtype=np.uint8), input_size=size, max_num=0)
            return InsightFaceDetector(
                detector=detector,
                recognizer=recognizer,
                files=files,
                model_id=model_id,
                detector_size=size,
                dynamic_input=files.detector_size is None,
                concurrency=options.workers,
            )
        except Exception as exc:  # any runtime failure here means a bad model
            raise ModelError(
                f"{files.folder}: the model pack loads but does not run "
                f"({type(exc).__name__}: {_first_line(exc)}).",
                hint=_pack_hint(pack),
            ) from exc


def _session_options(onnxruntime: Any, threads: int) -> Any:
    """``threads`` intra-op threads and no busy-waiting: photo decoding shares the CPU.

    Measured on 2 cores, 60 photos of 12 MP: a scan took 8.4 s without spin-waiting and
    11.5 s with onnxruntime's default spinning, which starves the decode threads (alone,
    spinning makes the recognizer faster: 3.0 vs 6.0 ms a face). With one thread per
    worker the question does not arise: each run stays on its calling thread.
    """
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _share_one_session(detector: Any) -> None:
    """Run every input size through the pack's one (dynamic-shape) detector session.

    insightface 2.x builds a new static-shape session for each input size it meets; the
    scan's inputs follow each photo's aspect, so a library would pay a session build
    (70 ms, measured) for every new aspect ratio, for no speed-up on CPU (45.7 vs 48.4 ms
    a 640x480 photo). insightface 0.7.x has a single session and no such attribute.
    """
    if getattr(detector, "static_shape_sessions", False) and hasattr(
        detector, "_reset_resolution_session_pool"
    ):
        detector.static_shape_sessions = False
        detector._reset_resolution_session_pool()


def _get_model(
    model_zoo: Any, path: Path, providers: list[str], task: str, pack: str, options: Any
) -> Any:
    try:
        model = model_zoo.get_model(str(path), providers=providers, sess_options=options)
    except Exception as exc:  # onnx and onnxruntime raise many types
        raise _corrupt(path, pack, exc) from exc
    found = getattr(model, "taskname", None)
    if found != task:
        raise ModelError(
            f"{path}: insightface does not load this file as a {task} model "
            f"(it says {found or 'unknown model'}).",
            hint=_pack_hint(pack),
        )
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
