"""First-party training backend: the diffusers text-to-image LoRA example scripts."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from beaver import TrainerSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class DiffusersOptions(BaseModel):
    """Options of the ``diffusers`` backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mixed_precision: str = Field("bf16", description="no, fp16 or bf16.")


@hookimpl
def beaver_trainers() -> Iterator[TrainerSpec]:
    """The diffusers backend."""
    yield TrainerSpec(
        name="diffusers",
        factory=pending_factory("The diffusers training backend"),
        options=DiffusersOptions,
        description="diffusers examples: metadata.jsonl + accelerate launch command",
        licence="writes configs only; diffusers is Apache-2.0",
        check=pending_check,
    )
