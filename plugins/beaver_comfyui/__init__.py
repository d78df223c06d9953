"""First-party training backend: a ComfyUI API-format workflow with native training nodes.

It writes ``workflow_api.json`` (ComfyUI's own TrainLoraNode, MakeTrainingDataset, … wired
for one plan), the ``prompt.json`` body that ``POST /prompt`` takes, a README naming the
ComfyUI version the node layout comes from, and the train.sh lines that copy the dataset
into ComfyUI's ``input/``, queue the workflow and wait for it. Nothing here imports ComfyUI
or torch: ComfyUI is a separate server, found at run time (docs/trainers/comfyui.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from beaver import TrainerSpec, hookimpl

if TYPE_CHECKING:
    from beaver_comfyui._trainer import ComfyUITrainer

DEFAULT_URL = "http://127.0.0.1:8188"
"""ComfyUI's own default: ``python main.py`` listens on 127.0.0.1, port 8188."""


class ComfyUIOptions(BaseModel):
    """Options of the ``comfyui`` backend (``train.comfyui_url``, ``train.comfyui_dir``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    comfyui_url: str = Field(
        DEFAULT_URL,
        min_length=1,
        description="The ComfyUI server train.sh queues the workflow on; the COMFYUI_URL "
        "environment variable overrides it.",
    )
    comfyui_dir: Path | None = Field(
        None,
        description="The ComfyUI folder (with input/, models/ and output/): train.sh copies "
        "the dataset into its input/ and the trained LoRA out of its output/; the "
        "COMFYUI_DIR environment variable overrides it.",
    )


def create_trainer(options: ComfyUIOptions) -> ComfyUITrainer:
    """The factory: a trainer that writes ComfyUI workflows for these options."""
    from beaver_comfyui._trainer import ComfyUITrainer

    return ComfyUITrainer(options)


@hookimpl
def beaver_trainers() -> Iterator[TrainerSpec]:
    """The ComfyUI backend."""
    yield TrainerSpec(
        name="comfyui",
        factory=create_trainer,
        options=ComfyUIOptions,
        description="ComfyUI API-format workflow using the native training nodes",
        licence="writes workflows only; ComfyUI is GPL-3.0",
    )
