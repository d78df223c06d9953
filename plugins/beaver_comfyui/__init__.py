"""First-party training backend: a ComfyUI API-format workflow with native training nodes."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict, Field

from beaver import TrainerSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class ComfyUIOptions(BaseModel):
    """Options of the ``comfyui`` backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field("http://127.0.0.1:8188", description="ComfyUI server, for --run.")


@hookimpl
def beaver_trainers() -> Iterator[TrainerSpec]:
    """The ComfyUI backend."""
    yield TrainerSpec(
        name="comfyui",
        factory=pending_factory("The comfyui training backend"),
        options=ComfyUIOptions,
        description="ComfyUI API-format workflow using the native training nodes",
        licence="writes workflows only; ComfyUI is GPL-3.0",
        check=pending_check,
    )
