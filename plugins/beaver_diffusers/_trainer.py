"""The diffusers backend: data/ + command.json on disk, and the bash lines that launch it."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from beaver_diffusers._command import (
    INSTALL_EXTRAS,
    Launch,
    build_launch,
    model_problem,
    requirements_file,
)
from beaver_diffusers._data import METADATA, write_imagefolder

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan

__all__ = ["COMMAND_FILE", "DATA_DIR", "ENV_VAR", "LORA_FILE", "DiffusersTrainer"]

ENV_VAR = "DIFFUSERS_DIR"
DATA_DIR = "data"
COMMAND_FILE = "command.json"
LORA_FILE = "pytorch_lora_weights.safetensors"
"""What every one of the scripts saves in --output_dir at the end."""
REPO = "https://github.com/huggingface/diffusers"
_DIR = "\0dir\0"  # stands for the checkout folder in install hints
NO_CHECKOUT = f"no diffusers checkout is set ({ENV_VAR}, or train.diffusers_dir)"
NO_ACCELERATE = (
    "accelerate is not on PATH: activate the environment diffusers is installed in "
    "(pip install accelerate; accelerate config default)"
)
GATED = "accept its licence on huggingface.co and log in (hf auth login) first"


def _install_lines(launch: Launch) -> list[str]:
    """How to get a checkout that runs ``launch``, with ``_DIR`` for its folder."""
    extras = " ".join([*INSTALL_EXTRAS, *(["bitsandbytes"] if launch.needs_bitsandbytes else [])])
    return [
        "The diffusers example scripts are not in the pip package; install a checkout:",
        f"  git clone {REPO} {_DIR}",
        f"  pip install -e {_DIR}",
        f"  pip install -r {_DIR}/examples/{requirements_file(launch.script)}",
        f"  pip install {extras}",
        "  accelerate config default",
        f"then set {ENV_VAR}={_DIR} (or train.diffusers_dir) and run this again.",
    ]


def _bash_word(text: str, variable: str) -> str:
    """``text`` as one bash word, with ``_DIR`` expanded from ``$variable``."""
    return f'"${{{variable}}}"'.join(shlex.quote(p) if p else "" for p in text.split(_DIR))


def _say(lines: list[str], variable: str = "diffusers_hint_dir") -> list[str]:
    words = [f"    {_bash_word(line, variable)} \\" for line in lines]
    return ["  printf '%s\\n' \\", *words, "    >&2"]


class DiffusersTrainer:
    """Writes an imagefolder and the exact ``accelerate launch`` command for one plan."""

    def __init__(self, diffusers_dir: Path | None = None) -> None:
        self.diffusers_dir = diffusers_dir

    def write(self, plan: TrainPlan, out_dir: Path) -> list[Path]:
        """data/ (links + metadata.jsonl) and command.json under ``out_dir``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        data_dir = out_dir / DATA_DIR
        rows, copies = write_imagefolder(plan, data_dir)
        launch = build_launch(plan, data_dir)
        warnings = list(launch.warnings)
        if copies:
            warnings.append(
                f"{copies} of {len(rows)} images were copied into {data_dir}: "
                "this file system refused symbolic links."
            )
        command = {
            "backend": "diffusers",
            "script": launch.script,
            "launch": ["accelerate", "launch", f"${ENV_VAR}/examples/{launch.script}"],
            "args": list(launch.args),
            "data_dir": str(data_dir),
            "rows": len(rows),
            "lora_file": str(plan.model_dir / LORA_FILE),
            "warnings": warnings,
        }
        command_file = out_dir / COMMAND_FILE
        text = json.dumps(command, indent=2, ensure_ascii=False) + "\n"
        command_file.write_text(text, encoding="utf-8")
        return [data_dir / METADATA, command_file]

    def notes(self, plan: TrainPlan) -> list[str]:
        """What of the plan these scripts cannot apply (shown by `beaver train`)."""
        return list(build_launch(plan, plan.run_dir / "diffusers" / DATA_DIR).warnings)

    def script(self, plan: TrainPlan, out_dir: Path) -> str:
        """Check the checkout and accelerate (exit 3 with the install steps), then launch."""
        data_dir = out_dir / DATA_DIR
        metadata = data_dir / METADATA
        launch = build_launch(plan, data_dir)
        script_path = f'"${ENV_VAR}/examples/{launch.script}"'
        steps = f"{plan.epochs} epochs x {plan.steps_per_epoch} steps = {plan.total_steps}"
        every, lora = plan.save_every_n_epochs, plan.model_dir / LORA_FILE
        lines = [
            f"# diffusers: {plan.preset.label} LoRA with examples/{launch.script}",
            f"# {metadata}: {plan.samples_per_epoch} rows, one plan epoch ({steps})",
            f"# LoRA: {lora} at the end; a model/checkpoint-N/ every {every} epochs",
        ]
        if plan.preset.family == "flux":
            lines.append(f"# {plan.preset.hub_id} is gated: {GATED}.")
        lines += [f"# WARNING: {w}" for w in launch.warnings]
        problem = model_problem(plan.preset)
        if problem:
            lines += [_echo(f"diffusers: {problem}."), "exit 3"]
        lines.append(f'{ENV_VAR}="${{{ENV_VAR}:-}}"')
        if self.diffusers_dir is not None:
            default = shlex.quote(str(self.diffusers_dir.expanduser()))
            lines += [f'if [ -z "${ENV_VAR}" ]; then', f"  {ENV_VAR}={default}", "fi"]
        lines += [
            f'if [ -z "${ENV_VAR}" ] || [ ! -f {script_path} ]; then',
            f'  diffusers_hint_dir="${{{ENV_VAR}:-$HOME/diffusers}}"',
            f'  if [ -z "${ENV_VAR}" ]; then',
            f"    {_echo(f'diffusers: {NO_CHECKOUT}.')}",
            "  else",
            f'    echo "diffusers: ${ENV_VAR}/examples/{launch.script} does not exist." >&2',
            "  fi",
            *_say(_install_lines(launch)),
            "  exit 3",
            "fi",
            "if ! command -v accelerate >/dev/null 2>&1; then",
            f"  {_echo(f'diffusers: {NO_ACCELERATE}.')}",
            "  exit 3",
            "fi",
            f"if [ ! -f {shlex.quote(str(metadata))} ]; then",
            f"  {_echo(f'diffusers: {metadata} is missing: run beaver train again.')}",
            "  exit 3",
            "fi",
            f"accelerate launch {script_path} \\",
            *_launch_lines(launch.args),
        ]
        return "\n".join(lines) + "\n"

    def launch_problem(self, plan: TrainPlan) -> str | None:
        """The script's checks, in Python: model format, checkout, accelerate."""
        problem = model_problem(plan.preset)
        if problem:
            return f"diffusers: {problem}."
        launch = build_launch(plan, Path(DATA_DIR))
        env = os.environ.get(ENV_VAR)
        root = Path(env) if env else self.diffusers_dir
        where = str(root) if root is not None else "~/diffusers"
        steps = _install_lines(launch)[1:-1]
        install = "; ".join(line.strip().replace(_DIR, where) for line in steps)
        if root is None:
            return f"diffusers: {NO_CHECKOUT}; install one: {install}."
        script = root.expanduser() / "examples" / launch.script
        if not script.is_file():
            return f"diffusers: {script} does not exist; install a checkout: {install}."
        if shutil.which("accelerate") is None:
            return f"diffusers: {NO_ACCELERATE}."
        return None


def _echo(message: str) -> str:
    return f"echo {shlex.quote(message)} >&2"


def _launch_lines(args: tuple[str, ...]) -> list[str]:
    """One argument per line, the value quoted: ``--name='a value'``."""
    words = []
    for arg in args:
        name, eq, value = arg.partition("=")
        words.append(f"  {name}={shlex.quote(value)}" if eq else f"  {shlex.quote(arg)}")
    return [word + " \\" for word in words[:-1]] + words[-1:]
