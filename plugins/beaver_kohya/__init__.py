"""First-party training backend: kohya sd-scripts (--config_file TOML + --dataset_config TOML).

It writes the two TOML files sd-scripts reads, a sample-prompt file and the lines of
train.sh that launch ``train_network.py`` / ``sdxl_train_network.py`` /
``flux_train_network.py`` through ``accelerate``. Nothing here imports sd-scripts or torch:
the trainer is an external program, found at run time (docs/trainers/kohya.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from beaver import TrainerSpec, hookimpl

if TYPE_CHECKING:
    from beaver_kohya._trainer import KohyaTrainer


class KohyaOptions(BaseModel):
    """Options of the ``kohya`` backend (``train.sd_scripts_dir``, ``train.flux_dir``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sd_scripts_dir: Path | None = Field(
        None,
        description="kohya sd-scripts checkout that train.sh runs; the SD_SCRIPTS_DIR "
        "environment variable overrides it.",
    )
    flux_dir: Path | None = Field(
        None,
        description="Folder holding flux1-dev.safetensors, clip_l.safetensors, "
        "t5xxl_fp16.safetensors and ae.safetensors, for FLUX runs (default: "
        "<models_dir>/flux).",
    )
    fp8_base: bool = Field(
        False,
        description="FLUX only: keep the base model in fp8 (sd-scripts --fp8_base), for GPUs "
        "with less than 24 GB.",
    )


def create_trainer(options: KohyaOptions) -> KohyaTrainer:
    """The factory: a trainer that writes configs for these options."""
    from beaver_kohya._trainer import KohyaTrainer

    return KohyaTrainer(options)


@hookimpl
def beaver_trainers() -> Iterator[TrainerSpec]:
    """The kohya sd-scripts backend."""
    yield TrainerSpec(
        name="kohya",
        factory=create_trainer,
        options=KohyaOptions,
        description="kohya sd-scripts: --config_file TOML + --dataset_config TOML",
        licence="writes configs only; sd-scripts is Apache-2.0",
    )
