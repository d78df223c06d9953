"""`beaver caption` end to end through the CLI with a plugin registered like a third party's."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.plugins import make_plugin_manager
from beaver.testing.colourcaptioner import ColourPlugin

runner = CliRunner()


def _app(plugin: ColourPlugin):
    return build_app(make_plugin_manager(extra_plugins=[(plugin, "colour")]))


def _caption(plugin: ColourPlugin, tmp_path: Path, *args: str):
    return runner.invoke(
        _app(plugin),
        ["--output-dir", str(tmp_path / "outputs"), "caption", "--captioner", "colour", *args],
    )


def test_captions_a_folder_and_resumes(library: Path, tmp_path: Path) -> None:
    plugin = ColourPlugin()
    args = ["--input", str(library), "--output-name", "emma", "--trigger", "emma", "--json"]
    result = _caption(plugin, tmp_path, *args, "--sidecars")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["images"], report["captioned"], report["sidecars"]) == (5, 5, 5)
    out = tmp_path / "outputs" / "processed" / "emma"
    assert Path(report["output"]) == out / "captions.json"
    data = json.loads((out / "captions.json").read_text(encoding="utf-8"))
    assert data["images"]["sub/d.jpg"]["caption"] == "emma, a green square"
    assert (out / "captions" / "a.txt").read_text(encoding="utf-8") == "emma, a red square\n"
    again = _caption(plugin, tmp_path, *args)
    assert json.loads(again.stdout)["kept"] == 5
    assert len(plugin.made) == 1  # the second run loaded no model


def test_model_device_and_dtype_reach_the_plugin(library: Path, tmp_path: Path) -> None:
    plugin = ColourPlugin()
    result = _caption(
        plugin,
        tmp_path,
        "--input", str(library), "--output-name", "x", "--model", "colour-v2",
        "--device", "cpu", "--batch-size", "2",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert plugin.options[0].model == "colour-v2"
    assert plugin.options[0].device == "cpu"
    assert [len(b) for b in plugin.made[0].batches] == [2, 2, 1]
    assert re.search(r"5 images: 5 captioned \([\d.]+/s\)", result.stdout)


def test_errors_are_one_line(library: Path, tmp_path: Path) -> None:
    plugin = ColourPlugin()
    unknown = runner.invoke(
        _app(plugin),
        ["caption", "--input", str(library), "--output-name", "x", "--captioner", "nope"],
    )
    assert unknown.exit_code != 0
    assert "Choose one of:" in unknown.output
    assert "colour" in unknown.output
    assert "Traceback" not in unknown.output
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _caption(plugin, tmp_path, "--input", str(empty), "--output-name", "x")
    assert result.exit_code == 1
    assert f"{empty}: no images found" in result.output
    bad_name = _caption(plugin, tmp_path, "--input", str(library), "--output-name", "../up")
    assert bad_name.exit_code == 2
    assert "plain folder name" in bad_name.output
    dataset = _caption(
        plugin, tmp_path, "--input", str(library), "--output-name", "x", "--dataset", "coco"
    )
    assert dataset.exit_code == 2
    assert "only 'custom'" in dataset.output


def test_seed_dataset_flag_is_accepted(library: Path, tmp_path: Path) -> None:
    result = runner.invoke(
        _app(ColourPlugin()),
        [
            "--quiet", "--output-dir", str(tmp_path / "outputs"), "caption", "--captioner",
            "colour", "--dataset", "custom", "--input", str(library), "--output-name", "emma",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # --quiet: no summary
    assert (tmp_path / "outputs" / "processed" / "emma" / "captions.json").is_file()


@pytest.mark.shared_data
def test_wd14_end_to_end_on_real_photos_with_a_resume(shared_faces: Path, tmp_path: Path) -> None:
    """The real plugin, a tiny local tagger, 12 real photos; Ctrl-C after the first batch."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from beaver.testing.tinytagger import write_tiny_tagger

    photos = tmp_path / "photos"
    photos.mkdir()
    for source in sorted(shared_faces.rglob("*.jpg"))[:12]:
        (photos / source.name).write_bytes(source.read_bytes())
    model = write_tiny_tagger(tmp_path / "tagger")
    args = [
        "--output-dir", str(tmp_path / "outputs"), "caption", "--captioner", "wd14",
        "--model", str(model), "--input", str(photos), "--output-name", "emma",
        "--trigger", "emma", "--batch-size", "4", "--json",
    ]  # fmt: skip
    from beaver_wd14 import _tagger

    real = _tagger.WD14Tagger.caption
    calls = {"n": 0}

    def interrupted(self: Any, images: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, images)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_tagger.WD14Tagger, "caption", interrupted)
        stopped = runner.invoke(build_app(), args)
    assert stopped.exit_code == 130
    assert json.loads(stopped.stdout)["captioned"] == 4
    done = runner.invoke(build_app(), args)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert (report["captioned"], report["kept"]) == (8, 4)
    data = json.loads(
        (tmp_path / "outputs" / "processed" / "emma" / "captions.json").read_text(encoding="utf-8")
    )
    assert len(data["images"]) == 12
    for entry in data["images"].values():
        assert entry["caption"].startswith("emma, ")
        assert entry["tags"]
        assert entry["caption"] == "emma, " + ", ".join(entry["tags"])
        assert entry["model"] == str(model)
