"""Base-model presets: what each model family needs from a trainer.

The numbers come from the trainers' own documentation and from what their communities
report for a person LoRA (docs/train.md cites each). A preset is picked by its key or by
one of its aliases (hub ids, common spellings); anything else becomes a custom preset of the
family the name suggests, with a warning saying so.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Family = Literal["sd15", "sdxl", "flux"]

__all__ = ["PRESETS", "Family", "ModelPreset", "resolve_base_model"]


class ModelPreset(BaseModel):
    """Everything a backend needs to know about a base model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str = Field(description="Preset name (sd15, sdxl, flux.1-dev) or 'custom'.")
    family: Family
    label: str = Field(description="Human name of the model.")
    model: str = Field(description="Hub id or file the trainers load.")
    hub_id: str = Field(description="The Hugging Face repository of the weights.")
    resolution: int = Field(description="Native training resolution in pixels.")
    bucket_step: int = Field(description="kohya bucket_reso_steps (64 for SD1.5, 32 else).")
    min_bucket: int
    max_bucket: int
    learning_rate: float = Field(description="U-Net / transformer learning rate.")
    text_encoder_lr: float | None = Field(
        description="Text-encoder learning rate; None: the text encoders are not trained."
    )
    kohya_script: str = Field(description="sd-scripts training script.")
    network_module: str = Field(description="sd-scripts --network_module.")
    diffusers_script: str = Field(description="diffusers example script, relative to examples/.")
    checkpoint_file: str = Field(
        description="Single-file checkpoint name (ComfyUI models/, sd-scripts for FLUX)."
    )
    companion_files: dict[str, tuple[str, str]] = Field(
        default_factory=dict,
        description="Other files the model needs: role -> (file name, hub repository).",
    )
    samples_range: tuple[int, int] = Field(
        description="Images shown to the model over the run (steps x batch) that the "
        "references report for a person LoRA."
    )
    max_default_batch: int = Field(description="Largest batch the smart default picks.")
    min_snr_gamma: float | None
    noise_offset: float | None
    sample_steps: int
    sample_cfg: float = Field(description="CFG scale of sample images (FLUX: 1, distilled).")
    sample_guidance: float | None = Field(description="FLUX embedded guidance for samples.")


_SD15 = ModelPreset(
    key="sd15",
    family="sd15",
    label="Stable Diffusion 1.5",
    model="stable-diffusion-v1-5/stable-diffusion-v1-5",
    hub_id="stable-diffusion-v1-5/stable-diffusion-v1-5",
    resolution=512,
    bucket_step=64,
    min_bucket=256,
    max_bucket=1024,
    learning_rate=1e-4,
    text_encoder_lr=5e-5,
    kohya_script="train_network.py",
    network_module="networks.lora",
    diffusers_script="text_to_image/train_text_to_image_lora.py",
    checkpoint_file="v1-5-pruned-emaonly.safetensors",
    samples_range=(1000, 3000),
    max_default_batch=4,
    min_snr_gamma=5.0,
    noise_offset=None,
    sample_steps=28,
    sample_cfg=7.0,
    sample_guidance=None,
)

_SDXL = ModelPreset(
    key="sdxl",
    family="sdxl",
    label="Stable Diffusion XL 1.0",
    model="stabilityai/stable-diffusion-xl-base-1.0",
    hub_id="stabilityai/stable-diffusion-xl-base-1.0",
    resolution=1024,
    bucket_step=32,
    min_bucket=512,
    max_bucket=2048,
    learning_rate=1e-4,
    text_encoder_lr=None,
    kohya_script="sdxl_train_network.py",
    network_module="networks.lora",
    diffusers_script="text_to_image/train_text_to_image_lora_sdxl.py",
    checkpoint_file="sd_xl_base_1.0.safetensors",
    samples_range=(1500, 4000),
    max_default_batch=4,
    min_snr_gamma=5.0,
    noise_offset=0.0357,
    sample_steps=28,
    sample_cfg=7.0,
    sample_guidance=None,
)

_FLUX = ModelPreset(
    key="flux.1-dev",
    family="flux",
    label="FLUX.1 [dev]",
    model="flux1-dev.safetensors",
    hub_id="black-forest-labs/FLUX.1-dev",
    resolution=1024,
    bucket_step=32,
    min_bucket=512,
    max_bucket=2048,
    learning_rate=1e-4,
    text_encoder_lr=None,
    kohya_script="flux_train_network.py",
    network_module="networks.lora_flux",
    diffusers_script="dreambooth/train_dreambooth_lora_flux.py",
    checkpoint_file="flux1-dev.safetensors",
    companion_files={
        "clip_l": ("clip_l.safetensors", "comfyanonymous/flux_text_encoders"),
        "t5xxl": ("t5xxl_fp16.safetensors", "comfyanonymous/flux_text_encoders"),
        "ae": ("ae.safetensors", "black-forest-labs/FLUX.1-dev"),
    },
    samples_range=(1500, 4000),
    max_default_batch=2,
    min_snr_gamma=None,
    noise_offset=None,
    sample_steps=20,
    sample_cfg=1.0,
    sample_guidance=3.5,
)

PRESETS: dict[str, ModelPreset] = {p.key: p for p in (_SD15, _SDXL, _FLUX)}

_ALIASES: dict[str, str] = {
    "sd15": "sd15",
    "sd1.5": "sd15",
    "sd-1.5": "sd15",
    "sd1": "sd15",
    "stable-diffusion-v1-5": "sd15",
    "runwayml/stable-diffusion-v1-5": "sd15",
    "stable-diffusion-v1-5/stable-diffusion-v1-5": "sd15",
    "sdxl": "sdxl",
    "sdxl1.0": "sdxl",
    "sdxl-1.0": "sdxl",
    "stabilityai/stable-diffusion-xl-base-1.0": "sdxl",
    "flux.1-dev": "flux.1-dev",
    "flux1-dev": "flux.1-dev",
    "flux-dev": "flux.1-dev",
    "flux": "flux.1-dev",
    "black-forest-labs/flux.1-dev": "flux.1-dev",
}


def _guess_family(name: str) -> Family | None:
    low = name.lower()
    if "flux" in low:
        return "flux"
    if re.search(r"xl|pony|illustrious|noob", low):
        return "sdxl"
    if re.search(r"(^|[^0-9])(1[-._]?5|v1)([^0-9]|$)|sd15", low):
        return "sd15"
    return None


def resolve_base_model(name: str, family: Family | None = None) -> tuple[ModelPreset, str | None]:
    """The preset for ``--base-model`` and, for a custom one, the warning to show.

    ``name`` is a preset key, an alias (hub id, common spelling, case-insensitive) or any
    other hub id or checkpoint file, which becomes a custom preset of ``family`` (else the
    family its name suggests, else SDXL) with that model in place of the preset's.
    """
    key = _ALIASES.get(name.strip().lower())
    if key is not None and family in (None, PRESETS[key].family):
        # runwayml/stable-diffusion-v1-5 is gone from the hub: its mirror is the preset's.
        return PRESETS[key], None
    guessed = family or _guess_family(Path(name).name)
    base = PRESETS[{"sd15": "sd15", "sdxl": "sdxl", "flux": "flux.1-dev"}[guessed or "sdxl"]]
    how = "as given" if family else ("from its name" if guessed else "by default")
    warning = (
        f"{name!r} is not a preset (sd15, sdxl, flux.1-dev): using a custom preset with "
        f"{base.label} settings ({how}). Check the resolution and learning rate suit it."
    )
    model = name.strip()
    update: dict[str, object] = {"key": "custom", "model": model, "label": model}
    if model.lower().endswith((".safetensors", ".ckpt")):
        update["checkpoint_file"] = Path(model).name
    return base.model_copy(update=update), warning
