"""``beaver plugins``: what is installed, where it came from, whether it can run."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from beaver.cli import _output
from beaver.cli._app import BeaverTyper, current
from beaver.cli._options import JsonOpt
from beaver.errors import UnknownPluginError
from beaver.plugins import BeaverPluginManager, PluginSpec

app = BeaverTyper(
    help="List installed plugins (face detectors, captioners, trainers).",
    no_args_is_help=False,
    invoke_without_command=True,
)

COLUMNS = ("name", "kind", "distribution", "version", "status", "licence", "ready")


def plugin_rows(manager: BeaverPluginManager) -> list[dict[str, Any]]:
    """One row per record, plus one per plugin that is disabled or failed to load."""
    rows: list[dict[str, Any]] = []
    records = manager.all_records()
    conflicted = {
        (kind, name)
        for spec_type in {type(p.spec) for p in records}
        for kind, name in ((spec_type.kind, n) for n in manager.registry(spec_type).conflicts())
    }
    for provided in records:
        spec, info = provided.spec, provided.plugin
        problem = spec.readiness()
        status = "conflict" if (spec.kind, spec.name) in conflicted else info.status
        rows.append(
            {
                "name": spec.name,
                "kind": spec.kind,
                "plugin": info.name,
                "distribution": info.distribution,
                "version": info.version,
                "status": status,
                "licence": spec.licence,
                "description": spec.description,
                "ready": problem is None,
                "problem": problem,
                "error": None,
            }
        )
    for info in manager.plugins:
        if info.status in ("disabled", "failed"):
            rows.append(
                {
                    "name": info.name,
                    "kind": None,
                    "plugin": info.name,
                    "distribution": info.distribution,
                    "version": info.version,
                    "status": info.status,
                    "licence": None,
                    "description": None,
                    "ready": False,
                    "problem": info.error,
                    "error": info.error,
                }
            )
    rows.sort(key=lambda r: (r["kind"] or "~", r["name"], r["distribution"]))
    return rows


@app.callback()
def plugins(
    ctx: typer.Context,
    json_output: JsonOpt = False,
    kind: Annotated[
        str | None,
        typer.Option(help="Only this kind: 'face detector', 'captioner' or 'trainer'."),
    ] = None,
) -> None:
    """List installed plugins with their distribution, status and licence."""
    if ctx.invoked_subcommand is not None:
        return
    rows = plugin_rows(current().plugins())
    if kind is not None:
        rows = [r for r in rows if r["kind"] == kind]
    if json_output:
        _output.print_json(rows)
        return
    table = [
        (
            r["name"],
            r["kind"] or "-",
            r["distribution"],
            r["version"],
            r["status"],
            r["licence"] or "",
            "yes" if r["ready"] else (r["problem"] or "no"),
        )
        for r in rows
    ]
    _output.print_table(COLUMNS, table)


def _find(manager: BeaverPluginManager, name: str) -> list[PluginSpec[Any]]:
    found = [p.spec for p in manager.all_records() if p.spec.name == name]
    if not found:
        names = sorted({p.spec.name for p in manager.all_records()})
        raise UnknownPluginError("plugin", name, names)
    return found


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Plugin name, as listed by `beaver plugins`.")],
    json_output: JsonOpt = False,
) -> None:
    """Show one plugin's description, readiness and options (JSON Schema)."""
    manager = current().plugins()
    specs = _find(manager, name)
    out = [
        {
            "name": spec.name,
            "kind": spec.kind,
            "description": spec.description,
            "licence": spec.licence,
            "requires": list(spec.requires),
            "ready": spec.readiness() is None,
            "problem": spec.readiness(),
            "options": spec.options.model_json_schema(),
        }
        for spec in specs
    ]
    if json_output:
        _output.print_json(out)
        return
    for item in out:
        typer.echo(f"{item['name']} ({item['kind']}): {item['description']}")
        typer.echo(f"  licence: {item['licence']}")
        typer.echo(f"  ready:   {'yes' if item['ready'] else item['problem']}")
        schema: dict[str, Any] = item["options"]  # type: ignore[assignment]
        props = schema.get("properties", {})
        if props:
            typer.echo("  options ([plugins." + str(item["name"]) + "] in beaver.toml):")
            for key, prop in props.items():
                default = json.dumps(prop.get("default")) if "default" in prop else "required"
                desc = prop.get("description", "")
                typer.echo(f"    {key} = {default}  {desc}".rstrip())


def register(root: BeaverTyper) -> None:
    """Mount under the root app."""
    root.add_typer(app, name="plugins")
