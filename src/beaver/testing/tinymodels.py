"""Tiny ONNX face models, generated on the fly, that behave like an insightface pack.

"Faces" are solid saturated-colour squares on a neutral grey background, and a
"person" is a hue. The detector speaks SCRFD's output format (strides 8/16/32, two
anchors per cell, scores + box distances + five landmarks), so insightface routes it
as a detector; the recognizer takes 112x112 aligned crops like ArcFace and maps each
crop's colour to an embedding. Both files are tens of KB at most and need only ``onnx``
to build; detection takes a few milliseconds of CPU per 640x640 input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from beaver.faces.align import ARCFACE_TEMPLATE, TEMPLATE_SIZE
from beaver.faces.store import iou

if TYPE_CHECKING:
    import onnx

RGB = tuple[int, int, int]
Box = tuple[float, float, float, float]

GREY: RGB = (128, 128, 128)
"""The neutral background: zero saturation, so the tiny detector ignores it."""

IDENTITY_COLOURS: tuple[RGB, ...] = (
    (222, 81, 81),  # red
    (157, 191, 36),  # olive green
    (52, 214, 118),  # green
    (52, 118, 214),  # blue
    (157, 36, 191),  # purple
)
"""The tiny recognizer's "people": saturated hues 72° apart around grey (cosine ≈ 0.31 or less).

Each is grey plus 115 units along a direction of the chroma plane, so every pair's
embeddings are as far apart as five hues allow.
"""

DETECTOR_FILE = "det_tiny.onnx"
RECOGNIZER_FILE = "rec_tiny.onnx"

_OPSET = 17
_IR_VERSION = 8  # old enough for every onnxruntime beaver supports
# Where the five landmarks sit inside a face box: the ArcFace template over 112 px, so
# an aligned crop of a tiny "face" is exactly its box.
_LANDMARKS_IN_BOX = ARCFACE_TEMPLATE / TEMPLATE_SIZE
_BLOCK = 4
"""Pixels per side of the blocks the detector averages before measuring squares."""
# (stride, window sides of its two anchors in blocks): odd, centred on the anchor points.
_LEVELS: tuple[tuple[int, tuple[int, int]], ...] = (
    (8, (17, 25)),
    (16, (33, 49)),
    (32, (65, 97)),
)


class _Graph:
    """A small helper that names tensors and shares constants while a graph is written."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self._consts: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: npt.ArrayLike, dtype: type = np.float32, hint: str = "c") -> str:
        from onnx import numpy_helper

        array: npt.NDArray[Any] = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.tobytes(), array.shape)
        if key not in self._consts:  # shared: the file stays small
            name = self._name(hint)
            self.initializers.append(numpy_helper.from_array(array, name))
            self._consts[key] = name
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        output = out or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output


def _window_outputs(g: _Graph, sat: str, sat2: str, stride: int, size: int) -> tuple[str, str, str]:
    """Score, box distances and landmarks of one anchor whose window is ``size`` blocks wide.

    ``sat`` and ``sat2`` are the saturation and its square averaged over _BLOCKx_BLOCK
    pixel blocks; every length below is in blocks until it is scaled to strides.
    """
    half = (size - 1) // 2
    step = stride // _BLOCK
    # Built in the graph from three scalars so that the file stays a few KB.
    u = g.op("Range", g.const(-half), g.const(half + 1), g.const(1))
    u2 = g.op("Mul", u, u)
    ones = g.op("Add", g.op("Mul", u, g.const(0.0)), g.const(1.0))
    row, col = g.const([1, 1, 1, size], np.int64), g.const([1, 1, size, 1], np.int64)
    kx = {k: g.op("Reshape", v, row) for k, v in (("1", ones), ("u", u), ("u2", u2))}
    ky = {k: g.op("Reshape", v, col) for k, v in (("1", ones), ("u", u), ("u2", u2))}

    def xpass(src: str, kernel: str) -> str:
        return g.op("Conv", src, kernel, strides=[1, step], pads=[0, half, 0, half])

    def ypass(src: str, kernel: str) -> str:
        return g.op("Conv", src, kernel, strides=[step, 1], pads=[half, 0, half, 0])

    # Moments of the saturation over the window, relative to the anchor point (separable
    # sums): a solid square's mean and variance give back its centre and side exactly.
    col_sum, col_u, col_u2 = xpass(sat, kx["1"]), xpass(sat, kx["u"]), xpass(sat, kx["u2"])
    m0 = ypass(col_sum, ky["1"])
    mu, muu = ypass(col_u, ky["1"]), ypass(col_u2, ky["1"])
    mv, mvv = ypass(col_sum, ky["u"]), ypass(col_sum, ky["u2"])
    sq = ypass(xpass(sat2, kx["1"]), ky["1"])

    eps = g.const(1e-6)
    den = g.op("Add", m0, eps)
    # x and y side by side in two channels from here on: [1, 2, h, w].
    mean = g.op("Div", g.op("Concat", mu, mv, axis=1), den)
    second = g.op("Div", g.op("Concat", muu, mvv, axis=1), den)
    var = g.op("Relu", g.op("Sub", second, g.op("Mul", mean, mean)))
    # A run of n blocks has variance (n² - 1) / 12.
    side = g.op("Sqrt", g.op("Add", g.op("Mul", var, g.const(12.0)), g.const(1.0)))
    # Block b covers [b, b+1) around the anchor's block 0 (which starts at the anchor
    # point): the box centre sits half a block past the mean index.
    centre = g.op("Add", mean, g.const(0.5))
    to_strides = g.const(1.0 / step)  # insightface multiplies by the stride again

    # left, top, right, bottom = -cx + w/2, -cy + h/2, cx + w/2, cy + h/2
    signs = g.const(np.array([-1, -1, 1, 1]).reshape(1, 4, 1, 1))
    box = g.op(
        "Add",
        g.op("Mul", g.op("Concat", centre, centre, axis=1), signs),
        g.op("Mul", g.op("Concat", side, side, axis=1), g.const(0.5)),
    )
    offsets = g.const((_LANDMARKS_IN_BOX - 0.5).reshape(1, 10, 1, 1))
    points = g.op(
        "Add",
        g.op("Concat", *[centre] * 5, axis=1),
        g.op("Mul", g.op("Concat", *[side] * 5, axis=1), offsets),
    )

    # Score: a whole square well inside the window (not cut by its edge), filling its
    # estimated box (not two squares), and big enough to be more than noise.
    area = g.op("Div", g.op("Mul", m0, m0), g.op("Add", sq, eps))
    fill = g.op("Div", area, g.op("ReduceProd", side, axes=[1], keepdims=1))
    room = g.op("Sub", g.const(half + 0.5), g.op("Abs", mean))
    margin = g.op(
        "ReduceMin", g.op("Sub", room, g.op("Mul", side, g.const(0.5))), axes=[1], keepdims=1
    )

    def soft_above(value: str, threshold: float, slope: float) -> str:
        shifted = g.op("Sub", value, g.const(threshold))
        return g.op("Sigmoid", g.op("Mul", shifted, g.const(slope)))

    score = g.op(
        "Mul",
        g.op("Mul", soft_above(margin, 1.0, 8.0), soft_above(fill, 0.8, 20.0)),
        soft_above(area, 16.0, 0.5),  # 16 blocks = 16x16 px
    )
    return score, g.op("Mul", box, to_strides), g.op("Mul", points, to_strides)


def _detector_model() -> onnx.ModelProto:
    from onnx import TensorProto, helper

    g = _Graph()
    image = "input.1"
    # SCRFD's input is (pixel - 127.5) / 128 in RGB order: max - min over channels is
    # the saturation, zero on grey, black and white alike. Averaging blocks first makes
    # everything after cheap, and loses nothing where a colour meets a neutral ground:
    # saturation is linear in a blend of one colour with grey.
    blocks = g.op("AveragePool", image, kernel_shape=[_BLOCK, _BLOCK], strides=[_BLOCK, _BLOCK])
    sat_blocks = g.op(
        "Sub",
        g.op("ReduceMax", blocks, axes=[1], keepdims=1),
        g.op("ReduceMin", blocks, axes=[1], keepdims=1),
    )
    sat2_blocks = g.op("Mul", sat_blocks, sat_blocks)
    perm = [0, 2, 3, 1]
    scores: list[str] = []
    boxes: list[str] = []
    kps: list[str] = []
    for stride, windows in _LEVELS:
        per_anchor = [_window_outputs(g, sat_blocks, sat2_blocks, stride, w) for w in windows]
        # Anchors vary fastest, as in insightface's anchor centres: (cell, anchor) order.
        parts = (
            ([a[0] for a in per_anchor], 1, scores, "score"),
            ([a[1] for a in per_anchor], 4, boxes, "bbox"),
            ([a[2] for a in per_anchor], 10, kps, "kps"),
        )
        for channels, width, sink, label in parts:
            stacked = g.op("Concat", *channels, axis=1)
            moved = g.op("Transpose", stacked, perm=perm)
            shape = g.const([-1, width], np.int64)
            sink.append(g.op("Reshape", moved, shape, out=f"{label}_{stride}"))
    outputs = []
    for names, width in ((scores, 1), (boxes, 4), (kps, 10)):
        for name, (stride, _windows) in zip(names, _LEVELS, strict=True):
            outputs.append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"n{stride}", width])
            )
    graph = helper.make_graph(
        g.nodes,
        "tiny_scrfd",
        [helper.make_tensor_value_info(image, TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs,
        initializer=g.initializers,
    )
    return _finish(graph)


def _recognizer_model(dim: int, batch: int | None) -> onnx.ModelProto:
    from onnx import TensorProto, helper

    if dim < 3:
        msg = f"embedding dim must be at least 3, got {dim}"
        raise ValueError(msg)
    if batch is not None and batch < 1:
        msg = f"batch must be None (dynamic) or >= 1, got {batch}"
        raise ValueError(msg)
    rng = np.random.default_rng(112)
    # Orthonormal rows keep cosines: cos(embeddings) = cos(the crops' mean chroma).
    basis, _ = np.linalg.qr(rng.normal(size=(dim, 3)))
    centre = np.eye(3) - 1.0 / 3.0  # drops the grey part of a colour: only hue counts
    projection = (centre @ basis.T).astype(np.float32)
    g = _Graph()
    # Nodes stay unnamed: insightface reads "Sub…"/"Mul…" node names as an MXNet graph
    # that normalises its own input, and would then feed it raw pixels.
    pooled = g.op("ReduceMean", "data", axes=[2, 3], keepdims=0, out="pool")
    g.op("MatMul", pooled, g.const(projection, hint="proj"), out="embedding")
    n: int | str = batch if batch is not None else "N"
    graph = helper.make_graph(
        g.nodes,
        "tiny_arcface",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [n, 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, [n, dim])],
        initializer=g.initializers,
    )
    return _finish(graph)


def _finish(graph: Any) -> onnx.ModelProto:
    import onnx
    from onnx import helper

    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", _OPSET)],
        producer_name="beaver.testing",
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def _save(model: onnx.ModelProto, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def write_tiny_scrfd(path: Path) -> Path:
    """Write the tiny SCRFD-format detector of coloured squares to ``path``; returns it.

    It finds saturated squares of about 20 to 300 px a side in the detector's input on
    a neutral (grey, black or white) ground, with boxes within a pixel or two, as long
    as no other colour lies within about half a side of a square.
    """
    return _save(_detector_model(), path)


def write_tiny_recognizer(path: Path, *, dim: int = 16, batch: int | None = None) -> Path:
    """Write the tiny ArcFace-format recognizer to ``path``; ``batch=1`` fixes its batch axis.

    The embedding is the crop's mean hue: the same colour gives cosine 1, two of
    IDENTITY_COLOURS about 0.31 or less, and an all-grey crop a zero vector.
    """
    return _save(_recognizer_model(dim, batch), path)


def make_tiny_pack(
    folder: Path, name: str = "tinypack", *, dim: int = 16, batch: int | None = None
) -> Path:
    """Write a detector and a recognizer into ``folder/name/``; returns that pack folder."""
    pack = Path(folder) / name
    write_tiny_scrfd(pack / DETECTOR_FILE)
    write_tiny_recognizer(pack / RECOGNIZER_FILE, dim=dim, batch=batch)
    return pack


def face_box(cx: float, cy: float, side: int) -> Box:
    """The exact pixel box ``[x1, y1, x2, y2]`` that ``draw_faces`` fills for one face."""
    x1, y1 = round(cx - side / 2), round(cy - side / 2)
    return (float(x1), float(y1), float(x1 + side), float(y1 + side))


def draw_faces(
    size: tuple[int, int],
    faces: Sequence[tuple[float, float, int, RGB]],
    background: RGB = GREY,
) -> Image.Image:
    """An RGB image of ``size`` (width, height) with one solid square per ``(cx, cy, side, rgb)``."""
    width, height = size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = background
    for cx, cy, side, colour in faces:
        x1, y1, x2, y2 = (int(v) for v in face_box(cx, cy, side))
        pixels[max(y1, 0) : max(y2, 0), max(x1, 0) : max(x2, 0)] = colour
    return Image.fromarray(pixels)


box_iou = iou
"""Intersection over union of two ``[x1, y1, x2, y2]`` boxes (the store's own)."""
