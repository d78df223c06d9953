"""The example plugin in docs/plugins/example/ works when installed like any distribution.

No pip: the test writes the dist-info that installing it would write, with the entry
points read from the example's own pyproject.toml, so a wrong declaration there fails here.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import shutil
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.errors import ConfigError
from beaver.interfaces import Caption, Captioner
from beaver.plugins import CaptionerSpec, iter_entry_points, make_plugin_manager

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "plugins" / "example"
MODULE = "beaver_example"


def _dist_info_name(name: str, version: str) -> str:
    return f"{re.sub(r'[-_.]+', '_', name).lower()}-{version}.dist-info"


def _entry_points_txt(project: dict[str, object]) -> str:
    groups = project.get("entry-points", {})
    assert isinstance(groups, dict)
    lines: list[str] = []
    for group, entries in groups.items():
        lines.append(f"[{group}]")
        lines.extend(f"{name} = {value}" for name, value in entries.items())
        lines.append("")
    return "\n".join(lines)


@pytest.fixture
def example_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A site folder holding beaver-example as pip would install it, on ``sys.path``."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    site = tmp_path / "site"
    info = site / _dist_info_name(project["name"], project["version"])
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n",
        encoding="utf-8",
    )
    (info / "entry_points.txt").write_text(_entry_points_txt(project), encoding="utf-8")
    shutil.copytree(EXAMPLE / MODULE, site / MODULE, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    yield site
    # delitem(raising=False) records nothing when the module was absent, so the import
    # the test made would outlive it without this.
    sys.modules.pop(MODULE, None)


@pytest.fixture
def example_entry_points(
    example_site: Path,
) -> list[tuple[importlib.metadata.EntryPoint, str, str]]:
    """The ``beaver`` entry points of the distributions in the example's site folder."""
    return list(iter_entry_points(importlib.metadata.distributions(path=[str(example_site)])))


@pytest.fixture
def spec(
    example_entry_points: list[tuple[importlib.metadata.EntryPoint, str, str]],
) -> CaptionerSpec:
    """The ``filename-words`` record, loaded through the entry point."""
    manager = make_plugin_manager(entry_points=example_entry_points, env={})
    return manager.captioners().get("filename-words")


def _photo(folder: Path, name: str) -> Image.Image:
    """An image saved as ``folder/name`` and opened again, as beaver opens photos."""
    path = folder / name
    Image.new("RGB", (8, 8), (200, 120, 40)).save(path)
    return Image.open(path)


def test_entry_point_comes_from_the_example_pyproject(example_entry_points):
    found = [(ep.name, ep.value, dist, version) for ep, dist, version in example_entry_points]
    assert found == [("example", "beaver_example", "beaver-example", "0.1.0")]


def test_filename_words_is_listed_with_its_distribution(example_entry_points):
    manager = make_plugin_manager(entry_points=example_entry_points, env={})

    assert manager.failures == []
    [provided] = [p for p in manager.captioners() if p.spec.name == "filename-words"]
    assert provided.plugin.name == "example"
    assert provided.plugin.distribution == "beaver-example"
    assert provided.plugin.version == "0.1.0"
    assert provided.plugin.status == "active"
    assert provided.spec.readiness() is None
    assert manager.face_detectors().names() == []
    assert manager.trainers().names() == []


def test_factory_returns_a_captioner(spec):
    captioner = spec.create({})

    assert isinstance(captioner, Captioner)


def test_captions_a_photo_from_its_filename(spec, tmp_path):
    captioner = spec.create({})

    with _photo(tmp_path, "IMG_beach_sunset.jpg") as photo:
        [caption] = captioner.caption([photo])

    assert isinstance(caption, Caption)
    assert caption.text == "beach sunset"


def test_captions_a_batch_in_order(spec, tmp_path):
    captioner = spec.create({})
    names = ["PXL_20240612_Lake_Como.jpg", "DSC_0042.jpg", "family-picnic.png"]
    photos = [_photo(tmp_path, name) for name in names]

    captions = captioner.caption(photos)

    assert [c.text for c in captions] == ["lake como", "", "family picnic"]
    for photo in photos:
        photo.close()


def test_options_change_the_caption(spec, tmp_path):
    captioner = spec.create(
        {"lowercase": False, "drop_words": ["img", "edited"], "drop_numbers": False}
    )

    with _photo(tmp_path, "IMG_2024_Beach_Sunset_edited.jpg") as photo:
        [caption] = captioner.caption([photo])

    assert caption.text == "2024 Beach Sunset"


def test_an_image_without_a_filename_gets_an_empty_caption(spec):
    [caption] = spec.create({}).caption([Image.new("RGB", (4, 4))])

    assert caption.text == ""
    assert caption.extra == {"source": None}


@pytest.mark.parametrize("values", [{"lowercase": "sometimes"}, {"drop_word": ["img"]}])
def test_bad_options_are_a_config_error(spec, values):
    with pytest.raises(ConfigError, match="filename-words"):
        spec.create(values)


def test_beaver_plugins_lists_it(example_entry_points):
    manager = make_plugin_manager(entry_points=example_entry_points, env={})

    result = CliRunner().invoke(build_app(manager), ["plugins", "--json"])

    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    [row] = [r for r in rows if r["name"] == "filename-words"]
    assert row["kind"] == "captioner"
    assert row["plugin"] == "example"
    assert row["distribution"] == "beaver-example"
    assert row["version"] == "0.1.0"
    assert row["status"] == "active"
    assert row["ready"] is True
    assert row["licence"].startswith("MIT")


def test_beaver_plugins_show_lists_its_options(example_entry_points):
    manager = make_plugin_manager(entry_points=example_entry_points, env={})

    result = CliRunner().invoke(build_app(manager), ["plugins", "show", "filename-words", "--json"])

    assert result.exit_code == 0, result.output
    [shown] = json.loads(result.stdout)
    assert set(shown["options"]["properties"]) == {"lowercase", "drop_words", "drop_numbers"}


@pytest.mark.parametrize("disabled", ["example", "beaver-example", "other, example "])
def test_it_can_be_disabled_by_plugin_or_distribution_name(example_entry_points, disabled):
    manager = make_plugin_manager(
        entry_points=example_entry_points, env={"BEAVER_DISABLE_PLUGINS": disabled}
    )

    assert [(p.name, p.status) for p in manager.plugins] == [("example", "disabled")]
    assert manager.captioners().names() == []
