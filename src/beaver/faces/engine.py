"""Build the face detector of a scan and name its embedding space cheaply.

Embeddings from different recognizers live in different spaces and must never be mixed,
so every stored face carries the detector's ``model_id``. Loading a model just to learn
its id would make a no-op re-scan slow, so the id is remembered in the store under a
fingerprint made from the plugin name, its options and the model files' sizes and mtimes.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from beaver.faces.scan import Engine
from beaver.faces.store import FaceStore
from beaver.models.store import resolve_pack
from beaver.plugins import FaceDetectorSpec
from beaver.settings import BeaverSettings

# Options that filter faces but do not change the embeddings.
_NOT_IN_FINGERPRINT = frozenset({"min_score", "workers"})


def scan_workers(settings: BeaverSettings) -> int:
    """Photos a scan works on at once: the setting, or up to 4 from the CPU count."""
    return settings.face.workers or max(1, min(4, os.cpu_count() or 1))


def detector_options(spec: FaceDetectorSpec, settings: BeaverSettings) -> dict[str, Any]:
    """The plugin's option values: ``[plugins.<name>]`` plus the face settings it declares."""
    values = spec.with_settings(
        settings.plugin_options(spec.name),
        {
            "model_pack": settings.face.model_pack,
            "models_dir": settings.models_dir,
            "min_score": settings.face.min_score,
            "workers": scan_workers(settings),
        },
    )
    fields = spec.options.model_fields
    providers = _DEVICE_PROVIDERS.get(settings.device)
    if providers and "providers" in fields and "providers" not in values:
        values["providers"] = providers
    return values


# `device` for onnxruntime-based detectors; "auto" leaves the plugin's own choice
# (CUDA when onnxruntime has it, else CPU).
_DEVICE_PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
}


def fingerprint(spec: FaceDetectorSpec, values: dict[str, Any]) -> str:
    """A cheap key that changes whenever the embedding model could have changed."""
    options = spec.parse_options(values).model_dump(mode="json")
    parts: dict[str, Any] = {
        "detector": spec.name,
        "options": {k: v for k, v in options.items() if k not in _NOT_IN_FINGERPRINT},
    }
    pack, models_dir = options.get("model_pack"), options.get("models_dir")
    if isinstance(pack, str) and isinstance(models_dir, str):
        # Raises a ModelError naming `beaver models pull` when the pack is not installed,
        # so a wrong --model-pack fails at once, even when no photo needs the model.
        folder = resolve_pack(pack, Path(models_dir))
        parts["files"] = sorted(
            (p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.glob("*.onnx")
        )
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def known_model_id(store: FaceStore, key: str) -> str | None:
    """The model id remembered for a fingerprint, if any."""
    return store.get_meta(f"engine:{key}")


def build_engine(
    spec: FaceDetectorSpec, values: dict[str, Any], store: FaceStore, key: str
) -> Engine:
    """Create the detector and remember its model id under ``key``."""
    detector = spec.create(values)
    model_id = getattr(detector, "model_id", None)
    if not isinstance(model_id, str) or not model_id:
        model_id = f"{spec.name}:{key}"
    with store.transaction() as db:
        store.set_meta(db, f"engine:{key}", model_id)
    return Engine(detector=detector, model_id=model_id)
