"""``beaver train``: training plans and configs for kohya, diffusers and ComfyUI."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from beaver.cli._app import BeaverTyper, DefaultCommandGroup, current
from beaver.cli._options import JsonOpt, OutputOpt, complete_trainers
from beaver.cli._output import print_json, print_table, warn
from beaver.errors import BackendError

if TYPE_CHECKING:
    from beaver.settings import BeaverSettings
    from beaver.train.dataset import TrainDataset
    from beaver.train.plan import TrainPlan, TrainRequest

app = BeaverTyper(
    cls=DefaultCommandGroup,
    help="Configure LoRA training. `beaver train DATASET` is short for `beaver train run DATASET`.",
)

_SHOWN = (
    ("base_model", "base model"),
    ("resolution", "resolution"),
    ("epochs", "epochs"),
    ("batch_size", "batch size"),
    ("learning_rate", "learning rate"),
    ("network_dim", "network dim"),
    ("network_alpha", "network alpha"),
    ("repeats", "repeats"),
    ("total_steps", "total steps"),
    ("save_every_n_epochs", "save every"),
)


@app.command("run")
def run(
    dataset: Annotated[
        Path, typer.Argument(help="A dataset from `beaver prep`.", show_default=False)
    ],
    output: OutputOpt = None,
    base_model: Annotated[
        str | None,
        typer.Option(
            "--base-model",
            "-m",
            help="Preset (sd15, sdxl, flux.1-dev), hub id or checkpoint file (default: sdxl).",
        ),
    ] = None,
    model_family: Annotated[
        str | None,
        typer.Option(help="sd15, sdxl or flux: the family of a custom --base-model."),
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(
            help="Training backend, repeatable (default: every installed one).",
            autocompletion=complete_trainers,
        ),
    ] = None,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Epochs (default: from dataset size).")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(min=1, help="Batch size (default: from dataset size).")
    ] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option("--learning-rate", "-lr", min=0.0, help="Learning rate (default: 1e-4)."),
    ] = None,
    network_dim: Annotated[int | None, typer.Option(min=1, help="LoRA rank (default: 32).")] = None,
    network_alpha: Annotated[
        float | None, typer.Option(min=0.0, help="LoRA alpha (default: 16).")
    ] = None,
    resolution: Annotated[
        int | None,
        typer.Option(min=256, help="Training resolution (default: 512 SD1.5, 1024 SDXL/FLUX)."),
    ] = None,
    repeats: Annotated[
        int | None,
        typer.Option(
            min=1, help="Repeats for every shot folder (default: balanced per shot type)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Training seed.")] = 42,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Ask for each value.")
    ] = False,
    run_now: Annotated[
        bool,
        typer.Option("--run", help="Start training with the first backend after writing."),
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Write training configs with smart defaults for a dataset from `beaver prep`.

    Epochs and batch size follow the dataset size; repeats balance the shot mix. Every
    installed backend gets its files and a section in train.sh; --run starts the first.
    """
    from beaver.train.command import write_run
    from beaver.train.dataset import read_dataset
    from beaver.train.plan import TrainRequest, make_plan

    rt = current()
    settings = rt.settings()
    data, notes = read_dataset(dataset, class_word=settings.prep.class_word)
    request = TrainRequest(
        base_model=base_model or settings.train.base_model,
        model_family=_family(model_family),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        network_dim=network_dim,
        network_alpha=network_alpha,
        resolution=resolution,
        repeats=repeats,
        seed=seed,
    )
    run_dir = (
        output.expanduser().resolve()
        if output
        else _new_run_dir(settings.training_run_dir(data.trigger_word).resolve())
    )
    if interactive:
        request = _ask(data, request, run_dir)
    plan = make_plan(data, request, run_dir)
    trainers = _trainers(backend or settings.train.backends, settings)
    for line in [*notes, *plan.warnings]:
        warn(line)
    report = write_run(plan, trainers, ["beaver", *sys.argv[1:]])
    for name, said in report.notes.items():
        for note in said:
            warn(f"{name}: {note}")
    if json_output:
        print_json(
            {
                "run_dir": str(plan.run_dir),
                "train_sh": str(report.script),
                "config": report.info.with_name("training_config.json").name,
                "plan": {k: _value(plan, k) for k, _ in _SHOWN},
                "backends": {n: [str(p) for p in fs] for n, fs in report.files.items()},
                "warnings": [*notes, *plan.warnings],
                "notes": report.notes,
            }
        )
    elif not rt.quiet:
        _show(plan, report.files, report.script)
    if run_now:
        from beaver.train.command import launch

        name, trainer = trainers[0]
        rt.info(f"Starting {name}: {report.script} {name}")
        code = launch(report, name, trainer, out=sys.stderr if json_output else sys.stdout)
        if code:
            raise BackendError(
                f"{name} stopped with exit status {code} (its output is above).",
                hint=f"Fix what it reported, then run {report.script} {name}.",
            )


def _family(value: str | None) -> Any:
    from beaver.errors import ConfigError

    if value is None:
        return None
    low = value.lower().replace(".", "")
    if low not in ("sd15", "sdxl", "flux"):
        raise ConfigError(f"Unknown --model-family {value!r}. Choose one of: sd15, sdxl, flux.")
    return low


def _new_run_dir(base: Path) -> Path:
    from beaver.train.command import new_run_dir

    return new_run_dir(base)


def _trainers(names: list[str], settings: BeaverSettings) -> list[tuple[str, Any]]:
    """The chosen backends, built with their options (every installed one when none named)."""
    registry = current().plugins().trainers()
    # kohya first: the workflow document's recommended method, and train.sh's default.
    preferred = ("kohya", "diffusers", "comfyui")
    wanted = list(dict.fromkeys(names)) or sorted(
        registry.names(), key=lambda n: (preferred.index(n) if n in preferred else 9, n)
    )
    if not wanted:
        from beaver.errors import PluginError

        raise PluginError(
            "No training backend is installed.",
            hint="Reinstall eager-beaver: it brings kohya, diffusers and comfyui.",
        )
    specs = [registry.get(name) for name in wanted]  # unknown names fail before writing
    values = settings.train.model_dump()
    if values.get("flux_dir") is None:
        values["flux_dir"] = settings.models_dir / "flux"
    return [
        (spec.name, spec.create(spec.with_settings(settings.plugin_options(spec.name), values)))
        for spec in specs
    ]


def _ask(data: TrainDataset, request: TrainRequest, run_dir: Path) -> TrainRequest:
    """Ask for each value, the current plan's shown as the default."""
    from beaver.train.plan import make_plan

    base = typer.prompt(
        "Base model (sd15, sdxl, flux.1-dev, hub id or file)", request.base_model, err=True
    )
    request = request.model_copy(update={"base_model": base})
    plan = make_plan(data, request, run_dir)
    answers: dict[str, Any] = {
        "resolution": typer.prompt("Resolution", plan.resolution, type=int, err=True),
        "epochs": typer.prompt("Epochs", plan.epochs, type=int, err=True),
        "batch_size": typer.prompt("Batch size", plan.batch_size, type=int, err=True),
        "learning_rate": typer.prompt("Learning rate", plan.learning_rate, type=float, err=True),
        "network_dim": typer.prompt("Network dim (rank)", plan.network_dim, type=int, err=True),
        "network_alpha": typer.prompt("Network alpha", plan.network_alpha, type=float, err=True),
    }
    current_repeats = {s.repeats for s in plan.subsets}
    if request.repeats is not None or len(current_repeats) == 1:
        answers["repeats"] = typer.prompt(
            "Repeats per image", min(current_repeats), type=int, err=True
        )
    # Values equal to the computed default stay "default" so their reasons stay explained.
    update = {
        k: (v if v != getattr(plan, k) or getattr(request, k) is not None else None)
        for k, v in answers.items()
        if k != "repeats"
    }
    if "repeats" in answers and (
        request.repeats is not None or answers["repeats"] != min(current_repeats)
    ):
        update["repeats"] = answers["repeats"]
    return request.model_copy(update=update)


def _value(plan: TrainPlan, key: str) -> Any:
    if key == "base_model":
        return plan.preset.model
    if key == "repeats":
        return {s.shot: s.repeats for s in plan.subsets}
    return getattr(plan, key)


def _show(plan: TrainPlan, files: dict[str, list[Path]], script: Path) -> None:
    rows = []
    for key, label in _SHOWN:
        value = _value(plan, key)
        if isinstance(value, dict):
            value = ", ".join(f"{k} {v}" for k, v in value.items())
        elif isinstance(value, float):
            value = f"{value:g}"
        why = plan.reasons.get(key, "")
        rows.append((label, value, why.split(": ", 1)[-1] if ": " in why else why))
    shots = ", ".join(f"{k} {v}" for k, v in plan.dataset.shot_distribution.items())
    print_table(
        ("", "value", "why"),
        rows,
        title=f"{plan.name}: {plan.dataset.total_images} images ({shots}), "
        f"trigger {plan.trigger_word!r}",
    )
    from shlex import quote

    for name, written in files.items():
        typer.echo(
            f"  {name}: {', '.join(p.name for p in written)}  →  {quote(str(script))} {name}"
        )
    typer.echo(f"Run folder: {plan.run_dir}")
    typer.echo(f"Monitor: tensorboard --logdir {quote(str(plan.logging_dir))}")


@app.command("list-models")
def list_models(json_output: JsonOpt = False) -> None:
    """List configured training runs: person, trigger, images, parameters, path."""
    from beaver.train.runs import find_runs

    rt = current()
    root = rt.settings().output_dir / "lora_models"
    runs, problems = find_runs(root)
    for line in problems:
        warn(line)
    if json_output:
        print_json([r.model_dump(mode="json") for r in runs])
        return
    if not runs:
        if not rt.quiet:
            typer.echo(f"No training runs under {root}. Configure one with `beaver train DATASET`.")
        return
    print_table(
        (
            "person",
            "trigger",
            "images",
            "model",
            "epochs",
            "batch",
            "lr",
            "dim/alpha",
            "steps",
            "trained",
            "path",
        ),
        [
            (
                r.person,
                r.trigger_word,
                r.images,
                r.base_model,
                r.epochs,
                r.batch_size,
                f"{r.learning_rate:g}",
                f"{r.network_dim}/{r.network_alpha:g}",
                r.total_steps,
                len(r.trained) or "",
                r.path,
            )
            for r in runs
        ],
    )
