"""Startup stays light: `beaver --help` imports no ML stack; the core imports no CLI libraries."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import beaver

HEAVY = [
    "torch",
    "transformers",
    "insightface",
    "open_clip",
    "onnxruntime",
    "cv2",
    "sklearn",
    "scipy",
    "onnx",
    "hdbscan",
    "torchvision",
]
CLI_ONLY = ["typer", "rich", "click"]


def _loaded_after(code: str) -> set[str]:
    script = (
        "import sys, json\n"
        + code
        + "\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_help_imports_no_heavy_modules():
    loaded = _loaded_after(
        "from beaver.cli import main\n"
        "sys.argv = ['beaver', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    assert "beaver" in loaded
    assert not (loaded & set(HEAVY)), loaded & set(HEAVY)


def test_plugin_listing_imports_no_heavy_modules():
    loaded = _loaded_after(
        "from beaver.cli import main\n"
        "sys.argv = ['beaver', 'plugins', '--json']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
    )
    assert "beaver_insightface" in loaded
    assert "beaver_blip" in loaded
    assert not (loaded & set(HEAVY)), loaded & set(HEAVY)


def _core_modules() -> list[str]:
    root = Path(beaver.__file__).parent
    return [
        m.name
        for m in pkgutil.walk_packages([str(root)], prefix="beaver.")
        # the CLI package and `python -m beaver` are the CLI side by definition
        if not m.name.startswith("beaver.cli") and m.name != "beaver.__main__"
    ]


def test_core_never_imports_cli_libraries():
    modules = _core_modules()
    assert "beaver.settings" in modules
    assert "beaver.plugins" in modules
    assert "beaver.models.download" in modules
    loaded = _loaded_after("".join(f"import {m}\n" for m in modules))
    assert not (loaded & set(CLI_ONLY)), loaded & set(CLI_ONLY)
