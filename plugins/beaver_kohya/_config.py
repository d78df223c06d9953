"""The two TOML documents sd-scripts reads, and its sample-prompt lines, from one plan.

Every number comes from the plan; this module only chooses sd-scripts' names and types.
sd-scripts does not convert values read from ``--config_file`` (they bypass argparse's
``type=``), so each value is written with the type the training code expects: resolution
as the string ``"W,H"``, ``nargs="*"`` arguments as arrays, flags as ``true``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from beaver_kohya._files import BASE_MODEL_ARG, ModelFile, base_model

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan

__all__ = [
    "NEGATIVE_PROMPT",
    "dataset_config",
    "dataset_toml",
    "sample_prompt_lines",
    "training_config",
]

NEGATIVE_PROMPT = "lowres, blurry, jpeg artifacts, deformed, bad anatomy, watermark, text"
"""Negative prompt of SD1.5/SDXL sample images (FLUX samples run without CFG)."""

DATA_LOADER_WORKERS = 2
"""sd-scripts' default of 8 workers buys nothing for a few dozen cached images."""

LOG_PREFIX = "kohya-"
"""TensorBoard run folders start with this, beside other backends' runs in the same logs/."""

# FLUX.1 dev, from sd-scripts' README ("seems to work better") and docs/flux_train_network.md:
# guidance 1.0 while training (3.5 is the inference default), shift sampling with 3.1582, raw
# model prediction.
FLUX_GUIDANCE_SCALE = 1.0
FLUX_TIMESTEP_SAMPLING = "shift"
FLUX_DISCRETE_FLOW_SHIFT = 3.1582
FLUX_MODEL_PREDICTION = "raw"


def _save_precision(mixed_precision: str) -> str:
    return {"bf16": "bf16", "fp16": "fp16"}.get(mixed_precision, "float")


def _caches_text_encoder(plan: TrainPlan) -> bool:
    """Whether text-encoder outputs are cached (the captions are never shuffled or dropped).

    SDXL may cache only when no text encoder is trained (sdxl_train_network.py asserts
    ``network_train_unet_only``); FLUX caches T5-XXL even while CLIP-L trains.
    """
    family = plan.preset.family
    return family == "flux" or (family == "sdxl" and plan.text_encoder_lr is None)


def _text_encoders(plan: TrainPlan) -> int:
    """How many text encoders a LoRA trains: CLIP (SD1.5), CLIP-L + CLIP-G (SDXL), CLIP-L."""
    return 2 if plan.preset.family == "sdxl" else 1


def training_config(
    plan: TrainPlan,
    files: list[ModelFile],
    *,
    dataset_path: Path,
    prompts_path: Path,
    fp8_base: bool = False,
) -> dict[str, dict[str, Any]]:
    """The ``--config_file`` document: one table per topic, flattened by sd-scripts."""
    preset = plan.preset
    family = preset.family
    network: dict[str, Any] = {
        "network_module": preset.network_module,
        "network_dim": plan.network_dim,
        "network_alpha": float(plan.network_alpha),
    }
    optimizer: dict[str, Any] = {
        "optimizer_type": plan.optimizer,
        "learning_rate": plan.learning_rate,
        "unet_lr": plan.learning_rate,
    }
    if plan.text_encoder_lr is None:
        network["network_train_unet_only"] = True
    else:
        # One rate per trained text encoder; SDXL's "text_encoder_lr1/2" do not exist.
        optimizer["text_encoder_lr"] = [plan.text_encoder_lr] * _text_encoders(plan)
    optimizer["lr_scheduler"] = plan.lr_scheduler
    if plan.lr_scheduler != "constant":
        # get_scheduler_fix raises on warmup steps for "constant" (constant_with_warmup has them).
        optimizer["lr_warmup_steps"] = plan.lr_warmup_steps

    training: dict[str, Any] = {
        "max_train_epochs": plan.epochs,
        "seed": plan.seed,
        "mixed_precision": plan.mixed_precision,
        "resolution": f"{plan.resolution},{plan.resolution}",
        "gradient_checkpointing": True,
        "sdpa": True,
        "max_data_loader_n_workers": DATA_LOADER_WORKERS,
        "persistent_data_loader_workers": True,
    }
    if preset.min_snr_gamma is not None:
        training["min_snr_gamma"] = preset.min_snr_gamma
    if preset.noise_offset is not None:
        training["noise_offset"] = preset.noise_offset
    if family == "sdxl" and plan.mixed_precision == "fp16":
        training["no_half_vae"] = True  # the SDXL VAE overflows in fp16

    caching: dict[str, Any] = {"cache_latents": True, "cache_latents_to_disk": True}
    if _caches_text_encoder(plan):
        caching["cache_text_encoder_outputs"] = True
        caching["cache_text_encoder_outputs_to_disk"] = True

    doc: dict[str, dict[str, Any]] = {
        "model": {BASE_MODEL_ARG: base_model(plan, files)},
    }
    if family == "flux":
        flux: dict[str, Any] = {f.role: str(f.path) for f in files if f.role != BASE_MODEL_ARG}
        flux.update(
            guidance_scale=FLUX_GUIDANCE_SCALE,
            timestep_sampling=FLUX_TIMESTEP_SAMPLING,
            discrete_flow_shift=FLUX_DISCRETE_FLOW_SHIFT,
            model_prediction_type=FLUX_MODEL_PREDICTION,
        )
        if fp8_base:
            flux["fp8_base"] = True
        doc["flux"] = flux
    doc.update(
        network=network,
        optimizer=optimizer,
        training=training,
        caching=caching,
        dataset={"dataset_config": str(dataset_path)},
        saving={
            "output_dir": str(plan.model_dir.absolute()),
            "output_name": plan.output_name,
            "save_model_as": "safetensors",
            "save_precision": _save_precision(plan.mixed_precision),
            "save_every_n_epochs": plan.save_every_n_epochs,
        },
        logging={
            "logging_dir": str(plan.logging_dir.absolute()),
            "log_with": "tensorboard",
            "log_prefix": LOG_PREFIX,
        },
        sampling={
            "sample_prompts": str(prompts_path),
            "sample_every_n_epochs": plan.save_every_n_epochs,
            # FLUX samples with its own flow-matching sampler and ignores this.
            "sample_sampler": "euler" if family == "flux" else "euler_a",
        },
    )
    return doc


def _bucket_bounds(plan: TrainPlan) -> tuple[int, int]:
    """min/max bucket sizes that contain the resolution (sd-scripts asserts both)."""
    step = plan.preset.bucket_step
    low = min(plan.preset.min_bucket, plan.resolution)
    high = max(plan.preset.max_bucket, plan.resolution)
    return low - low % step, high + (-high) % step


def dataset_config(plan: TrainPlan) -> dict[str, Any]:
    """The ``--dataset_config`` document: [general], one [[datasets]], a subset per folder."""
    low, high = _bucket_bounds(plan)
    return {
        "general": {
            # The default is ".caption": without this every caption is silently ignored.
            "caption_extension": ".txt",
            "shuffle_caption": False,
            # The trigger word leads every caption and the class tokens, as one token.
            "keep_tokens": 1,
            "enable_bucket": True,
            "bucket_no_upscale": True,
        },
        "datasets": [
            {
                "resolution": plan.resolution,
                "batch_size": plan.batch_size,
                "min_bucket_reso": low,
                "max_bucket_reso": high,
                "bucket_reso_steps": plan.preset.bucket_step,
                "subsets": [
                    {
                        "image_dir": str(subset.image_dir.absolute()),
                        "num_repeats": subset.repeats,
                        # Used only for an image without a .txt caption.
                        "class_tokens": plan.dataset.class_tokens,
                    }
                    for subset in plan.subsets
                ],
            }
        ],
    }


def dataset_toml(plan: TrainPlan) -> str:
    """``dataset_config`` as TOML, one ``[[datasets.subsets]]`` table per shot folder.

    Written table by table: tomli_w would inline a subset whose paths are short, so the
    layout would depend on where the dataset lives.
    """
    doc = dataset_config(plan)
    chunks = [tomli_w.dumps({"general": doc["general"]})]
    for dataset in doc["datasets"]:
        scalars = {k: v for k, v in dataset.items() if k != "subsets"}
        chunks.append("[[datasets]]\n" + tomli_w.dumps(scalars))
        for subset, planned in zip(dataset["subsets"], plan.subsets, strict=True):
            note = f"# {planned.shot}: {planned.images} images x {planned.repeats} repeats\n"
            chunks.append(note + "[[datasets.subsets]]\n" + tomli_w.dumps(subset))
    return "\n".join(chunks)


def _clean(prompt: str) -> str:
    """One line without " --", which sd-scripts reads as the start of an option."""
    text = " ".join(prompt.split())
    while " --" in text:
        text = text.replace(" --", " -")
    return text


def sample_prompt_lines(plan: TrainPlan) -> list[str]:
    """sample_prompts.txt: each plan prompt with size, seed, CFG, steps (and guidance)."""
    preset = plan.preset
    size = plan.resolution
    lines: list[str] = []
    for i, prompt in enumerate(plan.sample_prompts):
        options = [f"--w {size}", f"--h {size}", f"--d {plan.seed + i}"]
        options.append(f"--l {preset.sample_cfg:g}")
        options.append(f"--s {preset.sample_steps}")
        if preset.family == "flux":
            # Since sd-scripts' 2025-07-30 change --g is FLUX's embedded guidance, --l the CFG.
            guidance = preset.sample_guidance if preset.sample_guidance is not None else 3.5
            options.append(f"--g {guidance:g}")
        else:
            options.append(f"--n {NEGATIVE_PROMPT}")
        lines.append(" ".join([_clean(prompt), *options]))
    return lines
