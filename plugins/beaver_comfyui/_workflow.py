"""The API-format workflow: ComfyUI's native training nodes wired for one plan.

API format is ``{"<id>": {"class_type", "inputs", "_meta"}}`` with links written as
``["<id>", output_index]``; ``POST /prompt`` validates it against the server's own node
definitions before queueing. Node names, input names, choices and output order follow the
ComfyUI sources listed in ``NODE_SOURCES`` (tests/train/data/comfyui_nodes.json holds the
same facts and the tests check every generated name against it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beaver.errors import ConfigError

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan

__all__ = [
    "COMFYUI_VERSION",
    "FLUX_TRAIN_GUIDANCE",
    "NODE_SOURCES",
    "ModelFile",
    "Workflow",
    "build_workflow",
    "dataset_folder",
    "lora_prefix",
    "model_files",
]

COMFYUI_VERSION = "0.38.1"
"""comfyui_version.py of the Comfy-Org/ComfyUI snapshot the node layout was checked against."""

NODE_SOURCES: tuple[tuple[str, str, str], ...] = (
    ("comfy_extras/nodes_train.py", "yzkee/ComfyUI (mirror)", "5ebb0c2e0b72"),
    ("comfy_extras/nodes_dataset.py", "Comfy-Org/ComfyUI", "0535c3053379"),
    ("comfy_extras/nodes_post_processing.py", "Comfy-Org/ComfyUI", "0c85348956e6"),
    ("comfy_extras/nodes_flux.py", "comfyanonymous/ComfyUI", "145de4633467"),
    ("nodes.py", "Comfy-Org/ComfyUI", "02217e36a45b"),
    ("comfyui_version.py", "Comfy-Org/ComfyUI", "20ca544ee043"),
)
"""(file, repository, commit) each node's inputs and outputs were read from."""

FLUX_TRAIN_GUIDANCE = 1.0
"""sd-scripts' FLUX guide: train FLUX.1-dev at guidance 1.0; ComfyUI's Flux model embeds
3.5 when the conditioning carries none, so FluxGuidance sets it (the kohya backend's value)."""

# TrainLoraNode's limits (nodes_train.py): a plan outside them is refused by ComfyUI's
# validation when queued, so it is refused here, before anything is copied.
_LIMITS = {"rank": (1, 128), "steps": (1, 100000), "batch_size": (1, 10000)}
_LR_LIMITS = (1e-7, 1.0)
_TRAINING_DTYPE = {"bf16": "bf16", "fp32": "fp32", "no": "fp32"}
"""The plan's mixed precision as TrainLoraNode's training_dtype (bf16, fp32 or none)."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _safe(text: str) -> str:
    """A file-name part: runs of anything but letters, digits, '.', '_' and '-' become '_'."""
    return _UNSAFE.sub("_", text).strip("._") or "lora"


def dataset_folder(plan: TrainPlan) -> str:
    """The folder under ComfyUI's input/ that receives this run's dataset."""
    return f"beaver_{_safe(plan.trigger_word)}_{_safe(plan.run_dir.name)}"


def subset_folder(repeats: int, shot: str) -> str:
    """kohya's ``<repeats>_<name>``: LoadImageTextDataSetFromFolder lists its images N times."""
    return f"{repeats}_{_safe(shot)}"


def lora_prefix(plan: TrainPlan) -> str:
    """SaveLoRA's prefix: ComfyUI writes ``output/<prefix>_<steps>_steps_<counter>_``."""
    return f"loras/{_safe(plan.output_name)}"


@dataclass(frozen=True)
class ModelFile:
    """A model file a loader node names; ComfyUI must list it among its models."""

    loader: str
    """The node whose file list must hold it (what ``GET /object_info/<loader>`` shows)."""
    folder: str
    """Its folder under ComfyUI's models/."""
    name: str
    repo: str | None
    """Hugging Face repository to download it from; None when beaver does not know one."""
    source: Path | None = None
    """The local file given as --base-model, to link into ``folder``."""


def _given_file(model: str) -> Path | None:
    path = Path(model).expanduser()
    if path.is_absolute():
        return path
    return path.absolute() if path.is_file() else None


def _base_name(plan: TrainPlan) -> str:
    """The single-file checkpoint ComfyUI loads (never the preset's for a custom model)."""
    preset = plan.preset
    if preset.key != "custom":
        return preset.checkpoint_file
    name = Path(preset.model).name
    if not name.lower().endswith((".safetensors", ".ckpt", ".sft")):
        # A custom hub id: ComfyUI loads single files only, which the user must provide.
        name = f"{name}.safetensors"
    return name


def model_files(plan: TrainPlan) -> list[ModelFile]:
    """The files the loader nodes name, in node order."""
    preset = plan.preset
    name = _base_name(plan)
    given = _given_file(preset.model) if preset.key == "custom" else None
    repo = None if preset.key == "custom" else preset.hub_id
    if preset.family != "flux":
        return [ModelFile("CheckpointLoaderSimple", "checkpoints", name, repo, given)]
    files = [ModelFile("UNETLoader", "diffusion_models", name, repo, given)]
    for role, loader, folder in (
        ("clip_l", "DualCLIPLoader", "text_encoders"),
        ("t5xxl", "DualCLIPLoader", "text_encoders"),
        ("ae", "VAELoader", "vae"),
    ):
        file, hub = preset.companion_files[role]
        files.append(ModelFile(loader, folder, file, hub))
    return files


def check_limits(plan: TrainPlan) -> None:
    """Refuse a plan TrainLoraNode would reject (``Value … bigger than max``)."""
    values = {"rank": plan.network_dim, "steps": plan.total_steps, "batch_size": plan.batch_size}
    for name, value in values.items():
        low, high = _LIMITS[name]
        if not low <= value <= high:
            raise ConfigError(
                f"ComfyUI's TrainLoraNode takes {name} {low}-{high}, not {value}.",
                hint="Use another --backend, or change the plan (e.g. --network-dim 128).",
            )
    if plan.mixed_precision not in _TRAINING_DTYPE:
        raise ConfigError(
            f"ComfyUI's TrainLoraNode trains in bf16 or fp32, not {plan.mixed_precision}."
        )
    low_lr, high_lr = _LR_LIMITS
    if not low_lr <= plan.learning_rate <= high_lr:
        raise ConfigError(
            f"ComfyUI's TrainLoraNode takes learning_rate {low_lr:g}-{high_lr:g}, "
            f"not {plan.learning_rate:g}."
        )


class Workflow:
    """An API-format graph under construction; ids are "1", "2", … in insertion order."""

    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}

    def add(self, class_type: str, title: str, **inputs: Any) -> str:
        node_id = str(len(self.nodes) + 1)
        self.nodes[node_id] = {
            "class_type": class_type,
            "inputs": inputs,
            "_meta": {"title": title},
        }
        return node_id


def _link(node_id: str, output: int) -> list[Any]:
    return [node_id, output]


def build_workflow(plan: TrainPlan) -> dict[str, dict[str, Any]]:
    """The API-format workflow that trains ``plan`` with ComfyUI's native nodes."""
    check_limits(plan)
    preset = plan.preset
    files = model_files(plan)
    wf = Workflow()
    if preset.family == "flux":
        unet, clip_l, t5xxl, ae = files
        loader = wf.add(
            "UNETLoader",
            f"{preset.label}: models/diffusion_models",
            unet_name=unet.name,
            weight_dtype="default",
        )
        encoders = wf.add(
            "DualCLIPLoader",
            "FLUX text encoders: models/text_encoders",
            clip_name1=clip_l.name,
            clip_name2=t5xxl.name,
            type="flux",
        )
        vae_node = wf.add("VAELoader", "FLUX VAE: models/vae", vae_name=ae.name)
        model, clip, vae = _link(loader, 0), _link(encoders, 0), _link(vae_node, 0)
    else:
        ckpt = wf.add(
            "CheckpointLoaderSimple",
            f"{preset.label}: models/checkpoints",
            ckpt_name=files[0].name,
        )
        model, clip, vae = _link(ckpt, 0), _link(ckpt, 1), _link(ckpt, 2)
    folder = dataset_folder(plan)
    data = wf.add(
        "LoadImageTextDataSetFromFolder",
        f"Dataset: input/{folder} (<repeats>_<shot> sub-folders)",
        folder=folder,
    )
    res, step = plan.resolution, plan.preset.bucket_step
    # Same area as resolution², each side a multiple of the bucket step: kohya-style
    # aspect-ratio buckets, so photos of one shape share a size and batch together.
    scaled = wf.add(
        "ImageScaleToTotalPixels",
        f"Resize to about {res}x{res} pixels, sides multiples of {step}",
        image=_link(data, 0),
        # Lanczos (PIL) filters both ways: most photos shrink, a few small crops grow.
        upscale_method="lanczos",
        megapixels=res * res / (1024 * 1024),
        resolution_steps=step,
    )
    encoded = wf.add(
        "MakeTrainingDataset",
        "Encode images (VAE) and captions (text encoders)",
        images=_link(scaled, 0),
        vae=vae,
        clip=clip,
        texts=_link(data, 1),
    )
    conditioning = _link(encoded, 1)
    if preset.family == "flux":
        guided = wf.add(
            "FluxGuidance",
            f"Train FLUX at guidance {FLUX_TRAIN_GUIDANCE:g}",
            conditioning=conditioning,
            guidance=FLUX_TRAIN_GUIDANCE,
        )
        conditioning = _link(guided, 0)
    buckets = wf.add(
        "ResolutionBucket",
        "Group same-size images into batches",
        latents=_link(encoded, 0),
        conditioning=conditioning,
    )
    train = wf.add(
        "TrainLoraNode",
        f"Train LoRA: {plan.total_steps} steps, batch {plan.batch_size}, rank {plan.network_dim}",
        model=model,
        latents=_link(buckets, 0),
        positive=_link(buckets, 1),
        batch_size=plan.batch_size,
        grad_accumulation_steps=1,
        steps=plan.total_steps,
        learning_rate=plan.learning_rate,
        rank=plan.network_dim,
        optimizer="AdamW",
        loss_function="MSE",
        seed=plan.seed,
        training_dtype=_TRAINING_DTYPE[plan.mixed_precision],
        # Mixed precision as accelerate does it: bf16 compute, fp32 weights; in bf16 the
        # LoRA weights would round away most AdamW updates at a learning rate near 1e-4.
        lora_dtype="fp32",
        quantized_backward=False,
        algorithm="LoRA",
        gradient_checkpointing=True,
        checkpoint_depth=1,
        offloading=False,
        existing_lora="[None]",
        bucket_mode=True,
        bypass_mode=False,
    )
    wf.add(
        "SaveLoRA",
        "Save LoRA: output/" + lora_prefix(plan) + "_<steps>_steps_<counter>_.safetensors",
        lora=_link(train, 0),
        prefix=lora_prefix(plan),
        steps=_link(train, 2),
    )
    wf.add(
        "LossGraphNode",
        "Loss graph",
        loss=_link(train, 1),
        filename_prefix=f"loss_graph_{_safe(plan.output_name)}",
    )
    return wf.nodes
