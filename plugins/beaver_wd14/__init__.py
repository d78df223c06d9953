"""First-party tagger: WD14-style ONNX booru taggers with selected_tags.csv."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class WD14Options(BaseModel):
    """Options of the ``wd14`` tagger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("SmilingWolf/wd-swinv2-tagger-v3", description="Hub id or local folder.")
    general_threshold: float = Field(0.35, ge=0, le=1)
    character_threshold: float = Field(0.85, ge=0, le=1)
    remove_underscores: bool = Field(True, description="'long_hair' becomes 'long hair'.")
    exclude_tags: list[str] = Field(default_factory=list, description="Tags never written.")


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The WD14 tagger."""
    yield CaptionerSpec(
        name="wd14",
        factory=pending_factory("The wd14 tagger"),
        options=WD14Options,
        description="WD14-style ONNX booru tagger (tags as a comma list)",
        licence="Apache-2.0 (SmilingWolf tagger weights)",
        requires=("onnxruntime",),
        install="eager-beaver[wd14]",
        check=pending_check,
    )
