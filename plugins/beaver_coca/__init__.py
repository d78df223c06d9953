"""First-party captioner: CoCa through open_clip."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class CocaOptions(BaseModel):
    """Options of the ``coca`` captioner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("coca_ViT-L-14", description="open_clip architecture name.")
    pretrained: str = Field(
        "mscoco_finetuned_laion2B-s13B-b90k", description="Pretrained tag or checkpoint file."
    )
    seq_len: int = Field(30, ge=5, description="Longest caption, in tokens.")


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The CoCa captioner."""
    yield CaptionerSpec(
        name="coca",
        factory=pending_factory("The coca captioner"),
        options=CocaOptions,
        description="open_clip CoCa short COCO-style captions",
        licence="code MIT (open_clip); weights: see the pretrained tag's model card",
        requires=("torch", "open_clip"),
        install="eager-beaver[coca]",
        check=pending_check,
    )
