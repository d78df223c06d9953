"""``beaver config``: the resolved settings and where each value came from."""

from __future__ import annotations

import json

from beaver.cli import _output
from beaver.cli._app import BeaverTyper, current
from beaver.cli._options import JsonOpt
from beaver.settings import config_candidates, config_files, settings_table

app = BeaverTyper(help="Show settings and config files.")


@app.command()
def show(json_output: JsonOpt = False) -> None:
    """Print every setting, its value and where it came from."""
    resolved = current().resolve()
    rows = settings_table(resolved)
    if json_output:
        _output.print_json(
            {
                "files": [str(p) for p in resolved.files],
                "settings": [{"key": k, "value": v, "source": s} for k, v, s in rows],
            }
        )
        return
    _output.print_table(
        ("setting", "value", "source"),
        [(k, json.dumps(v) if not isinstance(v, str) else v, s) for k, v, s in rows],
    )


@app.command()
def paths(json_output: JsonOpt = False) -> None:
    """Where beaver looks for config files, in priority order (lowest first)."""
    runtime = current()
    read = set(config_files(runtime.config))
    rows = [
        {"path": str(p), "exists": p.is_file(), "read": p in read}
        for p in config_candidates(runtime.config)
    ]
    if json_output:
        _output.print_json(rows)
        return
    yes_no = {True: "yes", False: "no"}
    _output.print_table(
        ("config file", "exists", "read"),
        [(r["path"], yes_no[bool(r["exists"])], yes_no[bool(r["read"])]) for r in rows],
    )
