"""``beaver train``: write a plan's files for each backend, train.sh, and the run records.

Resolve, then write, then (with ``--run``) launch: backends receive the frozen plan and
never see CLI flags. The run folder is new for each run (a time stamp), so configuring
never touches an earlier run; training_info.json is written last and marks a complete one.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from beaver.errors import BackendError, ConfigError, DiskFullError
from beaver.fsutil import write_atomic
from beaver.interfaces import Trainer
from beaver.train.dataset import EMPHASIS
from beaver.train.plan import TrainPlan
from beaver.train.runs import (
    CONFIG_FILE,
    INFO_FILE,
    SCRIPT_FILE,
    BackendFiles,
    TrainingInfo,
    summarise,
)

__all__ = ["TrainReport", "launch", "new_run_dir", "train_script", "write_run"]


@dataclass(frozen=True)
class TrainReport:
    """What ``write_run`` wrote."""

    plan: TrainPlan
    files: dict[str, list[Path]]
    script: Path
    info: Path
    notes: dict[str, list[str]]


def new_run_dir(base: Path) -> Path:
    """``base``, or ``base_2``, ``base_3``… when a run of the same second exists."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}_{n}")
    return candidate


def check_output(run_dir: Path) -> None:
    """Refuse to write into a non-empty folder that is not a beaver run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file.", hint="Give --output a folder.")
    if run_dir.is_dir() and any(run_dir.iterdir()) and not (run_dir / INFO_FILE).exists():
        raise ConfigError(
            f"{run_dir} is not empty and is not a beaver training run.",
            hint="Give --output a new or empty folder, or leave it out.",
        )


def train_script(plan: TrainPlan, sections: Sequence[tuple[str, str]]) -> str:
    """train.sh: one function per backend, the first one the default."""
    names = [name for name, _ in sections]
    quoted_logs = shlex.quote(str(plan.logging_dir))
    lines = [
        "#!/usr/bin/env bash",
        (
            f"# LoRA training run for {plan.name} (trigger {plan.trigger_word!r}), "
            f"{plan.preset.label}: written by beaver {plan.beaver_version} at {plan.created_at}."
        ),
        (
            f"# {plan.epochs} epochs, batch {plan.batch_size}, about {plan.total_steps} steps; "
            "training_info.json has every value and why."
        ),
        "#",
        f"# Usage: ./train.sh [{'|'.join(names)}]   (default: {names[0]})",
        f"# Watch it: tensorboard --logdir {quoted_logs}",
        f"# The LoRA files appear in {shlex.quote(str(plan.model_dir))}",
        "set -euo pipefail",
        "",
    ]
    for name, body in sections:
        lines.append(f"run_{_func(name)}() {{")
        lines.extend(f"    {line}" if line.strip() else "" for line in body.rstrip().splitlines())
        lines.extend(["}", ""])
    lines.append(f'backend="${{1:-{names[0]}}}"')
    lines.append('case "$backend" in')
    for name in names:
        lines.append(f"    {name}) run_{_func(name)} ;;")
    choices = " ".join(names)
    lines.append(
        f"    *) echo \"train.sh: unknown backend '$backend'; choose one of: {choices}\" >&2; "
        "exit 2 ;;"
    )
    lines.append("esac")
    return "\n".join(lines) + "\n"


def _func(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def write_run(
    plan: TrainPlan,
    trainers: Sequence[tuple[str, Trainer]],
    command: Sequence[str],
) -> TrainReport:
    """Write every backend's files, train.sh, training_config.json, then training_info.json."""
    run_dir = plan.run_dir
    check_output(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        plan.model_dir.mkdir(exist_ok=True)
        plan.logging_dir.mkdir(exist_ok=True)
        _link_emphasis(plan)
        files: dict[str, list[Path]] = {}
        notes: dict[str, list[str]] = {}
        sections: list[tuple[str, str]] = []
        for name, trainer in trainers:
            out_dir = run_dir / name
            out_dir.mkdir(exist_ok=True)
            files[name] = list(trainer.write(plan, out_dir))
            sections.append((name, trainer.script(plan, out_dir)))
            # Optional: what of the plan this trainer cannot apply.
            notes_of = getattr(trainer, "notes", None)
            if callable(notes_of) and (said := [str(n) for n in notes_of(plan)]):
                notes[name] = said
        script = run_dir / SCRIPT_FILE
        write_atomic(script, train_script(plan, sections))
        script.chmod(0o755)
        names = [name for name, _ in trainers]
        config = summarise(plan, names)
        write_atomic(run_dir / CONFIG_FILE, config.model_dump_json(indent=2) + "\n")
        info = TrainingInfo(
            beaver_version=plan.beaver_version,
            created_at=plan.created_at,
            command=list(command),
            config=config,
            defaults=dict(plan.reasons),
            warnings=list(plan.warnings),
            notes=notes,
            backends={
                name: BackendFiles(
                    files=[_relative(p, run_dir) for p in files[name]],
                    launch=f"{shlex.quote(str(script))} {name}",
                )
                for name in names
            },
            plan=plan,
        )
        info_path = run_dir / INFO_FILE
        write_atomic(info_path, info.model_dump_json(indent=2) + "\n")
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise DiskFullError(run_dir) from None
        raise ConfigError(
            f"{run_dir}: cannot write the run ({exc.strerror or exc}).",
            hint="Check the folder is writable, or pass --output.",
        ) from None
    return TrainReport(plan=plan, files=files, script=script, info=info_path, notes=notes)


def _link_emphasis(plan: TrainPlan) -> None:
    """``<run>/emphasis/<shot>/``: links to the tagged images and their captions (copies
    where links cannot be made), for trainers that repeat whole folders."""
    for folder in plan.dataset.folders:
        if not folder.shot.endswith(EMPHASIS):
            continue
        folder.image_dir.mkdir(parents=True, exist_ok=True)
        for image in folder.images:
            source = plan.dataset.path / image.file
            for src in (source, source.with_suffix(".txt")):
                if not src.exists():
                    continue
                target = folder.image_dir / src.name
                if target.is_symlink() or target.exists():
                    target.unlink()
                try:
                    target.symlink_to(src)
                except OSError:
                    shutil.copy2(src, target)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def launch(
    report: TrainReport,
    name: str,
    trainer: Trainer,
    *,
    out: IO[str] | None = None,
) -> int:
    """Run ``train.sh NAME``, streaming its output; its exit status.

    Raises BackendError when the backend cannot be launched (not installed, server down):
    the configs stay written for a later ``./train.sh``.
    """
    problem = trainer.launch_problem(report.plan)
    if problem:
        raise BackendError(
            f"Cannot start {name}: {problem}",
            hint=f"The configs are written; run {report.script} {name} once it is set up.",
        )
    argv = ["bash", str(report.script), name]
    sink = out or sys.stdout
    with subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        cwd=report.plan.run_dir,
        start_new_session=True,
    ) as proc:
        stream = proc.stdout
        assert stream is not None
        try:
            for line in stream:
                sink.write(line)
                sink.flush()
            return proc.wait()
        except KeyboardInterrupt:
            # The trainer runs in its own process group: stop all of it, not just bash.
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
            raise
