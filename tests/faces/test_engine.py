"""How a scan builds its detector and names the embedding space without loading models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import BaseModel

from beaver.errors import ModelError
from beaver.faces import engine
from beaver.faces.store import FaceStore
from beaver.plugins import FaceDetectorSpec, make_plugin_manager
from beaver.settings import load_settings
from beaver.testing.tinymodels import make_tiny_pack


def _settings(tmp_path: Path, **face: object):
    return load_settings(
        None, {"models_dir": str(tmp_path / "models"), "face": {"model_pack": "tinypack", **face}}
    ).settings


@pytest.fixture
def spec() -> FaceDetectorSpec:
    return make_plugin_manager().face_detectors().get("insightface")


def test_options_carry_face_settings_and_device(tmp_path: Path, spec: FaceDetectorSpec) -> None:
    values = engine.detector_options(spec, _settings(tmp_path, min_score=0.8))
    assert values["model_pack"] == "tinypack"
    assert values["min_score"] == 0.8
    assert values["models_dir"] == tmp_path / "models"
    assert "providers" not in values
    cpu = load_settings(None, {"device": "cpu"}).settings
    assert engine.detector_options(spec, cpu)["providers"] == ["CPUExecutionProvider"]


def test_scan_workers_default_to_the_cores_up_to_four(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert engine.scan_workers(_settings(tmp_path)) == 4
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert engine.scan_workers(_settings(tmp_path)) == 1
    assert engine.scan_workers(_settings(tmp_path, workers=3)) == 3


def test_plugins_only_get_options_they_declare(tmp_path: Path) -> None:
    class Bare(BaseModel):
        pass

    bare = FaceDetectorSpec(name="bare", factory=lambda o: None, options=Bare)  # type: ignore[arg-type,return-value]
    assert engine.detector_options(bare, _settings(tmp_path)) == {}


def test_fingerprint_follows_model_files_not_score(tmp_path: Path, spec: FaceDetectorSpec) -> None:
    pack = make_tiny_pack(tmp_path / "models")
    settings = _settings(tmp_path)
    key = engine.fingerprint(spec, engine.detector_options(spec, settings))
    looser = engine.detector_options(spec, _settings(tmp_path, min_score=0.3))
    assert engine.fingerprint(spec, looser) == key
    wider = engine.detector_options(spec, _settings(tmp_path, workers=7))
    assert wider["workers"] == 7
    assert engine.fingerprint(spec, wider) == key
    recognizer = next(pack.glob("rec*.onnx"))
    os.utime(recognizer, ns=(1, 1))
    assert engine.fingerprint(spec, engine.detector_options(spec, settings)) != key


def test_unknown_pack_fails_before_any_work(tmp_path: Path, spec: FaceDetectorSpec) -> None:
    values = engine.detector_options(spec, _settings(tmp_path, model_pack="nopack"))
    with pytest.raises(ModelError):
        engine.fingerprint(spec, values)


def test_model_id_is_remembered_for_the_fingerprint(tmp_path: Path, spec: FaceDetectorSpec) -> None:
    make_tiny_pack(tmp_path / "models")
    values = engine.detector_options(spec, _settings(tmp_path))
    key = engine.fingerprint(spec, values)
    with FaceStore.open(tmp_path / "vault") as store:
        assert engine.known_model_id(store, key) is None
        built = engine.build_engine(spec, values, store, key)
        assert built.model_id.startswith("insightface:tinypack:")
        assert engine.known_model_id(store, key) == built.model_id
