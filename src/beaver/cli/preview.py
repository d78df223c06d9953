"""``beaver preview``: a local web UI over a prepared dataset."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import Annotated

import typer

from beaver.cli._app import BeaverTyper, current
from beaver.cli._output import warn
from beaver.errors import ConfigError


def preview(
    dataset: Annotated[
        Path, typer.Argument(help="A dataset from `beaver prep`.", show_default=False)
    ],
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind (loopback by default).")] = "127.0.0.1",
    browser: Annotated[bool, typer.Option(help="Open the browser.")] = True,
    taxonomy: Annotated[
        Path | None,
        typer.Option(help="Taxonomy for concepts of edited captions (default: prep's)."),
    ] = None,
) -> None:
    """Browse, filter and correct a prepared dataset in the browser.

    Edits (shot type, caption, exclude, emphasis) are saved into the dataset's own files at
    once. Stop it with Ctrl-C.
    """
    from beaver.preview.server import PreviewServer, is_loopback

    rt = current()
    try:
        server = PreviewServer(dataset.expanduser(), host=host, port=port, taxonomy=taxonomy)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"Port {port} on {host} is in use.",
                hint="Pick another with --port (or --port 0 for any free one).",
            ) from None
        raise ConfigError(f"Cannot listen on {host}:{port} ({exc.strerror or exc}).") from None
    if not is_loopback(host):
        warn(
            f"Listening on {host}: anyone who can reach this machine can see the photos "
            "(edits still need the page's token). Use the default 127.0.0.1 to keep it private."
        )
    typer.echo(f"Preview of {server.editor.path}: {server.url}  (Ctrl-C stops it)")
    if browser:
        import webbrowser

        if not webbrowser.open(server.url):
            rt.info("No browser could be opened; open the address above.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        rt.info("Stopped.")
    finally:
        server.httpd.server_close()


def register(app: BeaverTyper) -> None:
    """Add the command to the root app."""
    app.command("preview")(preview)
