"""Run ``beaver caption`` through the real CLI on a few photos, for captioner plugins' tests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any


def caption_photos(
    photos: list[Path],
    work: Path,
    captioner: str,
    *,
    model: str | None = None,
    config: str | None = None,
    trigger: str = "emma",
) -> dict[str, Any]:
    """Caption copies of ``photos`` with ``beaver caption``; returns captions.json's content.

    ``config`` is TOML for ``--config`` (e.g. a ``[plugins.openai]`` table). Raises
    AssertionError with the command's output when it fails.
    """
    from typer.testing import CliRunner

    from beaver.cli import build_app

    folder = work / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    args = ["--output-dir", str(work / "outputs")]
    if config is not None:
        (work / "beaver.toml").write_text(config, encoding="utf-8")
        args += ["--config", str(work / "beaver.toml")]
    args += ["caption", "--captioner", captioner, "--input", str(folder), "--output-name", "x"]
    args += ["--trigger", trigger, "--batch-size", "2", "--json"]
    if model is not None:
        args += ["--model", model]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["captioned"] == len(photos), report
    data: dict[str, Any] = json.loads(
        (work / "outputs" / "processed" / "x" / "captions.json").read_text(encoding="utf-8")
    )
    assert sorted(data["images"]) == sorted(p.name for p in photos)
    assert all(e["caption"].startswith(f"{trigger}, ") for e in data["images"].values())
    return data
