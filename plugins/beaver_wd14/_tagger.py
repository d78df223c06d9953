"""The ``wd14`` tagger: SmilingWolf-style ONNX booru taggers, run with onnxruntime.

A tagger folder holds ``model.onnx`` (input ``[N, H, W, 3]`` float32, BGR, 0-255; output
``[N, tags]`` sigmoid scores) and ``selected_tags.csv`` (``tag_id,name,category,count``,
one row per output column). Preprocessing and tag selection follow SmilingWolf's
wd-tagger Space (``app.py``), which kohya's ``tag_images_by_wd14_tagger.py`` and TagGUI
match: transparency composited on white, padded to a centred white square, bicubic
resize to the model's input, RGB to BGR, no normalisation; a tag is kept when its score
is above its category's threshold (or the MCut threshold), ratings are reported apart.

onnxruntime is imported only inside :func:`load_tagger`, which the plugin's factory calls.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from beaver.captions.runtime import looks_like_path, resolve_model
from beaver.errors import ConfigError, ModelError
from beaver.interfaces import Caption

if TYPE_CHECKING:
    from beaver_wd14 import WD14Options

MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"
TAGS_HEADER = "tag_id,name,category,count"
DEFAULT_SIZE = 448
"""Input side when the model leaves it open (every SmilingWolf tagger fixes it at 448)."""
RATING, GENERAL, CHARACTER = 9, 0, 4
"""``selected_tags.csv`` categories; others (artist, copyright, meta) are never written."""
CHARACTER_MCUT_FLOOR = 0.15
"""SmilingWolf's Space never lets MCut keep character tags scoring 0.15 or less."""
WHITE = (255, 255, 255)
KAOMOJIS = frozenset(
    {
        "0_0", "(o)_(o)", "+_+", "+_-", "._.", "<o>_<o>", "<|>_<|>", "=_=", ">_<", "3_3",
        "6_9", ">_o", "@_@", "^_^", "o_o", "u_u", "x_x", "|_|", "||_||",
    }
)  # fmt: skip
"""Tags whose underscores are the face itself (SmilingWolf's list): kept as written."""
OUTPUT_OPTIONS = (
    "general_threshold",
    "character_threshold",
    "general_mcut",
    "character_mcut",
    "rating",
    "max_tags",
    "remove_underscores",
    "escape_brackets",
    "exclude_tags",
)
"""Options that change the tags written, named in ``model_id`` when not the default."""

CUDA, COREML, CPU = "CUDAExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider"
Scores = npt.NDArray[np.float32]


class OutOfMemoryError(RuntimeError):
    """onnxruntime could not allocate a batch; the caption loop retries with a smaller one."""


@dataclass(frozen=True)
class TagTable:
    """``selected_tags.csv``: tag names in output order and where each category sits."""

    names: tuple[str, ...]
    ratings: npt.NDArray[np.intp]
    general: npt.NDArray[np.intp]
    characters: npt.NDArray[np.intp]


def read_tags(path: Path, hint: str) -> TagTable:
    """Parse ``selected_tags.csv``; ModelError naming the file (and line) when it is not one."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ModelError(f"{path}: cannot read the tag list ({exc}).", hint=hint) from None
    header = [cell.strip() for cell in rows[0]] if rows else []
    if "name" not in header or "category" not in header:
        found = ",".join(header) if header else "nothing"
        raise ModelError(
            f"{path}: not a WD14 tag list (its header is {found}; expected {TAGS_HEADER}).",
            hint=hint,
        )
    name_at, category_at = header.index("name"), header.index("category")
    names: list[str] = []
    categories: list[int] = []
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        try:
            names.append(row[name_at])
            categories.append(int(row[category_at]))
        except (IndexError, ValueError):
            raise ModelError(
                f"{path}, line {line}: not a tag row ({','.join(row)!r}; expected {TAGS_HEADER}).",
                hint=hint,
            ) from None
    if not names:
        raise ModelError(f"{path}: the tag list has no tags.", hint=hint)
    category = np.asarray(categories)
    return TagTable(
        names=tuple(names),
        ratings=np.flatnonzero(category == RATING),
        general=np.flatnonzero(category == GENERAL),
        characters=np.flatnonzero(category == CHARACTER),
    )


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """onnxruntime providers for ``device``: ``auto`` is CUDA when present, else the CPU."""
    if device == "auto":
        return [CUDA, CPU] if CUDA in available else [CPU]
    if device == "cpu":
        return [CPU]
    wanted = {"cuda": CUDA, "mps": COREML}.get(device)
    if wanted is None:
        raise ConfigError(f"Unknown device {device!r}. Choose one of: auto, cpu, cuda, mps.")
    if wanted not in available:
        fix = "pip install onnxruntime-gpu" if device == "cuda" else "use --device cpu"
        raise ConfigError(
            f"--device {device}: onnxruntime here has no {wanted} (it has {', '.join(available)}).",
            hint=f"Use --device cpu or auto, or {fix}.",
        )
    return [wanted, CPU]


def mcut_threshold(scores: npt.ArrayLike) -> float | None:
    """The midpoint of the largest gap between sorted scores (None with fewer than two)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64))[::-1]
    if ordered.size < 2:
        return None
    gap = int(np.argmax(ordered[:-1] - ordered[1:]))
    return float(ordered[gap] + ordered[gap + 1]) / 2


def prepare_image(image: Image.Image, size: int) -> npt.NDArray[np.float32]:
    """``(size, size, 3)`` float32 BGR 0-255: on white, padded square, bicubic resized."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (*WHITE, 255))
        canvas.alpha_composite(rgba)
        image = canvas.convert("RGB")
    elif image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    side = max(width, height)
    if width != height:
        square = Image.new("RGB", (side, side), WHITE)
        square.paste(image, ((side - width) // 2, (side - height) // 2))
        image = square
    if side != size:
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    pixels = np.asarray(image, dtype=np.float32)
    return pixels[:, :, ::-1]


def tag_text(name: str, *, remove_underscores: bool, escape_brackets: bool) -> str:
    """How a csv tag name is written: underscores to spaces (not in kaomoji), brackets escaped."""
    if remove_underscores and name not in KAOMOJIS:
        name = name.replace("_", " ")
    if escape_brackets:
        name = name.replace("(", "\\(").replace(")", "\\)")
    return name


def _match_key(tag: str) -> str:
    """Tags compare equal with or without underscores, escapes or capitals."""
    return tag.replace("\\", "").replace("_", " ").strip().lower()


class WD14Tagger:
    """Tags batches of images with one onnxruntime session.

    Satisfies :class:`beaver.interfaces.Captioner`: ``Caption.tags`` holds the kept tags
    (characters first, then general tags, each by falling score), ``text`` joins them with
    ``", "`` and ``extra`` holds the top rating and the kept tags' scores.
    """

    def __init__(
        self,
        session: Any,
        tags: TagTable,
        options: WD14Options,
        *,
        model_id: str,
        model_path: Path,
    ) -> None:
        self._session = session
        self.model_path = model_path
        self.model_id = model_id
        model_input = session.get_inputs()[0]
        self._input_name: str = model_input.name
        self._output_name: str = session.get_outputs()[0].name
        side, batch = model_input.shape[1], model_input.shape[0]
        self.image_size: int = side if isinstance(side, int) and side > 0 else DEFAULT_SIZE
        # kohya's way: a graph with a fixed batch axis takes batches of exactly that size.
        self.max_batch: int | None = batch if isinstance(batch, int) and batch > 0 else None
        self.providers: list[str] = list(session.get_providers())
        self._tags = tags
        self._options = options
        self._texts = tuple(
            tag_text(
                name,
                remove_underscores=options.remove_underscores,
                escape_brackets=options.escape_brackets,
            )
            for name in tags.names
        )
        excluded = {_match_key(t) for t in options.exclude_tags}
        self._excluded = np.asarray([_match_key(n) in excluded for n in tags.names], dtype=bool)

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """One caption of tags per image, in order; the batch is one model call."""
        if not images:
            return []
        scores = self.scores([prepare_image(image, self.image_size) for image in images])
        return [self._caption(row) for row in scores]

    def scores(self, pixels: Sequence[npt.NDArray[np.float32]]) -> Scores:
        """The model's ``[N, tags]`` scores for prepared images (see :func:`prepare_image`)."""
        if self.max_batch is None:
            return self._run(np.stack(pixels))
        parts = []
        for start in range(0, len(pixels), self.max_batch):
            chunk = list(pixels[start : start + self.max_batch])
            filler = [np.full_like(chunk[0], 255.0)] * (self.max_batch - len(chunk))
            parts.append(self._run(np.stack(chunk + filler))[: len(chunk)])
        return np.concatenate(parts)

    def _run(self, batch: npt.NDArray[np.float32]) -> Scores:
        try:
            out = self._session.run([self._output_name], {self._input_name: batch})[0]
        except Exception as exc:
            if not type(exc).__module__.startswith("onnxruntime"):
                raise
            text = str(exc)
            if "allocate" in text.lower() or "out of memory" in text.lower():
                msg = f"out of memory tagging {len(batch)} images: {_first_line(exc)}"
                raise OutOfMemoryError(msg) from exc
            raise ModelError(
                f"{self.model_path}: the tagger failed on a batch of {len(batch)} "
                f"({_first_line(exc)}).",
                hint="Check that this is a WD14-style tagger, or try --device cpu.",
            ) from exc
        scores = np.asarray(out, dtype=np.float32)
        if scores.shape != (len(batch), len(self._tags.names)):
            raise ModelError(
                f"{self.model_path}: the model gives scores of shape {scores.shape} for "
                f"{len(batch)} images, but {TAGS_FILE} lists {len(self._tags.names)} tags.",
                hint=f"Use the {TAGS_FILE} that came with this model.",
            )
        return scores

    def _caption(self, scores: Scores) -> Caption:
        options, table = self._options, self._tags
        characters = _pick(
            scores,
            table.characters,
            options.character_threshold,
            mcut=options.character_mcut,
            floor=CHARACTER_MCUT_FLOOR,
        )
        general = _pick(scores, table.general, options.general_threshold, mcut=options.general_mcut)
        kept = np.concatenate([characters, general])
        kept = kept[~self._excluded[kept]][: options.max_tags]
        rating = (
            int(table.ratings[np.argmax(scores[table.ratings])]) if table.ratings.size else None
        )
        if options.rating and rating is not None:
            kept = np.concatenate([[rating], kept])
        tags = tuple(self._texts[i] for i in kept)
        extra: dict[str, Any] = {
            "rating": None if rating is None else table.names[rating],
            "scores": {self._texts[i]: round(float(scores[i]), 4) for i in kept},
        }
        return Caption(text=", ".join(tags), tags=tags, extra=extra)


def _pick(
    scores: Scores,
    indices: npt.NDArray[np.intp],
    threshold: float,
    *,
    mcut: bool,
    floor: float = 0.0,
) -> npt.NDArray[np.intp]:
    """``indices`` scoring above the threshold (or MCut's, at least ``floor``), best first."""
    if mcut:
        cut = mcut_threshold(scores[indices])
        if cut is not None:
            threshold = max(floor, cut)
    kept = indices[scores[indices] > threshold]
    # Stable: equal scores keep the csv's order, so batches and single images agree.
    return kept[np.argsort(-scores[kept], kind="stable")]


def model_id(options: WD14Options) -> str:
    """``--model`` as given, plus the options that change the tags when not the default."""
    defaults = type(options)()
    changed = []
    for name in OUTPUT_OPTIONS:
        value = getattr(options, name)
        if value != getattr(defaults, name):
            changed.append(f"{name}={list(value) if isinstance(value, tuple) else value!r}")
    return f"{options.model} ({', '.join(changed)})" if changed else options.model


def load_tagger(options: WD14Options) -> WD14Tagger:
    """Resolve the model, read its tags, open one session and run it once."""
    folder = resolve_model(
        options.model,
        required=(MODEL_FILE, TAGS_FILE),
        what="WD14 tagger",
        allow_patterns=["*.onnx", "*.csv", "*.json"],
    )
    hint = _fix_hint(options.model)
    tags = read_tags(folder / TAGS_FILE, hint)
    model_path = folder / MODEL_FILE

    import onnxruntime

    providers = choose_providers(options.device, onnxruntime.get_available_providers())
    session_options = onnxruntime.SessionOptions()
    # Warnings (unassigned nodes, memcpy) go to stderr as noise; errors still show.
    session_options.log_severity_level = 3
    try:
        session = onnxruntime.InferenceSession(
            str(model_path), sess_options=session_options, providers=providers
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime has its own type for each bad file
        raise ModelError(
            f"{model_path}: not a readable ONNX model ({_first_line(exc)}).", hint=hint
        ) from None
    wanted = providers[0]
    if wanted != CPU and wanted not in session.get_providers() and options.device != "auto":
        raise ConfigError(
            f"--device {options.device}: onnxruntime could not start {wanted} "
            "(missing CUDA/cuDNN libraries?).",
            hint="Use --device cpu, or install the GPU libraries onnxruntime-gpu needs.",
        )
    _check_layout(session, model_path, len(tags.names), hint)
    tagger = WD14Tagger(session, tags, options, model_id=model_id(options), model_path=model_path)
    # One run now: a model that loads but cannot run fails here, naming its file.
    blank = np.full((tagger.image_size, tagger.image_size, 3), 255.0, dtype=np.float32)
    tagger.scores([blank])
    return tagger


def _check_layout(session: Any, model_path: Path, tag_count: int, hint: str) -> None:
    """A WD14 tagger: one NHWC float image input, one ``[N, tags]`` output."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shape = list(inputs[0].shape) if len(inputs) == 1 else []
    if len(shape) != 4 or shape[3] != 3 or inputs[0].type != "tensor(float)":
        found = ", ".join(f"{i.name} {i.type} {list(i.shape)}" for i in inputs)
        raise ModelError(
            f"{model_path}: not a WD14-style tagger (it takes {found}; a tagger takes one "
            "float image [N, height, width, 3]).",
            hint=hint,
        )
    height, width = shape[1], shape[2]
    if isinstance(height, int) and isinstance(width, int) and height != width:
        raise ModelError(
            f"{model_path}: the tagger's input is {width}x{height}; WD14 taggers take squares.",
            hint=hint,
        )
    out_shape = list(outputs[0].shape) if len(outputs) >= 1 else []
    width_out = out_shape[-1] if len(out_shape) == 2 else None
    if len(out_shape) != 2 or (isinstance(width_out, int) and width_out != tag_count):
        raise ModelError(
            f"{model_path}: the model gives {out_shape} scores but {TAGS_FILE} lists "
            f"{tag_count} tags.",
            hint=f"Use the {TAGS_FILE} that came with this model.",
        )


def _fix_hint(model: str) -> str:
    if looks_like_path(model) or Path(model).expanduser().is_dir():
        return (
            f"Put a WD14 tagger's {MODEL_FILE} and {TAGS_FILE} in that folder (e.g. from "
            "SmilingWolf/wd-swinv2-tagger-v3 on the Hugging Face hub), or pass its hub id."
        )
    return f"Fetch it again with `hf download {model} --force-download`, or pick another model."


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
