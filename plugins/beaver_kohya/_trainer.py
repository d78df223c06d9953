"""The ``kohya`` trainer: config.toml, dataset.toml and sample_prompts.txt for one plan."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import tomli_w

from beaver.fsutil import write_atomic
from beaver_kohya._config import dataset_toml, sample_prompt_lines, training_config
from beaver_kohya._files import model_files
from beaver_kohya._launch import launch_problem, script_body

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan
    from beaver_kohya import KohyaOptions

__all__ = ["CONFIG_FILE", "DATASET_FILE", "PROMPTS_FILE", "KohyaTrainer"]

CONFIG_FILE = "config.toml"
DATASET_FILE = "dataset.toml"
PROMPTS_FILE = "sample_prompts.txt"

_HEADER = "# kohya sd-scripts {what}, written by beaver {version} for {name}.\n# {how}\n\n"


class KohyaTrainer:
    """Writes what sd-scripts' ``--config_file`` and ``--dataset_config`` read."""

    def __init__(self, options: KohyaOptions) -> None:
        self.options = options

    def write(self, plan: TrainPlan, out_dir: Path) -> list[Path]:
        """config.toml, dataset.toml and sample_prompts.txt under ``out_dir``."""
        out_dir = out_dir.absolute()
        out_dir.mkdir(parents=True, exist_ok=True)
        config, dataset, prompts = (
            out_dir / CONFIG_FILE,
            out_dir / DATASET_FILE,
            out_dir / PROMPTS_FILE,
        )
        files = model_files(plan, self.options)
        args = training_config(
            plan,
            files,
            dataset_path=dataset,
            prompts_path=prompts,
            fp8_base=self.options.fp8_base,
        )
        header = {"version": plan.beaver_version, "name": " ".join(plan.name.split())}
        write_atomic(
            config,
            _HEADER.format(
                what=f"training arguments ({plan.preset.kohya_script} --config_file)",
                how="Tables are only grouping: sd-scripts flattens them into one namespace.",
                **header,
            )
            + tomli_w.dumps(args),
        )
        write_atomic(
            dataset,
            _HEADER.format(
                what="dataset (--dataset_config)",
                how="Unknown keys stop sd-scripts; see docs/trainers/kohya.md before editing.",
                **header,
            )
            + dataset_toml(plan),
        )
        write_atomic(prompts, "\n".join(sample_prompt_lines(plan)) + "\n")
        return [config, dataset, prompts]

    def script(self, plan: TrainPlan, out_dir: Path) -> str:
        """Checks sd-scripts (and FLUX's files) are there, then runs accelerate launch."""
        out_dir = out_dir.absolute()
        return script_body(
            script=plan.preset.kohya_script,
            config=out_dir / CONFIG_FILE,
            dataset=out_dir / DATASET_FILE,
            default_dir=self._default_dir(),
            files=model_files(plan, self.options),
        )

    def launch_problem(self, plan: TrainPlan) -> str | None:
        """The first thing train.sh would stop at, or None."""
        return launch_problem(
            script=plan.preset.kohya_script,
            default_dir=self._default_dir(),
            files=model_files(plan, self.options),
        )

    def _default_dir(self) -> Path | None:
        folder = self.options.sd_scripts_dir
        return folder.expanduser().absolute() if folder is not None else None
