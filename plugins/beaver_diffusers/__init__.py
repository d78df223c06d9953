"""First-party training backend: the diffusers text-to-image LoRA example scripts.

It writes an imagefolder (links to the dataset's images plus ``metadata.jsonl``) and the
exact ``accelerate launch`` command for the plan's script: ``train_text_to_image_lora.py``
(SD1.5), ``train_text_to_image_lora_sdxl.py`` (SDXL) or ``train_dreambooth_lora_flux.py``
(FLUX, which has no text-to-image LoRA script). See docs/trainers/diffusers.md.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from beaver import TrainerSpec, hookimpl

if TYPE_CHECKING:
    from beaver_diffusers._trainer import DiffusersTrainer


class DiffusersOptions(BaseModel):
    """Options of the ``diffusers`` backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    diffusers_dir: Path | None = Field(
        None,
        description="A diffusers git checkout (with examples/), for --run; the DIFFUSERS_DIR "
        "environment variable overrides it.",
    )


def create_trainer(options: DiffusersOptions) -> DiffusersTrainer:
    """The factory (nothing heavy: the trainer only writes files and bash lines)."""
    from beaver_diffusers._trainer import DiffusersTrainer

    return DiffusersTrainer(options.diffusers_dir)


@hookimpl
def beaver_trainers() -> Iterator[TrainerSpec]:
    """The diffusers backend."""
    yield TrainerSpec(
        name="diffusers",
        factory=create_trainer,
        options=DiffusersOptions,
        description="diffusers examples: metadata.jsonl + accelerate launch command",
        licence="writes configs only; diffusers is Apache-2.0",
    )
