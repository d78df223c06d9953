"""README.md of a run's comfyui/ folder: versions, model files, how to run, what differs."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beaver_comfyui._launch import (
    GATED,
    GATED_REPO,
    REPO_URL,
    download_command,
    install_steps,
    start_command,
)
from beaver_comfyui._workflow import (
    COMFYUI_VERSION,
    NODE_SOURCES,
    dataset_folder,
    lora_prefix,
    model_files,
    subset_folder,
)

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan

__all__ = ["readme"]


def _nodes_table(workflow: dict[str, dict[str, Any]]) -> list[str]:
    lines = ["| id | node | what it does here |", "|---|---|---|"]
    for node_id, node in workflow.items():
        lines.append(f"| {node_id} | `{node['class_type']}` | {node['_meta']['title']} |")
    return lines


def _models(plan: TrainPlan) -> list[str]:
    lines = [
        "| file | ComfyUI folder | how to get it |",
        "|---|---|---|",
    ]
    files = model_files(plan)
    for file in files:
        command = download_command(file, "ComfyUI/models")
        lines.append(f"| `{file.name}` | `models/{file.folder}/` | `{command}` |")
    lines.append("")
    lines.append(
        "`models/diffusion_models/` and `models/text_encoders/` are the current names; "
        "ComfyUI reads the older `models/unet/` and `models/clip/` as well, and any folder "
        "listed in its `extra_model_paths.yaml`. The names must match exactly: ComfyUI "
        "refuses a workflow that names a file it does not list."
    )
    if any(f.repo == GATED_REPO for f in files):
        lines += ["", GATED]
    return lines


def _differences(plan: TrainPlan) -> list[str]:
    alpha, dim, lr = plan.network_alpha, plan.network_dim, plan.learning_rate
    te = (
        "the text encoders are not trained (TrainLoraNode trains the diffusion model only; "
        f"the plan's text-encoder learning rate {plan.text_encoder_lr:g} is not used)"
        if plan.text_encoder_lr is not None
        else "the text encoders are not trained (the plan trains none either)"
    )
    return [
        (
            f"- **Alpha is 1**: TrainLoraNode creates every LoRA layer with alpha 1.0, so the "
            f"plan's network_alpha {alpha:g} is not applied: the LoRA's change is scaled by "
            f"1/{dim} instead of {alpha:g}/{dim}, and learning rate {lr:g} trains it more "
            "slowly than the kohya run of this plan. With alpha 1, sd-scripts' guide uses "
            "learning rates of 1e-4 to 1e-3 and TrainLoraNode's own default is 5e-4 at rank 8; "
            "raise `--learning-rate` if the LoRA comes out weak."
        ),
        (
            f"- **Steps, not epochs**: {plan.total_steps} steps at batch {plan.batch_size} "
            f"(the plan's {plan.epochs} epochs x {plan.steps_per_epoch} steps). Each step draws "
            "a random batch; the repeats make each shot's images that much more likely. There "
            "are no per-epoch saves: one LoRA is written at the end."
        ),
        f"- Optimizer AdamW (ComfyUI has no 8-bit AdamW) at a constant learning rate (no "
        f"{plan.lr_scheduler} schedule, no warmup); loss MSE; no min-SNR weighting or "
        "noise offset; " + te + ".",
        (
            f"- Images are scaled to about {plan.resolution}x{plan.resolution} pixels each, "
            f"sides multiples of {plan.preset.bucket_step}, smaller ones upscaled; same-size "
            "images are batched together."
        ),
    ]


def readme(
    plan: TrainPlan, workflow: dict[str, dict[str, Any]], skipped: list[Path], *, url: str
) -> str:
    """The README.md text; ``url`` is the server the options name."""
    folder = dataset_folder(plan)
    steps = plan.total_steps
    saved = f"{lora_prefix(plan)}_{steps}_steps_00001_.safetensors"
    subsets = ", ".join(
        f"`{subset_folder(s.repeats, s.shot)}/` ({s.images} images x {s.repeats})"
        for s in plan.subsets
    )
    sources = [f"| `{path}` | {repo} | `{commit}` |" for path, repo, commit in NODE_SOURCES]
    lines = [
        f"# ComfyUI LoRA training: {plan.name} ({plan.trigger_word})",
        "",
        (
            f"Written by beaver {plan.beaver_version} at {plan.created_at}: {plan.preset.label}, "
            f"{steps} steps at batch {plan.batch_size}, rank {plan.network_dim}, learning rate "
            f"{plan.learning_rate:g}, about {plan.resolution}x{plan.resolution} pixels, seed "
            f"{plan.seed}."
        ),
        "",
        (
            "- `workflow_api.json`: the workflow in ComfyUI's API format, using its native "
            "training nodes."
        ),
        "- `prompt.json`: the same workflow as the body `POST /prompt` takes.",
        (
            f"- `dataset.tsv`: the images and captions `train.sh comfyui` copies into "
            f"`ComfyUI/input/{folder}/`."
        ),
        "",
        "## ComfyUI version",
        "",
        (
            f"Node names, input names, choices and output order follow ComfyUI {COMFYUI_VERSION} "
            "(the official repository is now Comfy-Org/ComfyUI; comfyanonymous/ComfyUI "
            "redirects there), read from these files:"
        ),
        "",
        "| file | repository | commit |",
        "|---|---|---|",
        *sources,
        "",
        (
            "The training nodes are marked experimental and have changed between releases. "
            "ComfyUI checks a workflow when it is queued and names any node, input or link type "
            "it does not know. Older ComfyUI, from before the late-2025 trainer changes (pull "
            "request 11117 added ResolutionBucket), gave TrainLoraNode a `model` output "
            "first and rejects this workflow: update it (`git pull`, then "
            "`pip install -r requirements.txt`)."
        ),
        "",
        *_nodes_table(workflow),
        "",
        "## Model files",
        "",
        *_models(plan),
        "",
        "## Run it",
        "",
        (
            "`./train.sh comfyui` in the run folder does all of it: it checks the ComfyUI folder "
            "(`COMFYUI_DIR`, else `train.comfyui_dir`) and server (`COMFYUI_URL`, else "
            f"`train.comfyui_url`, here `{url}`), that ComfyUI lists the model files, "
            f"copies the dataset into `input/{folder}/` ({subsets}), queues `prompt.json`, "
            "prints progress until ComfyUI reports success or an error, then copies the LoRA "
            f"into `{plan.model_dir}/` and the loss graph into `{plan.logging_dir}/`."
        ),
        "",
        "No ComfyUI yet:",
        "",
        "```bash",
        *install_steps("ComfyUI"),
        start_command(".", 8188).split(" && ", 1)[1],
        "```",
        "",
        "By hand, with ComfyUI running:",
        "",
        (
            f"1. Copy each image and its `.txt` caption into `ComfyUI/input/{folder}/"
            "<repeats>_<shot>/` as `dataset.tsv` lists them (LoadImageTextDataSetFromFolder "
            "reads kohya-style `N_name` sub-folders N times)."
        ),
        "2. Queue the workflow: drag `workflow_api.json` onto the ComfyUI window and press Run, or",
        (
            "   `curl -X POST -H 'Content-Type: application/json' --data-binary @prompt.json "
            "http://127.0.0.1:8188/prompt`."
        ),
        (
            f"3. The LoRA appears as `ComfyUI/output/{saved}`. Move it into `models/loras/` to "
            "use it; its keys are ComfyUI's own module names and it patches the diffusion model "
            "only (`LoraLoaderModelOnly`)."
        ),
        "",
        (
            f"Queueing the same workflow twice makes ComfyUI reuse its cached result ({REPO_URL} "
            "README, Notes): change the seed to train again."
        ),
        "",
        "## What differs from the kohya run of this plan",
        "",
        *_differences(plan),
    ]
    if skipped:
        lines += [
            "",
            "## Left out",
            "",
            "ComfyUI's loader reads png, jpg, jpeg and webp only; convert these to train them: "
            + ", ".join(f"`{shlex.quote(str(p))}`" for p in skipped),
        ]
    return "\n".join(lines) + "\n"
