"""The ``accelerate launch`` argument list for a plan's diffusers example script.

Every value comes from the plan; this module only knows which argument of which script
carries it (checked against each script's ``parse_args``: docs/trainers/diffusers.md and
tests/train/data/diffusers_args.json name the sources). What a script cannot express is
said in a warning instead of being dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from beaver.errors import ConfigError

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan
    from beaver.train.presets import ModelPreset

__all__ = ["INSTALL_EXTRAS", "Launch", "build_launch", "model_problem", "requirements_file"]

MIXED_PRECISION = ("no", "fp16", "bf16")
"""The scripts' ``--mixed_precision`` choices."""
SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
INSTALL_EXTRAS = ("peft", "datasets", "tensorboard")
"""Packages the scripts import that not every requirements file lists (peft for the LoRA
layers, datasets for metadata.jsonl, tensorboard for --report_to tensorboard)."""

# The requirements file each example's README installs (others: <dir>/requirements.txt).
_REQUIREMENTS = {
    "text_to_image/train_text_to_image_lora_sdxl.py": "text_to_image/requirements_sdxl.txt",
    "dreambooth/train_dreambooth_lora_flux.py": "dreambooth/requirements_flux.txt",
}


@dataclass(frozen=True)
class Launch:
    """``accelerate launch $DIFFUSERS_DIR/examples/<script> <args>`` and its caveats."""

    script: str
    """The example script, relative to diffusers' ``examples/``."""
    args: tuple[str, ...]
    """Everything after the script path: ``--name=value`` words and bare flags."""
    warnings: tuple[str, ...] = ()
    needs_bitsandbytes: bool = False


def requirements_file(script: str) -> str:
    """The requirements file (relative to ``examples/``) the script's README installs."""
    return _REQUIREMENTS.get(script, str(PurePosixPath(script).parent / "requirements.txt"))


def _model(preset: ModelPreset) -> str:
    # A preset's hub_id is the diffusers-format repository (FLUX's `model` is the single
    # file sd-scripts reads); a custom model is taken as given.
    if preset.key != "custom":
        return preset.hub_id
    local = Path(preset.model).expanduser()
    return str(local.resolve()) if local.exists() else preset.model


def model_problem(preset: ModelPreset) -> str | None:
    """Why the scripts cannot load the plan's base model, or None."""
    model = _model(preset)
    if not model.lower().endswith(SINGLE_FILE_SUFFIXES):
        return None
    return (
        f"the diffusers example scripts load a diffusers-format model (a hub id, or a folder "
        f"with model_index.json), not the single file {model}: save it in diffusers format "
        "first (diffusers' from_single_file(...).save_pretrained(DIR)) and pass that folder "
        "as --base-model, or use --backend kohya"
    )


class _Args:
    """An argument list under construction: ``--name=value`` words and bare flags.

    One word per argument, so a value that starts with ``-`` (a prompt, a negative
    number) can never be read by argparse as an option of its own.
    """

    def __init__(self) -> None:
        self.items: list[str] = []

    def opt(self, name: str, value: str | float) -> None:
        text = repr(value) if isinstance(value, float) else str(value)
        self.items.append(f"--{name}={text}")

    def flag(self, name: str) -> None:
        self.items.append(f"--{name}")


def build_launch(plan: TrainPlan, data_dir: Path) -> Launch:
    """The launch for ``plan``, reading its images and captions from ``data_dir``."""
    preset = plan.preset
    flux = preset.family == "flux"
    script = preset.diffusers_script
    warnings: list[str] = []
    if plan.mixed_precision not in MIXED_PRECISION:
        raise ConfigError(
            f"mixed precision {plan.mixed_precision!r} is not one the diffusers scripts take.",
            hint=f"Use one of: {', '.join(MIXED_PRECISION)}.",
        )
    a = _Args()
    a.opt("pretrained_model_name_or_path", _model(preset))
    if flux:
        # The FLUX script is a DreamBooth script: per-image captions only come through
        # --dataset_name (a local imagefolder works) with --caption_column. It still
        # requires --instance_prompt, used for an empty caption and in the model card.
        a.opt("dataset_name", str(data_dir))
        a.opt("instance_prompt", plan.dataset.class_tokens)
    else:
        a.opt("train_data_dir", str(data_dir))
    # imagefolder names the file_name column "image"; metadata.jsonl's caption is "text".
    a.opt("image_column", "image")
    a.opt("caption_column", "text")
    a.opt("resolution", plan.resolution)
    # The scripts resize the short side and crop a square, at random unless told to
    # center: a random crop of a full-body shot can cut the person's head off.
    a.flag("center_crop")
    a.opt("train_batch_size", plan.batch_size)
    # data/ holds exactly one plan epoch, so epochs x batches is the plan's step count;
    # max_train_steps pins it in case the dataloader were split differently.
    a.opt("num_train_epochs", plan.epochs)
    a.opt("max_train_steps", plan.total_steps)
    a.opt("learning_rate", plan.learning_rate)
    a.opt("lr_scheduler", plan.lr_scheduler)
    a.opt("lr_warmup_steps", plan.lr_warmup_steps)
    eight_bit = plan.optimizer.lower() == "adamw8bit"
    if eight_bit:
        a.flag("use_8bit_adam")
    elif plan.optimizer.lower() != "adamw":
        warnings.append(
            f"optimizer {plan.optimizer} is not available in {script}: it trains with AdamW."
        )
    a.opt("rank", plan.network_dim)
    _alpha(a, plan, script, flux, warnings)
    _text_encoder(a, plan, script, flux, warnings)
    a.opt("mixed_precision", plan.mixed_precision)
    a.opt("seed", plan.seed)
    a.flag("gradient_checkpointing")  # the plan's fixed choice (docs/train.md): memory first
    _loss(a, plan, script, flux, warnings)
    a.opt("output_dir", str(plan.model_dir))
    a.opt("report_to", "tensorboard")
    a.opt("logging_dir", str(plan.logging_dir))
    a.opt("validation_prompt", plan.sample_prompts[0])
    a.opt("validation_epochs", plan.save_every_n_epochs)
    # The scripts save the LoRA only at the end, and accelerate states (with the LoRA
    # weights inside) every N steps: N steps = the plan's save interval in epochs.
    a.opt("checkpointing_steps", plan.save_every_n_epochs * plan.steps_per_epoch)
    if flux:
        a.opt("guidance_scale", 1)  # FLUX.1-dev is guidance-distilled: train at 1
    return Launch(
        script=script, args=tuple(a.items), warnings=tuple(warnings), needs_bitsandbytes=eight_bit
    )


def _alpha(a: _Args, plan: TrainPlan, script: str, flux: bool, warnings: list[str]) -> None:
    alpha, dim = plan.network_alpha, plan.network_dim
    if flux:
        # --lora_alpha is parsed as an int; a fractional alpha is rounded, and said so.
        whole = max(1, round(alpha))
        if whole != alpha:
            warnings.append(f"network_alpha {alpha:g} is rounded to {whole} for --lora_alpha.")
        a.opt("lora_alpha", whole)
    elif alpha != dim:
        warnings.append(
            f"network_alpha {alpha:g} is not applied: {PurePosixPath(script).name} sets "
            f"lora_alpha = rank ({dim}), so the LoRA's scale is 1 instead of "
            f"{alpha:g}/{dim} = {alpha / dim:g} as the plan asks."
        )


def _text_encoder(a: _Args, plan: TrainPlan, script: str, flux: bool, warnings: list[str]) -> None:
    lr = plan.text_encoder_lr
    if lr is None:
        return
    if flux:
        a.flag("train_text_encoder")  # CLIP-L only; the script never trains T5
        a.opt("text_encoder_lr", lr)
        return
    # The SD1.5 script has no text-encoder option; the SDXL one trains both encoders at
    # --learning_rate, not the plan's lower rate: the U-Net alone is the closer match.
    warnings.append(
        f"text_encoder_lr {lr:g} is not applied: {PurePosixPath(script).name} cannot train "
        "the text encoder at its own learning rate, so only the U-Net is trained."
    )


def _loss(a: _Args, plan: TrainPlan, script: str, flux: bool, warnings: list[str]) -> None:
    preset = plan.preset
    name = PurePosixPath(script).name
    if preset.min_snr_gamma is not None:
        if flux:
            warnings.append(f"min_snr_gamma is not applied: {name} has no --snr_gamma.")
        else:
            a.opt("snr_gamma", preset.min_snr_gamma)
    if preset.noise_offset is not None:
        if flux:
            warnings.append(f"noise_offset is not applied: {name} has no --noise_offset.")
        else:
            a.opt("noise_offset", preset.noise_offset)
