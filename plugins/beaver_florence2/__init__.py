"""First-party captioner: Florence-2 through transformers' built-in support (no remote code)."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl
from beaver.captions.runtime import too_old

if TYPE_CHECKING:
    from beaver_florence2._captioner import Florence2Captioner

MIN_TRANSFORMERS = (4, 57)
"""The first transformers with Florence2ForConditionalGeneration built in."""


class Florence2Options(BaseModel):
    """Options of the ``florence2`` captioner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "florence-community/Florence-2-base",
        min_length=1,
        description="Hub id or local folder of a Florence-2 checkpoint in transformers' format.",
    )
    task: Literal["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"] = Field(
        "<DETAILED_CAPTION>",
        description="Florence-2 task prompt: one sentence, a few sentences, or a paragraph.",
    )
    max_new_tokens: int = Field(256, ge=1, le=1024, description="Most tokens Florence-2 writes.")
    num_beams: int = Field(3, ge=1, le=16, description="Beam search width; 1 is greedy.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where the model runs; auto: cuda, then mps, then cpu."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Weights' precision; auto: half precision on CUDA, else float32."
    )


def create_captioner(options: Florence2Options) -> Florence2Captioner:
    """The factory: loads Florence-2 and its processor (imports torch and transformers)."""
    from beaver_florence2._captioner import load_captioner

    return load_captioner(options)


def check() -> str | None:
    """Cheap readiness check: transformers is new enough to have Florence-2 (nothing imported)."""
    if importlib.util.find_spec("transformers") is None:
        return None  # the spec's `requires` reports it
    return too_old("transformers", MIN_TRANSFORMERS, purpose="for its built-in Florence-2")


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The Florence-2 captioner."""
    yield CaptionerSpec(
        name="florence2",
        factory=create_captioner,
        options=Florence2Options,
        description="Florence-2 captions (<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>)",
        licence="MIT (code and Microsoft weights)",
        requires=("torch", "transformers"),
        install="eager-beaver[florence2]",
        check=check,
    )
