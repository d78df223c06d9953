"""First-party training backend: kohya sd-scripts (TOML config + dataset config)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from beaver import TrainerSpec, hookimpl
from beaver._pending import pending_check, pending_factory


class KohyaOptions(BaseModel):
    """Options of the ``kohya`` backend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sd_scripts_dir: Path | None = Field(None, description="sd-scripts checkout, for --run.")
    mixed_precision: str = Field("bf16", description="no, fp16 or bf16.")


@hookimpl
def beaver_trainers() -> Iterator[TrainerSpec]:
    """The kohya sd-scripts backend."""
    yield TrainerSpec(
        name="kohya",
        factory=pending_factory("The kohya training backend"),
        options=KohyaOptions,
        description="kohya sd-scripts: --config_file TOML + --dataset_config TOML",
        licence="writes configs only; sd-scripts is Apache-2.0",
        check=pending_check,
    )
