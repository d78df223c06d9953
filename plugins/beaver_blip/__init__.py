"""First-party captioner: BLIP through transformers."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from beaver import CaptionerSpec, hookimpl
from beaver.captions.runtime import too_old

if TYPE_CHECKING:
    from beaver_blip._captioner import BlipCaptioner

MIN_TRANSFORMERS = (4, 40)


class BlipOptions(BaseModel):
    """Options of the ``blip`` captioner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "Salesforce/blip-image-captioning-large",
        min_length=1,
        description="Hub id or local folder of a BLIP captioning model.",
    )
    prompt: str | None = Field(
        None,
        description="Text every caption starts with, e.g. 'a photography of'; BLIP continues it "
        "and the caption keeps it.",
    )
    max_new_tokens: int = Field(60, ge=1, le=512, description="Most tokens BLIP writes.")
    min_new_tokens: int = Field(
        0, ge=0, description="Fewest tokens BLIP writes before it may stop (0: no minimum)."
    )
    num_beams: int = Field(3, ge=1, le=16, description="Beam search width; 1 is greedy.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where the model runs; auto: cuda, then mps, then cpu."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Weights' precision; auto: half precision on CUDA, else float32."
    )

    @field_validator("prompt")
    @classmethod
    def _blank_prompt_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @model_validator(mode="after")
    def _min_below_max(self) -> BlipOptions:
        if self.min_new_tokens > self.max_new_tokens:
            msg = (
                f"min_new_tokens ({self.min_new_tokens}) is above "
                f"max_new_tokens ({self.max_new_tokens})"
            )
            raise ValueError(msg)
        return self


def create_captioner(options: BlipOptions) -> BlipCaptioner:
    """The factory: loads the BLIP model and its processor (imports torch and transformers)."""
    from beaver_blip._captioner import load_captioner

    return load_captioner(options)


def check() -> str | None:
    """Cheap readiness check: the installed transformers is recent enough (nothing imported)."""
    if importlib.util.find_spec("transformers") is None:
        return None  # the spec's `requires` reports it
    return too_old("transformers", MIN_TRANSFORMERS)


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The BLIP captioner."""
    yield CaptionerSpec(
        name="blip",
        factory=create_captioner,
        options=BlipOptions,
        description="BLIP image captioning (transformers), base or large",
        licence="BSD-3-Clause (code and Salesforce weights)",
        requires=("torch", "transformers"),
        install="eager-beaver[blip]",
        check=check,
    )
