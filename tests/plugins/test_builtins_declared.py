"""beaver's own plugins are declared through its own entry points, and only there (flake8's way).

The packages under plugins/, pyproject.toml's ``[project.entry-points.beaver]`` table and
the installed metadata must agree; a stale editable install shows up here first.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from beaver.plugins import (
    DISABLE_ENV,
    ENTRY_POINT_GROUP,
    TRACE_ENV,
    BeaverPluginManager,
    iter_entry_points,
    make_plugin_manager,
)

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "eager-beaver"
HEAVY_MODULES = ("torch", "transformers", "insightface", "onnxruntime", "cv2", "open_clip")

EXPECTED_RECORDS = {
    "face detector": {"insightface", "opencv"},
    "captioner": {"blip", "florence2", "coca", "wd14", "openai"},
    "trainer": {"kohya", "diffusers", "comfyui"},
}


def _plugin_packages() -> set[str]:
    return {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file()}


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _installed_entry_points() -> dict[str, str]:
    dist = importlib.metadata.distribution(DISTRIBUTION)
    return {ep.name: ep.value for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP)}


def _first_party_manager() -> BeaverPluginManager:
    dist = importlib.metadata.distribution(DISTRIBUTION)
    return make_plugin_manager(entry_points=iter_entry_points([dist]), env={})


def test_installed_entry_points_are_the_plugin_packages():
    assert sorted(_installed_entry_points().values()) == sorted(_plugin_packages())


def test_pyproject_declares_the_installed_entry_points():
    declared = _pyproject()["project"]["entry-points"][ENTRY_POINT_GROUP]

    assert declared == _installed_entry_points(), (
        "pyproject.toml and the installed metadata differ: reinstall (pip install -e .)"
    )


def test_entry_point_names_follow_the_module_names():
    entry_points = _installed_entry_points()

    assert [(n, v) for n, v in entry_points.items() if v != f"beaver_{n}"] == []


def test_every_plugin_package_is_in_the_wheel():
    packages = set(_pyproject()["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"])

    assert packages - {"src/beaver"} == {f"plugins/{p}" for p in _plugin_packages()}


def test_every_first_party_plugin_loads():
    manager = _first_party_manager()

    assert [(p.name, p.status, p.error) for p in manager.plugins if p.status != "active"] == []
    assert {p.name for p in manager.plugins} == set(_installed_entry_points())


def test_record_names_equal_their_entry_point_names():
    manager = _first_party_manager()

    records = manager.all_records()

    assert [(p.plugin.name, p.spec.name) for p in records if p.plugin.name != p.spec.name] == []
    assert {p.plugin.name for p in records} == set(_installed_entry_points())


def test_exactly_the_ten_first_party_records_exist():
    manager = _first_party_manager()

    found: dict[str, set[str]] = {}
    for provided in manager.all_records():
        found.setdefault(provided.spec.kind, set()).add(provided.spec.name)

    assert found == EXPECTED_RECORDS
    assert all(p.plugin.distribution == DISTRIBUTION for p in manager.all_records())


def test_first_party_records_document_themselves():
    for provided in _first_party_manager().all_records():
        spec = provided.spec
        assert spec.description, spec.name
        assert spec.licence, spec.name


IMPORT_HYGIENE = """
import importlib, importlib.metadata, json, sys
from beaver.plugins import iter_entry_points, make_plugin_manager

for module in sys.argv[1].split(","):
    importlib.import_module(module)
dist = importlib.metadata.distribution(sys.argv[3])
manager = make_plugin_manager(entry_points=iter_entry_points([dist]), env={})
for provided in manager.all_records():
    provided.spec.readiness()
heavy = [m for m in sys.argv[2].split(",") if m in sys.modules]
print(json.dumps({"heavy": heavy, "failed": [p.name for p in manager.failures]}))
"""


def test_importing_first_party_plugins_imports_nothing_heavy():
    modules = sorted(_installed_entry_points().values())
    env = {k: v for k, v in os.environ.items() if k not in (DISABLE_ENV, TRACE_ENV)}

    result = subprocess.run(
        [
            sys.executable,
            "-c",
            IMPORT_HYGIENE,
            ",".join(modules),
            ",".join(HEAVY_MODULES),
            DISTRIBUTION,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"heavy": [], "failed": []}
