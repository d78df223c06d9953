"""The catalog of downloadable packs: pinned, licensed, and helpful when a name is wrong."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from beaver.errors import ModelError
from beaver.models import catalog
from beaver.models.catalog import Artifact, ModelPack

SHA256 = re.compile(r"[0-9a-f]{64}")


def test_known_packs_are_the_three_documented():
    assert sorted(catalog.known_packs()) == ["buffalo_l", "buffalo_s", "yunet_sface"]


@pytest.mark.parametrize("name", ["buffalo_l", "buffalo_s", "yunet_sface"])
def test_every_artifact_is_pinned(name: str):
    pack = catalog.known_packs()[name]
    assert pack.name == name
    assert pack.artifacts
    for artifact in pack.artifacts:
        assert artifact.url.startswith("https://github.com/")
        assert SHA256.fullmatch(artifact.sha256)
        assert artifact.url.endswith("/" + artifact.filename)
    assert pack.approx_size > 1_000_000
    assert set(pack.expected_files) >= {a.filename for a in pack.artifacts if a.kind == "file"}


def test_pinned_values_match_the_issue():
    buffalo_l = catalog.get_pack("buffalo_l").artifacts[0]
    assert buffalo_l.sha256 == "80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f"
    assert buffalo_l.kind == "zip"
    assert {"det_10g.onnx", "w600k_r50.onnx"} <= set(catalog.get_pack("buffalo_l").expected_files)
    sface = catalog.get_pack("yunet_sface").artifacts[1]
    assert sface.filename == "face_recognition_sface_2021dec.onnx"
    assert sface.size == 38_696_353


def test_licences_warn_about_insightface_weights():
    for name in ("buffalo_l", "buffalo_s"):
        assert "non-commercial" in catalog.get_pack(name).licence
    assert catalog.get_pack("yunet_sface").licence == "YuNet MIT, SFace Apache-2.0"


def test_unknown_pack_lists_the_choices():
    with pytest.raises(ModelError) as info:
        catalog.get_pack("x")
    assert info.value.message == (
        "Unknown model pack 'x'. Choose one of: buffalo_l, buffalo_s, yunet_sface."
    )


def test_manual_hint_for_a_zip_pack(tmp_path: Path):
    hint = catalog.manual_download_hint(catalog.get_pack("buffalo_l"), tmp_path)
    assert hint == (
        "Download https://github.com/deepinsight/insightface/releases/download/v0.7/buffalo_l.zip"
        " (sha256 80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f) yourself"
        f" and unzip it into {tmp_path / 'buffalo_l'}/, or register an existing folder with"
        " `beaver models add PATH --name buffalo_l`."
    )


def test_manual_hint_for_single_files_names_each(tmp_path: Path):
    pack = catalog.get_pack("yunet_sface")
    hint = catalog.manual_download_hint(pack, tmp_path)
    for artifact in pack.artifacts:
        assert f"{artifact.url} (sha256 {artifact.sha256})" in hint
    assert f"put them in {tmp_path / 'yunet_sface'}/" in hint


def test_host_is_the_server_part():
    artifact = Artifact("http://127.0.0.1:8765/a.onnx", "0" * 64, "a.onnx", "file")
    assert artifact.host == "127.0.0.1:8765"


def test_packs_are_frozen() -> None:
    pack = catalog.get_pack("buffalo_s")
    with pytest.raises(AttributeError):
        pack.name = "other"  # type: ignore[misc]
    assert isinstance(pack, ModelPack)
