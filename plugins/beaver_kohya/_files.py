"""Where the base model comes from, and which files must exist before sd-scripts starts."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan
    from beaver_kohya import KohyaOptions

__all__ = [
    "BASE_MODEL_ARG",
    "FLUX_ROLES",
    "ModelFile",
    "base_model",
    "download_command",
    "flux_dir",
    "model_files",
]

BASE_MODEL_ARG = "pretrained_model_name_or_path"

FLUX_ROLES = ("clip_l", "t5xxl", "ae")
"""flux_train_network.py's extra model arguments, each a single file."""


@dataclass(frozen=True)
class ModelFile:
    """A file the training script loads from disk."""

    role: str
    """The sd-scripts argument it is passed as (pretrained_model_name_or_path, clip_l, …)."""
    path: Path
    repo: str | None
    """Hugging Face repository it downloads from; None when beaver does not know one."""


def _given_file(model: str) -> Path | None:
    """``model`` as an absolute path when it names a file rather than a hub id."""
    path = Path(model).expanduser()
    if path.is_absolute():
        return path
    if path.is_file():
        return path.absolute()
    return None


def flux_dir(options: KohyaOptions) -> Path:
    """The folder of the FLUX files (the core passes ``<models_dir>/flux`` when unset)."""
    if options.flux_dir is not None:
        return options.flux_dir.expanduser().absolute()
    from beaver.settings import default_models_dir

    return default_models_dir() / "flux"


def model_files(plan: TrainPlan, options: KohyaOptions) -> list[ModelFile]:
    """The files that must exist; empty for an SD/SDXL model sd-scripts fetches from the hub."""
    preset = plan.preset
    given = _given_file(preset.model)
    if preset.family != "flux":
        # sd-scripts loads a hub id through diffusers itself; only a file can be checked.
        return [] if given is None else [ModelFile(BASE_MODEL_ARG, given, None)]
    folder = flux_dir(options)
    # flux_train_network.py takes a single .safetensors file, never a diffusers folder.
    if given is not None:
        checkpoint = ModelFile(BASE_MODEL_ARG, given, None)
    elif preset.key != "custom":
        checkpoint = ModelFile(BASE_MODEL_ARG, folder / preset.checkpoint_file, preset.hub_id)
    else:
        # A custom hub id or file name: its single file must be put there by hand, never
        # replaced by the preset's flux1-dev.safetensors (that would train another model).
        name = Path(preset.model).name
        if not name.lower().endswith((".safetensors", ".sft")):
            name = f"{name}.safetensors"
        checkpoint = ModelFile(BASE_MODEL_ARG, folder / name, None)
    files = [checkpoint]
    for role in FLUX_ROLES:
        name, repo = preset.companion_files[role]
        files.append(ModelFile(role, folder / name, repo))
    return files


def base_model(plan: TrainPlan, files: list[ModelFile]) -> str:
    """The value of ``pretrained_model_name_or_path``: a file path, else the hub id."""
    for file in files:
        if file.role == BASE_MODEL_ARG:
            return str(file.path)
    return plan.preset.model


def download_command(file: ModelFile) -> str:
    """The ``hf download`` command that puts ``file`` where the config expects it."""
    if file.repo is None:
        return f"copy {file.path.name} into {shlex.quote(str(file.path.parent))}"
    return (
        f"hf download {file.repo} {file.path.name} --local-dir {shlex.quote(str(file.path.parent))}"
    )
