"""The ``comfyui`` trainer: workflow_api.json, prompt.json, dataset.tsv and README.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beaver.fsutil import write_atomic
from beaver_comfyui._launch import ScriptValues, launch_problem, script_body
from beaver_comfyui._readme import readme
from beaver_comfyui._workflow import (
    build_workflow,
    dataset_folder,
    lora_prefix,
    model_files,
    subset_folder,
)

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan
    from beaver_comfyui import ComfyUIOptions

__all__ = [
    "LOADER_EXTENSIONS",
    "MANIFEST_FILE",
    "PROMPT_FILE",
    "README_FILE",
    "WORKFLOW_FILE",
    "ComfyUITrainer",
    "dataset_rows",
]

WORKFLOW_FILE = "workflow_api.json"
PROMPT_FILE = "prompt.json"
MANIFEST_FILE = "dataset.tsv"
README_FILE = "README.md"
LOADER_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp"})
"""What LoadImageTextDataSetFromFolder reads (nodes_dataset.py); it skips .bmp."""


def dataset_rows(plan: TrainPlan) -> tuple[list[tuple[str, Path, Path | None]], list[Path]]:
    """(sub-folder, image, caption file or None) per image ComfyUI reads, and the skipped."""
    rows: list[tuple[str, Path, Path | None]] = []
    skipped: list[Path] = []
    # The plan's subsets follow dataset.folders, one per shot, in the same order.
    for subset, folder in zip(plan.subsets, plan.dataset.folders, strict=True):
        sub = subset_folder(subset.repeats, subset.shot)
        for image in folder.images:
            path = plan.dataset.path / image.file
            if path.suffix.lower() not in LOADER_EXTENSIONS:
                skipped.append(path)
                continue
            rows.append((sub, path, path.with_suffix(".txt") if image.has_caption else None))
    return rows, skipped


def _manifest(plan: TrainPlan) -> str:
    rows, skipped = dataset_rows(plan)
    lines = [
        (
            "# Read by train.sh comfyui: sub-folder, image, caption file (empty: the class "
            f"tokens {plan.dataset.class_tokens!r}), tab-separated."
        ),
        f"# The images go to ComfyUI/input/{dataset_folder(plan)}/<sub-folder>/.",
    ]
    if skipped:
        lines.append(
            "# Left out (ComfyUI's loader reads only png, jpg, jpeg, webp): "
            + ", ".join(str(p) for p in skipped)
        )
    lines += [f"{sub}\t{image}\t{caption or ''}" for sub, image, caption in rows]
    return "\n".join(lines) + "\n"


def _absolute(folder: Path | None) -> Path | None:
    """train.sh runs from any folder: a setting like ``~/ComfyUI`` must not stay relative."""
    return folder.expanduser().absolute() if folder is not None else None


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


class ComfyUITrainer:
    """Writes an API-format workflow of ComfyUI's native training nodes for one plan."""

    def __init__(self, options: ComfyUIOptions) -> None:
        self.options = options

    def write(self, plan: TrainPlan, out_dir: Path) -> list[Path]:
        """workflow_api.json, prompt.json, dataset.tsv and README.md under ``out_dir``."""
        out_dir = out_dir.absolute()
        out_dir.mkdir(parents=True, exist_ok=True)
        workflow = build_workflow(plan)
        paths = {
            name: out_dir / name
            for name in (WORKFLOW_FILE, PROMPT_FILE, MANIFEST_FILE, README_FILE)
        }
        write_atomic(paths[WORKFLOW_FILE], _json(workflow))
        write_atomic(
            paths[PROMPT_FILE],
            _json({"prompt": workflow, "client_id": dataset_folder(plan)}),
        )
        write_atomic(paths[MANIFEST_FILE], _manifest(plan))
        _, skipped = dataset_rows(plan)
        write_atomic(
            paths[README_FILE], readme(plan, workflow, skipped, url=self.options.comfyui_url)
        )
        return list(paths.values())

    def notes(self, plan: TrainPlan) -> list[str]:
        """What of the plan ComfyUI's native trainer cannot apply (shown by `beaver train`)."""
        return [
            (
                f"network_alpha {plan.network_alpha:g} is not applied: TrainLoraNode fixes alpha "
                "at 1 (comfyui/README.md says what that means for the learning rate)."
            ),
            (
                f"{plan.total_steps} steps with a constant AdamW learning rate: no "
                f"{plan.lr_scheduler} schedule, no 8-bit AdamW, one LoRA saved at the end."
            ),
        ]

    def script(self, plan: TrainPlan, out_dir: Path) -> str:
        """Checks ComfyUI is there, copies the dataset, queues the workflow and waits."""
        out_dir = out_dir.absolute()
        values = ScriptValues(
            default_url=self.options.comfyui_url,
            default_dir=_absolute(self.options.comfyui_dir),
            out_dir=out_dir,
            prompt=out_dir / PROMPT_FILE,
            manifest=out_dir / MANIFEST_FILE,
            folder=dataset_folder(plan),
            run_id=str(plan.run_dir),
            class_tokens=plan.dataset.class_tokens,
            files=tuple(model_files(plan)),
            lora_name=f"{lora_prefix(plan).rsplit('/', 1)[-1]}_{plan.total_steps}_steps_",
            steps=plan.total_steps,
            model_dir=plan.model_dir,
            logging_dir=plan.logging_dir,
        )
        return script_body(values)

    def launch_problem(self, plan: TrainPlan) -> str | None:
        """The folder is missing or not ComfyUI's, or no server answers (2-second check)."""
        del plan  # the same checks hold for every plan
        return launch_problem(self.options.comfyui_dir, self.options.comfyui_url)
