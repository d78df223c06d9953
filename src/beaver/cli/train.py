"""``beaver train``: training plans and configs for kohya, diffusers and ComfyUI."""
# ruff: noqa: ARG001 - a placeholder: the options are its future interface

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beaver.cli._app import BeaverTyper, DefaultCommandGroup
from beaver.cli._options import JsonOpt, OutputOpt, complete_trainers
from beaver.errors import NotImplementedYetError

app = BeaverTyper(
    cls=DefaultCommandGroup,
    help="Configure LoRA training. `beaver train DATASET` is short for `beaver train run DATASET`.",
)


@app.command("run")
def run(
    dataset: Annotated[Path, typer.Argument(help="A dataset from `beaver prep`.")],
    output: OutputOpt = None,
    base_model: Annotated[
        str | None, typer.Option("--base-model", "-m", help="Base model (default: sdxl).")
    ] = None,
    backend: Annotated[
        list[str] | None,
        typer.Option(help="Training backend (repeatable).", autocompletion=complete_trainers),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs (default: from dataset size).")] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Batch size (default: from dataset size).")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "-lr", help="Learning rate (default: 1e-4).")
    ] = None,
    network_dim: Annotated[int | None, typer.Option(help="LoRA rank (default: 32).")] = None,
    network_alpha: Annotated[int | None, typer.Option(help="LoRA alpha (default: 16).")] = None,
    resolution: Annotated[int | None, typer.Option(help="Training resolution.")] = None,
    interactive: Annotated[
        bool, typer.Option("--interactive", "-i", help="Ask for each value.")
    ] = False,
) -> None:
    """Write training configs with smart defaults for a dataset (not implemented yet)."""
    raise NotImplementedYetError("`beaver train`")


@app.command("list-models")
def list_models(json_output: JsonOpt = False) -> None:
    """List configured training runs (not implemented yet)."""
    raise NotImplementedYetError("`beaver train list-models`")
