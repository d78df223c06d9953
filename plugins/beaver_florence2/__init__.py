"""First-party captioner: Florence-2 through transformers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class Florence2Options(BaseModel):
    """Options of the ``florence2`` captioner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("florence-community/Florence-2-base", description="Hub id or folder.")
    task: Literal["<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"] = Field(
        "<DETAILED_CAPTION>", description="Florence-2 task prompt."
    )
    max_new_tokens: int = Field(256, ge=1)
    num_beams: int = Field(3, ge=1)


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The Florence-2 captioner."""
    yield CaptionerSpec(
        name="florence2",
        factory=pending_factory("The florence2 captioner"),
        options=Florence2Options,
        description="Florence-2 captions (<CAPTION>, <DETAILED_CAPTION>, <MORE_DETAILED_CAPTION>)",
        licence="MIT (code and Microsoft weights)",
        requires=("torch", "transformers"),
        install="eager-beaver[florence2]",
        check=pending_check,
    )
