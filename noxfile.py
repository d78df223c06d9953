"""Developer sessions: `nox` runs lint, typecheck, docs and tests (what CI runs)."""

from __future__ import annotations

import os
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
# pip (not uv) so that pip's configured wheel locations and constraints apply alike.
nox.options.default_venv_backend = "virtualenv"
nox.options.sessions = ["lint", "typecheck", "docs", "tests"]
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent
PYPROJECT = nox.project.load_toml(ROOT / "pyproject.toml")
CONSTRAINTS = ("-c", str(ROOT / "constraints" / "ml.txt"))


def _group(name: str) -> list[str]:
    return list(nox.project.dependency_groups(PYPROJECT, name))


def _pypi_only(session: nox.Session) -> dict[str, str]:
    """pip settings that take torch from PyPI, not from a machine's local CPU-only wheel.

    open_clip needs torchvision, and PyPI's torchvision only loads beside PyPI's torch
    build (CUDA on Linux; it runs on the CPU too). A machine's pip config may point at a
    folder with a CPU-only torch of the same version, which pip would prefer; this
    session's installs ignore the pip config and such folders.
    """
    empty = Path(session.create_tmp()) / "no-local-wheels"
    empty.mkdir(exist_ok=True)
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": str(empty)}


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite with every extra installed (CPU only)."""
    session.install(*CONSTRAINTS, "-e", ".[all]", *_group("test"), env=_pypi_only(session))
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*_group("lint"))
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on src/ and plugins/ (tests and noxfile checked too)."""
    session.install("-e", ".", *_group("typecheck"))
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Regenerate docs/cli.md from the CLI; fail when the committed file was stale."""
    session.install("-e", ".")
    session.run("python", "-m", "beaver.cli._docs", "--check", "docs/cli.md")


@nox.session
def bench(session: nox.Session) -> None:
    """Speed and quality benchmarks: ratios against the naive way, printed (never asserted)."""
    session.install(*CONSTRAINTS, "-e", ".[all]", env=_pypi_only(session))
    args = session.posargs or []
    session.run("python", "benchmarks/bench_scan.py", *args)
    session.run("python", "benchmarks/bench_faces_quality.py")
    session.run("python", "benchmarks/bench_cluster.py")
    session.run("python", "benchmarks/bench_caption.py")
    session.run("python", "benchmarks/bench_preview.py")


if __name__ == "__main__":
    nox.main()
