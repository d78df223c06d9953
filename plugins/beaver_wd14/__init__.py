"""First-party tagger: WD14-style ONNX booru taggers with selected_tags.csv."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl

if TYPE_CHECKING:
    from beaver_wd14._tagger import WD14Tagger

DEFAULT_MODEL = "SmilingWolf/wd-swinv2-tagger-v3"


class WD14Options(BaseModel):
    """Options of the ``wd14`` tagger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        DEFAULT_MODEL,
        min_length=1,
        description="Hub id, or a folder holding model.onnx and selected_tags.csv.",
    )
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto: CUDA when onnxruntime has it, else the CPU."
    )
    general_threshold: float = Field(
        0.35, ge=0, le=1, description="General tags scoring above this are kept."
    )
    character_threshold: float = Field(
        0.85, ge=0, le=1, description="Character tags scoring above this are kept; 1: none."
    )
    general_mcut: bool = Field(
        False, description="Cut general tags at the largest score gap instead of the threshold."
    )
    character_mcut: bool = Field(
        False, description="Cut character tags at the largest score gap (never below 0.15)."
    )
    rating: bool = Field(False, description="Put the top rating tag (general, sensitive, …) first.")
    max_tags: int | None = Field(
        None, ge=1, description="Keep at most this many tags (characters first); unset: all."
    )
    remove_underscores: bool = Field(
        True, description="'long_hair' becomes 'long hair' (kaomoji such as ^_^ stay)."
    )
    escape_brackets: bool = Field(
        False, description="Write 'hood \\(clothing\\)' for prompt syntaxes that need it."
    )
    exclude_tags: tuple[str, ...] = Field(
        (), description="Tags never written (with or without underscores)."
    )


def create_tagger(options: WD14Options) -> WD14Tagger:
    """The factory: finds the tagger's files and opens its onnxruntime session."""
    from beaver_wd14._tagger import load_tagger

    return load_tagger(options)


def check() -> str | None:
    """Cheap readiness check: finds the modules the factory imports without importing them."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "needs onnxruntime: pip install 'eager-beaver[wd14]'"
    return None


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The WD14 tagger."""
    yield CaptionerSpec(
        name="wd14",
        factory=create_tagger,
        options=WD14Options,
        description="WD14-style ONNX booru tagger (tags as a comma list)",
        licence="code MIT; SmilingWolf tagger weights Apache-2.0",
        requires=("onnxruntime",),
        install="eager-beaver[wd14]",
        check=check,
    )
