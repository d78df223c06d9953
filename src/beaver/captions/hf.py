"""Loading transformers captioners the same way: config checks, quiet loading, weight checks.

Used by the ``blip`` and ``florence2`` plugins and open to third-party ones. transformers
is imported only when a function needs it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Callable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import Any

from beaver.errors import ModelError


@dataclass
class LoadedModel:
    """A loaded transformers captioner: what its ``caption`` needs and what the core reads."""

    model: Any
    processor: Any
    _: KW_ONLY
    model_id: str
    """Recorded in captions.json (see :class:`beaver.interfaces.Captioner`)."""
    image_size: int
    """The longest side worth decoding: the processor's resize target."""
    device: str
    dtype: Any
    generate_kwargs: dict[str, Any] = field(default_factory=dict)


def read_config(folder: Path) -> dict[str, Any]:
    """The model's config.json as a dict; ModelError when it is not readable JSON."""
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: not a readable model config ({first_line(exc)}).") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: not a model config (expected a JSON object).")
    return config


def processor_side(image_processor: Any, default: int) -> int:
    """The longest side the image processor resizes to (e.g. 384 for BLIP)."""
    size = getattr(image_processor, "size", None)
    if size is None or not hasattr(size, "get"):
        return default
    sides = [size.get(key) for key in ("height", "width", "shortest_edge", "longest_edge")]
    found = [int(side) for side in sides if isinstance(side, int) and side > 0]
    return max(found) if found else default


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Keep transformers' progress bars and advice off the terminal while it loads or runs."""
    hf_logging: Any = importlib.import_module("transformers.utils.logging")

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_pretrained(
    folder: Path,
    *,
    processor: Callable[[str], Any],
    model: Callable[..., Any],
    what: str,
    hint: str,
    device: str,
    dtype: Any,
) -> tuple[Any, Any]:
    """``processor`` and ``model`` (``from_pretrained`` callables) loaded from ``folder``,
    the model on ``device`` in ``dtype`` and in eval mode.

    Any loading failure, and weights that lack one of the model's weight matrices (some
    other checkpoint: transformers would fill the gap with noise), is a ModelError naming
    the folder. A missing bias or buffer is accepted: older exports leave some out.
    """
    with quiet_transformers():
        try:
            loaded_processor = processor(str(folder))
            loaded, info = model(str(folder), output_loading_info=True)
        except Exception as exc:  # noqa: BLE001 - corrupt or mismatched files, in many types
            raise ModelError(
                f"{folder}: could not load this {what} ({first_line(exc)}).", hint=hint
            ) from None
    missing = sorted(k for k in info.get("missing_keys") or () if str(k).endswith(".weight"))
    if missing:
        raise ModelError(
            f"{folder}: the weights lack {len(missing)} of the model's tensors "
            f"(e.g. {missing[0]}); they are not a {what} checkpoint.",
            hint=hint,
        )
    # Loading with the default dtype and converting here works across transformers
    # versions (the keyword changed from torch_dtype to dtype).
    loaded.to(device=device, dtype=dtype)
    loaded.eval()
    return loaded_processor, loaded


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
