"""A tiny WD14-format booru tagger, generated on the fly, for the ``wd14`` plugin.

It is a folder like SmilingWolf's taggers: ``model.onnx`` takes ``[N, S, S, 3]`` float32
pixels, 0-255, in BGR order (the layout of kohya's and SmilingWolf's preprocessing), and
gives sigmoid scores ``[N, tags]``; ``selected_tags.csv`` names the tags, one row per
output column, with the rating tags first as in the real files.

Each tag's score is a sigmoid of a linear function of three mean colours of the model's
input: the whole square, its top eighth and its left eighth. So a solid red photo scores
``red_hair`` about 0.90, a wide photo padded with white above and below scores
``letterboxed``, and :func:`tag_probabilities` says what any colours score. The files are
a few KB and need only ``onnx`` to build; a batch runs in well under a millisecond.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

if TYPE_CHECKING:
    import onnx

RGB = tuple[int, int, int]
Weights = tuple[float, float, float]

MODEL_FILE = "model.onnx"
TAGS_FILE = "selected_tags.csv"
TAGS_HEADER = ("tag_id", "name", "category", "count")
RATING, GENERAL, CHARACTER = 9, 0, 4
"""``selected_tags.csv`` categories."""

RED: RGB = (255, 0, 0)
GREEN: RGB = (0, 255, 0)
BLUE: RGB = (0, 0, 255)
YELLOW: RGB = (255, 255, 0)
WHITE: RGB = (255, 255, 255)
BLACK: RGB = (0, 0, 0)

INPUT_NAME = "input_1"
OUTPUT_NAME = "predictions_sigmoid"
_OPSET = 17
_IR_VERSION = 8  # old enough for every onnxruntime beaver supports


@dataclass(frozen=True)
class TinyTag:
    """One output of the tiny tagger: ``sigmoid(bias + w · colour)`` over three mean colours.

    Each weight triple is in RGB order and applies to a mean colour scaled to 0-1.
    """

    name: str
    category: int
    bias: float
    mean: Weights = (0.0, 0.0, 0.0)
    """Weights on the mean colour of the whole model input."""
    top: Weights = (0.0, 0.0, 0.0)
    """Weights on the mean colour of its top eighth (white when padded above and below)."""
    left: Weights = (0.0, 0.0, 0.0)
    """Weights on the mean colour of its left eighth (white when padded left and right)."""


DEFAULT_TAGS: tuple[TinyTag, ...] = (
    TinyTag("general", RATING, 1.0),  # 0.73 everywhere
    TinyTag("sensitive", RATING, -1.5, mean=(3, -3, -3)),  # 0.82 on red: the top rating there
    TinyTag("questionable", RATING, -3.0),
    TinyTag("explicit", RATING, -4.0),
    TinyTag("1girl", GENERAL, 1.0),  # 0.73 everywhere
    TinyTag("solo", GENERAL, 0.2),  # 0.55 everywhere
    TinyTag("red_hair", GENERAL, -1.8, mean=(4, -4, -4)),  # 0.90 on red
    TinyTag("blue_sky", GENERAL, -1.8, mean=(-4, -4, 4)),  # 0.90 on blue
    TinyTag("^_^", GENERAL, -5.0, mean=(4, 4, -8)),  # 0.95 on yellow
    TinyTag("hood_(clothing)", GENERAL, 2.0, mean=(-3, -3, -3)),  # 0.88 on black
    TinyTag("letterboxed", GENERAL, -7.0, top=(3, 3, 3)),  # 0.88 with a white top strip
    TinyTag("pillarboxed", GENERAL, -7.0, left=(3, 3, 3)),  # 0.88 with a white left strip
    TinyTag("hatsune_miku", CHARACTER, -1.5, mean=(-4, 4, 2)),  # 0.92 on green
    TinyTag("kagamine_rin", CHARACTER, -2.0, mean=(2, 2, -4)),  # 0.88 on yellow, 0.5 on red
)
"""The default tags: four ratings, eight general tags (one kaomoji, one with brackets),
two characters. Comments give the scores of solid colours."""


def _sigmoid(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = 1.0 / (1.0 + np.exp(-x))
    return result


def _weights(tags: Sequence[TinyTag]) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """``[9, T]`` weights over (mean, top, left) colours, each in the model's BGR order."""
    rows = [[w / 255.0 for group in (t.mean, t.top, t.left) for w in reversed(group)] for t in tags]
    return (
        np.asarray(rows, dtype=np.float32).T.copy(),
        np.asarray([t.bias for t in tags], dtype=np.float32),
    )


def tag_probabilities(
    mean: Sequence[float],
    top: Sequence[float] | None = None,
    left: Sequence[float] | None = None,
    *,
    tags: Sequence[TinyTag] = DEFAULT_TAGS,
) -> dict[str, float]:
    """Every tag's score for an input with these mean RGB colours (0-255).

    ``top`` and ``left`` default to ``mean``, as for a solid square image.
    """
    colours = [mean, mean if top is None else top, mean if left is None else left]
    features = np.asarray([c[::-1] for c in colours], dtype=np.float64).reshape(9)
    weights, bias = _weights(tags)
    scores = _sigmoid(features @ weights.astype(np.float64) + bias.astype(np.float64))
    return {t.name: float(s) for t, s in zip(tags, scores, strict=True)}


def _tagger_model(tags: Sequence[TinyTag], size: int | None, batch: int | None) -> onnx.ModelProto:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if not tags:
        raise ValueError("a tagger needs at least one tag")
    if size is not None and size < 8:
        msg = f"size must be None (dynamic) or >= 8, got {size}"
        raise ValueError(msg)
    if batch is not None and batch < 1:
        msg = f"batch must be None (dynamic) or >= 1, got {batch}"
        raise ValueError(msg)
    weights, bias = _weights(tags)
    consts: dict[str, npt.NDArray[Any]] = {
        "w": weights,
        "b": bias,
        "zero": np.asarray([0], dtype=np.int64),
        "eight": np.asarray(8, dtype=np.int64),
        "one": np.asarray(1, dtype=np.int64),
        "h_axis": np.asarray([1], dtype=np.int64),
        "w_axis": np.asarray([2], dtype=np.int64),
    }
    node = helper.make_node
    nodes = [
        # The strips are the first side // 8 rows and columns, whatever the input size.
        # Means are taken one axis at a time: one float32 sum over 200k pixels drifts.
        node("Shape", [INPUT_NAME], ["shape"], start=1, end=2),
        node("Div", ["shape", "eight"], ["eighth0"]),
        node("Max", ["eighth0", "one"], ["eighth"]),
        node("ReduceMean", [INPUT_NAME], ["mean_rows"], axes=[2], keepdims=0),
        node("ReduceMean", ["mean_rows"], ["mean"], axes=[1], keepdims=0),
        node("Slice", [INPUT_NAME, "zero", "eighth", "h_axis"], ["top_strip"]),
        node("ReduceMean", ["top_strip"], ["top_rows"], axes=[2], keepdims=0),
        node("ReduceMean", ["top_rows"], ["top"], axes=[1], keepdims=0),
        node("Slice", [INPUT_NAME, "zero", "eighth", "w_axis"], ["left_strip"]),
        node("ReduceMean", ["left_strip"], ["left_rows"], axes=[2], keepdims=0),
        node("ReduceMean", ["left_rows"], ["left"], axes=[1], keepdims=0),
        node("Concat", ["mean", "top", "left"], ["features"], axis=1),
        node("MatMul", ["features", "w"], ["logits0"]),
        node("Add", ["logits0", "b"], ["logits"]),
        node("Sigmoid", ["logits"], [OUTPUT_NAME]),
    ]
    n: int | str = batch if batch is not None else "batch_size"
    side: int | str = size if size is not None else "height"
    graph = helper.make_graph(
        nodes,
        "tiny_wd14_tagger",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [n, side, side, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [n, len(tags)])],
        initializer=[numpy_helper.from_array(v, k) for k, v in consts.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="beaver.testing"
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def tags_csv(tags: Sequence[TinyTag]) -> str:
    """``selected_tags.csv``'s text for ``tags`` (made-up ids and counts)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TAGS_HEADER)
    for i, tag in enumerate(tags):
        writer.writerow((9_000_000 + i, tag.name, tag.category, 1000 * (len(tags) - i)))
    return out.getvalue()


def write_tiny_tagger(
    folder: Path,
    *,
    size: int | None = 448,
    batch: int | None = None,
    tags: Sequence[TinyTag] = DEFAULT_TAGS,
) -> Path:
    """Write ``model.onnx`` and ``selected_tags.csv`` into ``folder``; returns the folder.

    ``size`` fixes the square input side (None: any size, like a symbolic ``height``);
    ``batch`` fixes the batch axis (None: dynamic ``batch_size``, as in the v3 taggers).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILE).write_bytes(_tagger_model(tags, size, batch).SerializeToString())
    (folder / TAGS_FILE).write_text(tags_csv(tags), encoding="utf-8")
    return folder


def solid(
    colour: RGB, size: tuple[int, int] = (64, 64), *, alpha: int | None = None
) -> Image.Image:
    """A ``size`` (width, height) image of one colour; RGBA with ``alpha`` when given."""
    if alpha is None:
        return Image.new("RGB", size, colour)
    return Image.new("RGBA", size, (*colour, alpha))


def blend(colours: Mapping[RGB, float]) -> tuple[float, float, float]:
    """The mean of colours weighted by the share of the input each covers."""
    shares = np.asarray(list(colours.values()), dtype=np.float64)
    values = np.asarray(list(colours), dtype=np.float64)
    r, g, b = (float(v) for v in shares @ values / shares.sum())
    return (r, g, b)
