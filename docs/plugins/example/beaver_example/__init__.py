"""beaver-example: a captioner that captions each photo with the words of its filename.

``IMG_beach_sunset.jpg`` gets the caption "beach sunset". A complete third-party beaver
plugin in one module: an options model, a factory, the captioner it builds, and the hook
that yields the record. The captioner needs nothing beyond beaver itself; a plugin that
wraps a model would import torch (or onnxruntime, …) inside :func:`make_captioner`, never
at the top of this module, so that loading the plugin stays free.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import PurePath
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from beaver import Caption, CaptionerSpec, hookimpl

if TYPE_CHECKING:
    from PIL import Image

# Underscores count as separators: cameras and phones name files IMG_1234, PXL_2024…
_SEPARATORS = re.compile(r"[\W_]+")


class FilenameWordsOptions(BaseModel):
    """Options of the ``filename-words`` captioner, read from ``[plugins.filename-words]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lowercase: bool = Field(True, description="Lowercase the caption.")
    drop_words: list[str] = Field(
        ["img", "dsc", "dscn", "dscf", "pxl", "mvimg", "pano"],
        description="Words to leave out (camera prefixes), compared case-insensitively.",
    )
    drop_numbers: bool = Field(
        True, description="Leave out words made only of digits (dates, frame counters)."
    )


class FilenameWordsCaptioner:
    """Captions an image with the words of the file it was opened from.

    PIL sets ``image.filename`` when an image is opened from disk; an image made in memory
    (or converted, which returns a new image) has none and gets an empty caption.
    """

    def __init__(self, options: FilenameWordsOptions) -> None:
        self.options = options
        self._drop = frozenset(word.casefold() for word in options.drop_words)

    def words(self, filename: str) -> list[str]:
        """The words of ``filename``'s stem that survive the options."""
        kept = []
        for word in _SEPARATORS.split(PurePath(filename).stem):
            if not word or word.casefold() in self._drop:
                continue
            if self.options.drop_numbers and word.isdigit():
                continue
            kept.append(word.lower() if self.options.lowercase else word)
        return kept

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """One caption per image, in order: its filename's words joined by spaces."""
        captions = []
        for image in images:
            filename = os.fsdecode(getattr(image, "filename", "") or "")
            words = self.words(filename) if filename else []
            captions.append(Caption(text=" ".join(words), extra={"source": filename or None}))
        return captions


def make_captioner(options: FilenameWordsOptions) -> FilenameWordsCaptioner:
    """Build the captioner; beaver calls this with validated options when it is picked."""
    # A model-backed plugin does its heavy imports here, e.g. `import torch`.
    return FilenameWordsCaptioner(options)


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The ``filename-words`` captioner."""
    yield CaptionerSpec(
        name="filename-words",
        factory=make_captioner,
        options=FilenameWordsOptions,
        description="Captions each photo with the words of its filename "
        "(IMG_beach_sunset.jpg: 'beach sunset')",
        licence="MIT (no model weights)",
    )
