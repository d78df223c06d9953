"""A model-free captioner for tests of the caption loop and of tools built on it.

It names the colour of each image ("a red square"), records the batches it was given,
and can be told to fail; `ColourPlugin` registers it as the captioner `colour`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict

from beaver import CaptionerSpec, hookimpl
from beaver.interfaces import Caption

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}


def colour_of(image: Image.Image) -> str:
    """The nearest of COLOURS to the image's mean colour."""
    mean = np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda n: float(np.abs(mean - np.array(COLOURS[n])).sum()))


class ColourCaptioner:
    """Captions "a <colour> square"; records every batch it was given."""

    model_id = "test:colour"

    def __init__(
        self, image_size: int = 64, max_batch: int | None = None, tags: bool = False
    ) -> None:
        self.image_size = image_size
        self.max_batch = max_batch
        self.tags = tags
        self.batches: list[list[tuple[int, int]]] = []
        self.fail: Any = None  # a callable(batch) that may raise

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        if self.fail is not None:
            self.fail(images)
        self.batches.append([im.size for im in images])
        out = []
        for image in images:
            colour = colour_of(image)
            if self.tags:
                out.append(Caption(f"{colour}, square", tags=(colour, "square")))
            else:
                out.append(Caption(f"a {colour} square"))
        return out


class ColourOptions(BaseModel):
    """Options of the ``colour`` captioner: the common ones the caption command fills in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = "colour-v1"
    device: str = "auto"


class ColourPlugin:
    """Registers the captioner as plugin ``colour`` (tests pass it as an extra plugin)."""

    def __init__(self) -> None:
        self.made: list[ColourCaptioner] = []
        self.options: list[ColourOptions] = []

    @hookimpl
    def beaver_captioners(self) -> Iterator[CaptionerSpec]:
        """The ``colour`` captioner; every one built is kept in ``made``."""

        def make(options: Any) -> ColourCaptioner:
            self.options.append(options)
            captioner = ColourCaptioner()
            self.made.append(captioner)
            return captioner

        yield CaptionerSpec(name="colour", factory=make, options=ColourOptions)


def write_image(path: Path, colour: str, size: tuple[int, int] = (64, 48), fmt: str = "") -> Path:
    """A plain image of one of COLOURS (format from the suffix unless ``fmt`` is given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, COLOURS[colour]).save(path, **({"format": fmt} if fmt else {}))
    return path
