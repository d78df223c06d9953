"""The ``beaver`` command line: one Typer app built by :func:`build_app`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from beaver import __version__
from beaver.cli import caption, config, face, models, plugins, prep, preview, train
from beaver.cli._app import DEBUG_ENV, BeaverTyper, Runtime, set_runtime
from beaver.plugins import BeaverPluginManager

HELP = """Turn a photo library into a trained LoRA of the people in it.

Pipeline: [bold]face scan[/] → [bold]face cluster[/] → [bold]face label[/] → [bold]face export[/]
→ [bold]caption[/] → [bold]prep[/] → [bold]train[/]. Everything runs locally.
"""


def _version(value: bool) -> None:
    if value:
        typer.echo(f"beaver {__version__}")
        raise typer.Exit


def build_app(plugin_manager: BeaverPluginManager | None = None) -> typer.Typer:
    """Build the CLI; tests pass their own plugin manager."""
    app = BeaverTyper(help=HELP, name="beaver")

    @app.callback()
    def root(
        debug: Annotated[
            bool,
            typer.Option("--debug", envvar=DEBUG_ENV, help="Show tracebacks for errors."),
        ] = False,
        quiet: Annotated[
            bool, typer.Option("--quiet", "-q", help="No progress bars or status lines.")
        ] = False,
        config_file: Annotated[
            Path | None,
            typer.Option(
                "--config",
                envvar="BEAVER_CONFIG",
                dir_okay=False,
                help="Read settings from this TOML file instead of ./beaver.toml.",
            ),
        ] = None,
        output_dir: Annotated[
            Path | None,
            typer.Option("--output-dir", help="Root of everything beaver writes (./outputs)."),
        ] = None,
        version: Annotated[
            bool,
            typer.Option(
                "--version", callback=_version, is_eager=True, help="Show the version and exit."
            ),
        ] = False,
    ) -> None:
        del version
        overrides = {"output_dir": output_dir} if output_dir is not None else {}
        set_runtime(
            Runtime(
                debug=debug,
                quiet=quiet,
                config=config_file,
                overrides=overrides,
                plugin_manager=plugin_manager,
            )
        )

    app.add_typer(face.app, name="face")
    caption.register(app)
    prep.register(app)
    app.add_typer(train.app, name="train")
    plugins.register(app)
    app.add_typer(models.app, name="models")
    preview.register(app)
    app.add_typer(config.app, name="config")
    return app


def main() -> None:
    """Console-script entry point."""
    build_app()(prog_name="beaver")
