"""First-party captioner: BLIP through transformers."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class BlipOptions(BaseModel):
    """Options of the ``blip`` captioner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "Salesforce/blip-image-captioning-large", description="Hub id or local folder."
    )
    prompt: str | None = Field(None, description="Conditional text prefix, e.g. 'a photo of'.")
    max_new_tokens: int = Field(60, ge=1)
    num_beams: int = Field(3, ge=1)


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The BLIP captioner."""
    yield CaptionerSpec(
        name="blip",
        factory=pending_factory("The blip captioner"),
        options=BlipOptions,
        description="BLIP image captioning (transformers), base or large",
        licence="BSD-3-Clause (code and Salesforce weights)",
        requires=("torch", "transformers"),
        install="eager-beaver[blip]",
        check=pending_check,
    )
