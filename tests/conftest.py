"""Shared fixtures: an isolated environment per test and fake installed distributions."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolate_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No BEAVER_* settings, config files or caches of the developer's leak into a test."""
    for key in list(os.environ):
        if key.startswith("BEAVER_"):
            monkeypatch.delenv(key)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    # No test reaches a model hub: lookups hit an empty, private cache, offline.
    monkeypatch.setenv("HF_HOME", str(home / ".cache" / "huggingface"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / ".cache" / "huggingface" / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    work = tmp_path_factory.mktemp("cwd")
    monkeypatch.chdir(work)
    return work


DistMaker = Callable[..., Path]


@pytest.fixture
def make_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[DistMaker]:
    """Write a fake installed distribution (dist-info + modules) into a site folder.

    The site folder is put on ``sys.path``, as an installed distribution would be.
    """
    created: list[str] = []

    def make(
        name: str,
        *,
        version: str = "0.1.0",
        entry_points: dict[str, str],
        modules: dict[str, str],
        site: Path | None = None,
    ) -> Path:
        site = site or tmp_path / "site"
        if not site.exists():
            site.mkdir()
            monkeypatch.syspath_prepend(str(site))
        info = site / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
        )
        lines = ["[beaver]", *(f"{k} = {v}" for k, v in entry_points.items())]
        (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for module, source in modules.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
            created.append(module)
        importlib.invalidate_caches()
        return site

    yield make
    for module in created:
        sys.modules.pop(module, None)


SHARED = Path(__file__).resolve().parents[2] / "shared"
"""Real photos and models beside the project (../shared); absent on some machines."""


def _shared(sub: str) -> Path:
    path = SHARED / sub
    if not path.is_dir():
        pytest.skip(
            f"{path} is absent: the real photos/models of ../shared are not on this machine"
        )
    return path


@pytest.fixture
def shared_faces() -> Path:
    """``../shared/faces`` (292 labeled photos); skips when absent."""
    return _shared("faces")


@pytest.fixture
def shared_models() -> Path:
    """``../shared/models`` (real small ONNX models); skips when absent."""
    return _shared("models")
