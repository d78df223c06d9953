"""A tiny ONNX face detector in YuNet's format, generated on the fly, for the ``opencv`` plugin.

"Faces" are solid saturated-colour squares on a neutral grey background, as in
:mod:`beaver.testing.tinymodels`. The graph has exactly the input and the twelve outputs
that ``cv2.FaceDetectorYN`` reads (``cls``/``obj``/``bbox``/``kps`` for strides 8, 16 and
32, each ``[1, cells, channels]``), so OpenCV decodes, thresholds and de-duplicates its
answers as it does the real YuNet's. It is a few KB and needs only ``onnx`` to build.

It finds squares from about 12 to ``MAX_SIDE`` pixels of its input, each with a clear
grey gap around it (roughly half its side), with boxes within a pixel or two; scores
rise from 0.75 to 1 with size. A square wider than ``MAX_SIDE`` is missed, as the real
YuNet misses faces that fill a close-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from beaver.faces.align import ARCFACE_TEMPLATE, TEMPLATE_SIZE
from beaver.testing.tinymodels import write_tiny_recognizer

if TYPE_CHECKING:
    import onnx

DETECTOR_FILE = "face_detection_yunet_tiny.onnx"
RECOGNIZER_FILE = "face_recognition_tiny.onnx"

STRIDES = (8, 16, 32)
"""YuNet's three feature levels; each has one cell per stride-by-stride square of the input."""
OUTPUT_CHANNELS = {"cls": 1, "obj": 1, "bbox": 4, "kps": 10}
"""Channels of each output kind, in the order OpenCV asks for them."""
OUTPUT_NAMES = tuple(f"{kind}_{stride}" for kind in OUTPUT_CHANNELS for stride in STRIDES)
MAX_SIDE = 200
"""Largest square (pixels of the detector input) the widest window still holds whole."""

_OPSET = 11  # YuNet's own opset: every OpenCV with FaceDetectorYN (4.8+) imports it
_IR_VERSION = 6
_BLOCK = 4
"""Pixels per side of the blocks the saturation is averaged over before the windows."""
# Window sides in blocks, per stride: a square is measured by a cell whose window holds
# it whole, so the widest window bounds the size of squares found (MAX_SIDE).
_WINDOWS = {8: 12, 16: 28, 32: 60}
_RING = {8: 2, 16: 3, 32: 6}
"""Blocks around each window that must hold no colour: a square cut by the window is no face."""
# Saturation (|B-G| + |G-R| + |R-B|, twice max - min) maps to 0 below _SAT_LOW and
# to 1 from _SAT_LOW + _SAT_RAMP: grey, black and white are 0, saturated colours 1.
_SAT_LOW = 60.0
_SAT_RAMP = 60.0
# The ArcFace template over 112 px: an aligned crop of a tiny "face" is exactly its box.
_LANDMARKS_IN_BOX = ARCFACE_TEMPLATE / TEMPLATE_SIZE
_EPS = 1e-4


class _Graph:
    """Collects nodes and constants while the graph is written; names them in order."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._count = 0
        self._consts: dict[tuple[str, tuple[int, ...], bytes], str] = {}

    def name(self, hint: str) -> str:
        """A fresh tensor name."""
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: npt.ArrayLike, dtype: type = np.float32) -> str:
        from onnx import numpy_helper

        array: npt.NDArray[Any] = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._consts:  # shared, so the file stays small
            self._consts[key] = self.name("const")
            self.initializers.append(numpy_helper.from_array(array, self._consts[key]))
        return self._consts[key]

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        output = out or self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attrs))
        return output

    def conv(
        self, x: str, weight: npt.NDArray[np.float32], bias: float | None = None, **attrs: Any
    ) -> str:
        """A convolution with constant weights (OpenCV 4.9 needs ``kernel_shape`` spelled out)."""
        inputs = [x, self.const(weight)] + ([] if bias is None else [self.const([bias])])
        return self.op("Conv", *inputs, kernel_shape=list(weight.shape[2:]), **attrs)

    def scale(self, x: str, factor: float, offset: float = 0.0) -> str:
        """``x * factor + offset`` (constant scalars, which OpenCV folds into one layer)."""
        y = self.op("Mul", x, self.const(factor))
        return self.op("Add", y, self.const(offset)) if offset else y


def _saturation_blocks(g: _Graph, image: str) -> str:
    """How saturated each _BLOCK-by-_BLOCK block of the BGR input is, from 0 to 1."""
    pairs = np.array([[1, -1, 0], [0, 1, -1], [-1, 0, 1]], dtype=np.float32)
    diffs = g.op("Abs", g.conv(image, pairs.reshape(3, 3, 1, 1)))
    weight = np.full((1, 3, 1, 1), 1.0 / _SAT_RAMP, dtype=np.float32)
    ramp = g.conv(diffs, weight, -_SAT_LOW / _SAT_RAMP)
    mask = g.op("Clip", ramp, g.const(0.0), g.const(1.0))
    # Averaging first keeps the windows' kernels (and so the file) small; a block's value
    # is the share of it a square covers, so areas and centres stay exact.
    return g.op("AveragePool", mask, kernel_shape=[_BLOCK, _BLOCK], strides=[_BLOCK, _BLOCK])


def _kernels(
    inner: int, ring: int, step: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The separable window sums: a row pass to 6 channels, then a column pass on each."""
    size = inner + 2 * ring
    inside = np.zeros(size, dtype=np.float32)
    inside[ring : ring + inner] = 1.0
    # Block j's centre relative to the anchor point, in cells (OpenCV adds the cell index).
    offset = (np.arange(size, dtype=np.float32) + 0.5 - size / 2) / step * inside
    ones = np.ones(size, dtype=np.float32)
    # Channels: area, sum of x, of x², of y, of y² inside the window; area with the ring.
    rows = np.stack([inside, offset, offset**2, inside, inside, ones])
    cols = np.stack([inside, inside, inside, offset, offset**2, ones])
    return rows.reshape(6, 1, 1, size), cols.reshape(6, 1, size, 1)


def _clip01(g: _Graph, x: str) -> str:
    return g.op("Clip", x, g.const(0.0), g.const(1.0))


def _level(g: _Graph, blocks: str, stride: int) -> dict[str, str]:
    """Score, box and landmarks of every cell of one stride, before reshaping."""
    step = stride // _BLOCK
    inner, ring = _WINDOWS[stride], _RING[stride]
    size = inner + 2 * ring
    rows, cols = _kernels(inner, ring, step)
    # Cell (r, c)'s anchor point is (c, r) * stride; its window is centred there. The end
    # pads give exactly one output per cell of OpenCV's (stride-aligned) input.
    before, after = size // 2, size // 2 - step
    row_sums = g.conv(blocks, rows, strides=[1, step], pads=[0, before, 0, after])
    sums = g.conv(row_sums, cols, group=6, strides=[step, 1], pads=[before, 0, after, 0])
    names = [g.name("moment") for _ in range(6)]
    g.nodes.append(_split(sums, names))
    area, sum_x, sum_xx, sum_y, sum_yy, area_out = names

    # Mean and variance of the colour's position give a solid rectangle's centre and
    # sides exactly: a run of n blocks has variance (n² - 1) / 12.
    denominator = g.op("Add", area, g.const(_EPS))
    centre_x, centre_y = g.op("Div", sum_x, denominator), g.op("Div", sum_y, denominator)

    def side(sum_sq: str, centre: str) -> str:
        spread = g.op("Sub", g.op("Div", sum_sq, denominator), g.op("Mul", centre, centre))
        variance = g.op("Relu", spread)
        return g.op("Sqrt", g.scale(variance, 12.0, 1.0 / step**2))

    width, height = side(sum_xx, centre_x), side(sum_yy, centre_y)
    box = g.op("Concat", centre_x, centre_y, g.op("Log", width), g.op("Log", height), axis=1)
    # Landmarks at the template's places inside the box: centre + (fraction - 0.5) * side.
    to_points = np.zeros((10, 4, 1, 1), dtype=np.float32)
    for i, (fx, fy) in enumerate(_LANDMARKS_IN_BOX):
        to_points[2 * i, :, 0, 0] = (1.0, 0.0, fx - 0.5, 0.0)
        to_points[2 * i + 1, :, 0, 0] = (0.0, 1.0, 0.0, fy - 0.5)
    centre_and_sides = g.op("Concat", centre_x, centre_y, width, height, axis=1)
    points = g.conv(centre_and_sides, to_points)

    # Score: one whole square. The ring around the window adds nothing (not cut by the
    # window's edge: (area / area_out) ** 32), the colour fills its box (not two squares
    # in one window), and the box is more than a speck.
    log_area = g.op("Log", denominator)
    log_out = g.op("Log", g.op("Add", area_out, g.const(_EPS)))
    whole = g.op("Exp", g.scale(g.op("Sub", log_area, log_out), 32.0))
    box_area = g.scale(g.op("Mul", width, height), float(step * step))
    fills = _clip01(g, g.scale(g.op("Div", area, box_area), 4.0, -2.2))  # 0 at 0.55, 1 at 0.8
    side_px = g.scale(g.op("Sqrt", box_area), float(_BLOCK))
    big_enough = _clip01(g, g.scale(side_px, 1 / 6, -1.0))  # 0 at 6 px, 1 from 12 px
    # Bigger squares score higher (so results have an order), from 0.75 up to 1.
    size_score = _clip01(g, g.scale(side_px, 1 / 512, 0.75))
    score = g.op("Mul", g.op("Mul", whole, fills), g.op("Mul", big_enough, size_score))
    return {"cls": score, "bbox": box, "kps": points}


def _split(tensor: str, outputs: list[str]) -> Any:
    from onnx import helper

    return helper.make_node("Split", [tensor], outputs, axis=1, split=[1] * len(outputs))


def _detector_model() -> onnx.ModelProto:
    import onnx
    from onnx import TensorProto, helper

    g = _Graph()
    blocks = _saturation_blocks(g, "input")
    for stride in STRIDES:
        heads = _level(g, blocks, stride)
        for kind, channels in OUTPUT_CHANNELS.items():
            if kind == "obj":
                # OpenCV scores a cell sqrt(cls * obj): the same tensor twice keeps it as is.
                g.op("Identity", f"cls_{stride}", out=f"obj_{stride}")
                continue
            moved = g.op("Transpose", heads[kind], perm=[0, 2, 3, 1])
            g.op("Reshape", moved, g.const([1, -1, channels], np.int64), out=f"{kind}_{stride}")
    outputs = [
        helper.make_tensor_value_info(
            f"{kind}_{stride}", TensorProto.FLOAT, [1, f"cells_{stride}", channels]
        )
        for kind, channels in OUTPUT_CHANNELS.items()
        for stride in STRIDES
    ]
    graph = helper.make_graph(
        g.nodes,
        "tiny_yunet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "height", "width"])],
        outputs,
        initializer=g.initializers,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", _OPSET)], producer_name="beaver.testing"
    )
    model.ir_version = _IR_VERSION
    onnx.checker.check_model(model)
    return model


def write_tiny_yunet(path: Path) -> Path:
    """Write the tiny YuNet-format detector of coloured squares to ``path``; returns it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_detector_model().SerializeToString())
    return path


def make_tiny_yunet_pack(
    folder: Path, name: str = "tinyyunet", *, dim: int = 16, batch: int | None = None
) -> Path:
    """Write the tiny YuNet and a tiny 112x112 recognizer into ``folder/name/``; returns it.

    The recognizer (:func:`beaver.testing.tinymodels.write_tiny_recognizer`) maps a crop's
    colour to an embedding: one colour is one "person".
    """
    pack = Path(folder) / name
    write_tiny_yunet(pack / DETECTOR_FILE)
    write_tiny_recognizer(pack / RECOGNIZER_FILE, dim=dim, batch=batch)
    return pack
