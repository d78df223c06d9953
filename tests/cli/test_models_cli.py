"""``beaver models list|pull|add|remove`` through the real CLI."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.models import catalog
from beaver.models.catalog import Artifact, ModelPack

runner = CliRunner()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder served over HTTP on 127.0.0.1, and its base URL."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def invoke(models_dir: Path, *args: str):
    return runner.invoke(build_app(), ["models", *args], env={"BEAVER_MODELS_DIR": str(models_dir)})


def use_catalog(monkeypatch: pytest.MonkeyPatch, *packs: ModelPack) -> None:
    monkeypatch.setattr(catalog, "known_packs", lambda: {p.name: p for p in packs})


def tiny_pack(root: Path, base: str, name: str = "tiny") -> ModelPack:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("det.onnx", b"det" * 100)
        archive.writestr("rec.onnx", b"rec" * 100)
    data = buf.getvalue()
    (root / f"{name}.zip").write_bytes(data)
    artifact = Artifact(
        url=f"{base}/{name}.zip",
        sha256=hashlib.sha256(data).hexdigest(),
        filename=f"{name}.zip",
        kind="zip",
    )
    return ModelPack(name, "a tiny test pack", "test-only", (artifact,), 600, ("det.onnx",))


def make_pack(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "det.onnx").write_bytes(b"x" * 1500)
    return folder


def test_list_json_shows_installed_and_known(tmp_path: Path):
    models = tmp_path / "models"
    local = make_pack(models / "buffalo_l")
    home = make_pack(Path.home() / ".insightface" / "models" / "antelopev2")

    result = invoke(models, "list", "--json")

    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["models_dir"] == str(models)
    rows = {row["name"]: row for row in data["packs"]}
    assert rows["buffalo_l"] == {
        "name": "buffalo_l",
        "status": "installed",
        "source": "models_dir",
        "path": str(local),
        "size_bytes": 1500,
        "licence": catalog.get_pack("buffalo_l").licence,
        "description": catalog.get_pack("buffalo_l").description,
    }
    assert rows["antelopev2"]["source"] == "insightface"
    assert rows["antelopev2"]["path"] == str(home)
    assert rows["buffalo_s"]["status"] == "not installed"
    assert rows["buffalo_s"]["path"] is None
    assert rows["yunet_sface"]["licence"] == "YuNet MIT, SFace Apache-2.0"


def test_list_table(tmp_path: Path):
    models = tmp_path / "models"
    make_pack(models / "buffalo_s")

    result = invoke(models, "list")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "Name" in line)
    for column in ("Status", "Size", "Source", "Licence", "Path"):
        assert column in header
    buffalo_s = next(line for line in lines if "buffalo_s" in line)
    assert "installed" in buffalo_s
    assert "models dir" in buffalo_s
    assert "1.5 KB" in buffalo_s
    buffalo_l = next(line for line in lines if "buffalo_l" in line)
    assert "not installed" in buffalo_l
    assert "~326.0 MB" in buffalo_l


def test_pull_downloads_and_installs(
    tmp_path: Path, served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
):
    root, base = served
    use_catalog(monkeypatch, tiny_pack(root, base))
    models = tmp_path / "models"

    result = invoke(models, "pull", "tiny")

    assert result.exit_code == 0, result.output
    assert (models / "tiny" / "det.onnx").read_bytes() == b"det" * 100
    assert f"Installed tiny in {models / 'tiny'}" in result.stderr
    assert "test-only" in result.stderr


def test_pull_already_installed_says_so(
    tmp_path: Path, served: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
):
    root, base = served
    use_catalog(monkeypatch, tiny_pack(root, base))
    models = tmp_path / "models"
    marker = make_pack(models / "tiny") / "det.onnx"

    result = invoke(models, "pull", "tiny")

    assert result.exit_code == 0, result.output
    assert "tiny is already installed" in result.stderr
    assert "--force" in result.stderr
    assert marker.read_bytes() == b"x" * 1500

    forced = invoke(models, "pull", "tiny", "--force")

    assert forced.exit_code == 0, forced.output
    assert marker.read_bytes() == b"det" * 100


def test_pull_unknown_pack(tmp_path: Path):
    result = invoke(tmp_path, "pull", "x")
    assert result.exit_code == 1
    assert (
        "Unknown model pack 'x'. Choose one of: buffalo_l, buffalo_s, yunet_sface." in result.stderr
    )


def test_pull_offline_names_url_and_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    use_catalog(monkeypatch, tiny_pack(tmp_path, base))
    models = tmp_path / "models"

    result = invoke(models, "pull", "tiny")

    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert f"Cannot reach {base.removeprefix('http://')}" in message
    assert f"Download {base}/tiny.zip (sha256" in message
    assert f"unzip it into {models / 'tiny'}/" in message
    assert not (models / "tiny").exists()


def test_add_registers_a_folder(tmp_path: Path):
    models = tmp_path / "models"
    mine = make_pack(tmp_path / "my_models")

    result = invoke(models, "add", str(mine), "--name", "buffalo_l")

    assert result.exit_code == 0, result.output
    listed = json.loads(invoke(models, "list", "--json").stdout)
    row = next(r for r in listed["packs"] if r["name"] == "buffalo_l")
    assert (row["source"], row["path"]) == ("registered", str(mine))


def test_add_defaults_the_name_to_the_folder(tmp_path: Path):
    models = tmp_path / "models"
    make_pack(tmp_path / "antelopev2")
    assert invoke(models, "add", str(tmp_path / "antelopev2")).exit_code == 0
    registry = json.loads((models / "packs.json").read_text(encoding="utf-8"))
    assert list(registry["packs"]) == ["antelopev2"]


def test_add_a_missing_folder_fails(tmp_path: Path):
    result = invoke(tmp_path / "models", "add", str(tmp_path / "nope"), "--name", "x")
    assert result.exit_code == 1
    assert f"{tmp_path / 'nope'}: folder not found." in result.stderr
    assert not (tmp_path / "models" / "packs.json").exists()


def test_add_a_folder_without_onnx_fails(tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = invoke(tmp_path / "models", "add", str(empty), "--name", "x")
    assert result.exit_code == 1
    assert f"{empty}: no .onnx files in this folder." in result.stderr


def test_remove_unregisters_but_keeps_the_folder(tmp_path: Path):
    models = tmp_path / "models"
    mine = make_pack(tmp_path / "mine")
    invoke(models, "add", str(mine), "--name", "custom")

    result = invoke(models, "remove", "custom")

    assert result.exit_code == 0, result.output
    assert "Unregistered custom" in result.stderr
    assert (mine / "det.onnx").is_file()
    listed = json.loads(invoke(models, "list", "--json").stdout)
    assert "custom" not in {r["name"] for r in listed["packs"]}
