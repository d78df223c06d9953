"""``beaver config``: the resolved settings and where each value came from."""

from __future__ import annotations

import json
from pathlib import Path

from beaver.cli import _output
from beaver.cli._app import BeaverTyper, current
from beaver.cli._options import JsonOpt
from beaver.settings import CONFIG_FILE_NAME, config_files, settings_table, user_config_file

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
    candidates = [user_config_file(), Path.cwd() / CONFIG_FILE_NAME]
    if runtime.config is not None:
        candidates = [runtime.config]
    rows = [
        (str(p), "yes" if p.is_file() else "no", "yes" if p in read else "no") for p in candidates
    ]
    if json_output:
        _output.print_json(
            [{"path": p, "exists": e == "yes", "read": r == "yes"} for p, e, r in rows]
        )
        return
    _output.print_table(("config file", "exists", "read"), rows)
