"""What a configured run leaves beside its backend files, and finding runs again.

``training_config.json`` is the short version (the workflow document's "simplified
config"); ``training_info.json`` holds everything: the whole plan, each default and why,
the warnings, the files each backend wrote. It is written last, so a run without it was
interrupted and ``beaver train list-models`` leaves it out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from beaver.train.plan import TrainPlan

__all__ = [
    "CONFIG_FILE",
    "INFO_FILE",
    "SCRIPT_FILE",
    "BackendFiles",
    "RunSummary",
    "TrainingConfig",
    "TrainingInfo",
    "find_runs",
    "run_schemas",
    "summarise",
]

CONFIG_FILE = "training_config.json"
INFO_FILE = "training_info.json"
SCRIPT_FILE = "train.sh"
INFO_VERSION = 1


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainingConfig(_Frozen):
    """training_config.json: the run's parameters at a glance."""

    person: str
    trigger_word: str
    base_model: str = Field(description="Hub id or checkpoint file.")
    preset: str = Field(description="sd15, sdxl, flux.1-dev or custom.")
    family: str
    dataset: str
    total_images: int
    resolution: int
    epochs: int
    batch_size: int
    learning_rate: float
    network_dim: int
    network_alpha: float
    repeats: dict[str, int] = Field(description="num_repeats per dataset folder.")
    total_steps: int
    output_dir: str = Field(description="Where the trainers save the LoRA.")
    logging_dir: str = Field(description="TensorBoard logs.")
    backends: list[str]


class BackendFiles(_Frozen):
    """What one backend wrote, and how to start it."""

    files: list[str] = Field(description="Paths relative to the run folder.")
    launch: str = Field(description="The command that starts training.")


class TrainingInfo(_Frozen):
    """training_info.json: everything about the run."""

    version: int = INFO_VERSION
    beaver_version: str
    created_at: str
    command: list[str] = Field(description="The beaver command line that wrote the run.")
    config: TrainingConfig
    defaults: dict[str, str] = Field(description="Each value and why it was chosen.")
    warnings: list[str]
    notes: dict[str, list[str]] = Field(
        default_factory=dict, description="Per backend: what of the plan it cannot apply."
    )
    backends: dict[str, BackendFiles]
    plan: TrainPlan


def summarise(plan: TrainPlan, backends: list[str]) -> TrainingConfig:
    """training_config.json for ``plan``."""
    return TrainingConfig(
        person=plan.name,
        trigger_word=plan.trigger_word,
        base_model=plan.preset.model,
        preset=plan.preset.key,
        family=plan.preset.family,
        dataset=str(plan.dataset.path),
        total_images=plan.dataset.total_images,
        resolution=plan.resolution,
        epochs=plan.epochs,
        batch_size=plan.batch_size,
        learning_rate=plan.learning_rate,
        network_dim=plan.network_dim,
        network_alpha=plan.network_alpha,
        repeats={s.shot: s.repeats for s in plan.subsets},
        total_steps=plan.total_steps,
        output_dir=str(plan.model_dir),
        logging_dir=str(plan.logging_dir),
        backends=backends,
    )


class RunSummary(_Frozen):
    """One line of ``beaver train list-models``."""

    person: str
    trigger_word: str
    images: int
    base_model: str
    epochs: int
    batch_size: int
    learning_rate: float
    network_dim: int
    network_alpha: float
    total_steps: int
    backends: list[str]
    created_at: str
    path: str
    trained: list[str] = Field(description="LoRA files found in the run's model/ folder.")


def find_runs(root: Path) -> tuple[list[RunSummary], list[str]]:
    """Runs under ``root`` (``outputs/lora_models``), oldest first, and unreadable ones."""
    runs: list[RunSummary] = []
    problems: list[str] = []
    if not root.is_dir():
        return runs, problems
    for info_path in sorted(root.glob(f"*/*/{INFO_FILE}")):
        try:
            raw: Any = json.loads(info_path.read_text(encoding="utf-8"))
            info = TrainingInfo.model_validate(raw)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            problems.append(f"{info_path}: unreadable ({first}); skipped.")
            continue
        cfg = info.config
        model_dir = info_path.parent / "model"
        trained = (
            sorted(p.name for p in model_dir.rglob("*.safetensors")) if model_dir.is_dir() else []
        )
        runs.append(
            RunSummary(
                person=cfg.person,
                trigger_word=cfg.trigger_word,
                images=cfg.total_images,
                base_model=cfg.base_model,
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                learning_rate=cfg.learning_rate,
                network_dim=cfg.network_dim,
                network_alpha=cfg.network_alpha,
                total_steps=cfg.total_steps,
                backends=cfg.backends,
                created_at=info.created_at,
                path=str(info_path.parent),
                trained=trained,
            )
        )
    runs.sort(key=lambda r: (r.created_at, r.path))
    return runs, problems


def run_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema per file (docs/schemas/<name>.schema.json)."""
    return {
        "training_config": TrainingConfig.model_json_schema(),
        "training_info": TrainingInfo.model_json_schema(),
    }
