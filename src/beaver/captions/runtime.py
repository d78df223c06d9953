"""What every model-backed captioner needs: find the weights, pick a device and a dtype.

Captioner plugins call these from their factories; nothing here imports torch or
huggingface_hub at module level, so ``beaver --help`` stays light.

* :func:`resolve_model` turns ``--model`` (a local folder or a Hugging Face hub id) into a
  local folder. A hub id is looked up in the hub cache first; it is downloaded only when
  the hub is reachable and ``HF_HUB_OFFLINE`` is not set. Missing weights offline give one
  line naming the model and the command that fetches it.
* :func:`pick_device` resolves ``auto`` to cuda, then mps, then cpu.
* :func:`pick_dtype` resolves ``auto`` to float16 on CUDA (bfloat16 where the GPU has it),
  float32 elsewhere.
* :func:`is_out_of_memory` tells the caption loop to retry with a smaller batch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from beaver.errors import ConfigError, ModelError

Dtype = Literal["auto", "float32", "float16", "bfloat16"]
DEVICES = ("auto", "cpu", "cuda", "mps")
_TRUE = {"1", "true", "yes", "on"}


def too_old(distribution: str, minimum: tuple[int, int], *, purpose: str = "") -> str | None:
    """Why ``distribution`` is older than ``minimum`` (from its metadata, nothing imported).

    None when it is recent enough, or not installed (a spec's ``requires`` reports that).
    """
    import importlib.metadata
    import re

    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    found = re.match(r"(\d+)\.(\d+)", version)
    if found is None or (int(found[1]), int(found[2])) >= minimum:
        return None
    wanted = ".".join(map(str, minimum))
    why = f" {purpose}" if purpose else ""
    return (
        f"needs {distribution}>={wanted}{why} (found {version}): "
        f"pip install -U '{distribution}>={wanted}'"
    )


def hub_offline() -> bool:
    """Whether the user asked for no hub traffic (``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE``)."""
    return any(
        os.environ.get(name, "").strip().lower() in _TRUE
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_cache_dir() -> str | None:
    """The Hugging Face hub cache as the environment says now (huggingface_hub reads it once)."""
    if cache := os.environ.get("HF_HUB_CACHE"):
        return cache
    if home := os.environ.get("HF_HOME"):
        return str(Path(home) / "hub")
    return None


def looks_like_path(text: str) -> bool:
    """A ``--model`` value meant as a folder rather than a hub id."""
    return (
        text.startswith((".", "/", "~"))
        or os.sep in text.rstrip(os.sep).split(os.sep, 2)[-1]
        or Path(text).expanduser().exists()
    )


def resolve_model(
    model: str,
    *,
    required: Sequence[str] = ("config.json",),
    what: str = "model",
    allow_patterns: Sequence[str] | None = None,
) -> Path:
    """The local folder holding ``model``'s files; raises ModelError with the fix.

    ``model`` is a folder (``~`` expanded) or a hub id such as
    ``Salesforce/blip-image-captioning-base``. ``required`` names files that must be in
    the folder (any one of the alternatives in a ``"a|b"`` entry) for it to count as a
    ``what``. ``allow_patterns`` limits what a download fetches (e.g. ``["*.onnx",
    "*.csv"]``).
    """
    if looks_like_path(model) or Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()
        if not folder.exists():
            raise ModelError(
                f"{folder}: no such model folder.",
                hint="Pass a folder that holds the model's files, or a Hugging Face hub id.",
            )
        if not folder.is_dir():
            raise ModelError(
                f"{folder}: not a folder.",
                hint="--model takes a model folder or a Hugging Face hub id.",
            )
        _check_files(folder, required, what)
        return folder
    folder = _from_hub(model, allow_patterns)
    _check_files(folder, required, what)
    return folder


def _check_files(folder: Path, required: Sequence[str], what: str) -> None:
    for entry in required:
        choices = entry.split("|")
        if not any((folder / name).is_file() for name in choices):
            raise ModelError(
                f"{folder}: not a {what} folder (no {' or '.join(choices)}).",
                hint="Point --model at a folder saved for this captioner, or at its hub id.",
            )


def _from_hub(repo_id: str, allow_patterns: Sequence[str] | None) -> Path:
    try:
        import huggingface_hub
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - transformers and open_clip depend on it
        raise ModelError(
            f"{repo_id}: looking up hub models needs huggingface_hub.",
            hint="pip install huggingface_hub, or pass a local model folder.",
        ) from None
    patterns = list(allow_patterns) if allow_patterns else None
    cache = hub_cache_dir()
    try:
        return Path(
            huggingface_hub.snapshot_download(
                repo_id, local_files_only=True, allow_patterns=patterns, cache_dir=cache
            )
        )
    except LocalEntryNotFoundError:
        pass  # not cached (or only partly): fetch below unless offline
    fetch = f"`hf download {repo_id}` (or `huggingface-cli download {repo_id}`)"
    if hub_offline():
        raise ModelError(
            f"{repo_id}: not in the Hugging Face cache, and HF_HUB_OFFLINE is set.",
            hint=f"Fetch it once while online with {fetch}, or pass a local folder with --model.",
        )
    try:
        return Path(
            huggingface_hub.snapshot_download(repo_id, allow_patterns=patterns, cache_dir=cache)
        )
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403, 404):
            raise ModelError(
                f"{repo_id}: no such model on the Hugging Face hub (or it is gated).",
                hint="Check the id (owner/name), or pass a local model folder with --model.",
            ) from None
        raise ModelError(
            f"{repo_id}: download failed ({_first_line(exc)}).",
            hint=f"Fetch it with {fetch} when the hub is reachable, or pass a local folder.",
        ) from None
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        raise ModelError(
            f"{repo_id}: not in the Hugging Face cache and the hub is unreachable "
            f"({_first_line(exc)}).",
            hint=f"Fetch it with {fetch} when online, or pass a local folder with --model.",
        ) from None


def pick_device(requested: str = "auto") -> str:
    """``auto`` → cuda, mps or cpu (first available); an explicit device must exist."""
    if requested not in DEVICES:
        raise ConfigError(
            f"Unknown device {requested!r}. Choose one of: {', '.join(DEVICES)}.",
        )
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if requested == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if requested == "cuda" and not cuda:
        raise ConfigError(
            "--device cuda: torch here has no usable CUDA GPU "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}).",
            hint="Use --device cpu, or install a CUDA build of torch.",
        )
    if requested == "mps" and not mps:
        raise ConfigError(
            "--device mps: Apple's Metal backend is not available here.",
            hint="Use --device cpu.",
        )
    return requested


def pick_dtype(requested: str, device: str) -> Any:
    """The torch dtype for ``requested`` on ``device``; ``auto`` is half precision on CUDA only."""
    import torch

    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if requested == "auto":
        if device != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if requested not in names:
        raise ConfigError(
            f"Unknown dtype {requested!r}. Choose one of: auto, {', '.join(names)}.",
        )
    if device == "cpu" and requested == "float16":
        raise ConfigError(
            "float16 on the CPU is not supported by most captioning models.",
            hint="Use --dtype float32 or bfloat16 on the CPU.",
        )
    return names[requested]


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a GPU (or MPS) out-of-memory error that a smaller batch may avoid."""
    name = type(exc).__name__
    if name == "OutOfMemoryError":
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and (
        "out of memory" in text or "mps backend out of memory" in text
    )


def free_accelerator_memory() -> None:
    """Release cached GPU memory after an out-of-memory error (no-op without torch/CUDA)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
