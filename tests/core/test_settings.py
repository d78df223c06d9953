"""Settings precedence: defaults ← user file ← ./beaver.toml ← env ← command line."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from beaver.errors import ConfigError
from beaver.settings import (
    config_files,
    load_settings,
    settings_table,
    user_config_file,
)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_follow_the_seed(isolate_env):
    s = load_settings().settings
    assert s.output_dir == Path("outputs")
    assert s.face.min_score == 0.6
    assert s.face.threshold == 0.35
    assert s.face.min_cluster == 5
    assert s.face.model_pack is None  # the detector's own default (insightface: buffalo_l)
    assert s.prep.min_per_shot == 3
    assert s.facevault_dir == Path("outputs/facevault")
    assert s.processed_dir("emma") == Path("outputs/processed/emma")
    assert s.dataset_dir("emma") == Path("outputs/lora_datasets/emma")
    when = datetime(2025, 12, 24, 10, 30, 0)
    assert s.training_run_dir("emma", when) == Path("outputs/lora_models/emma/20251224_103000")
    assert s.models_dir.name == "models"
    assert str(s.models_dir).startswith(str(Path.home()))


def test_full_precedence_chain(isolate_env, monkeypatch):
    _write(
        user_config_file(),
        'output_dir = "from-user"\n[face]\nmin_score = 0.1\nmin_size = 11\nthreshold = 0.2\n',
    )
    _write(isolate_env / "beaver.toml", "[face]\nmin_score = 0.2\nmin_size = 22\n")
    monkeypatch.setenv("BEAVER_FACE__MIN_SCORE", "0.3")
    resolved = load_settings(overrides={"face.min_score": 0.4, "face.min_cluster": None})
    s = resolved.settings
    assert s.face.min_score == 0.4  # command line wins
    assert s.face.min_size == 22  # ./beaver.toml over the user file
    assert s.face.threshold == 0.2  # user file over defaults
    assert s.output_dir == Path("from-user")
    assert s.face.min_cluster == 5  # None means "flag not given"
    assert resolved.origins["face.min_score"] == "command line"
    assert resolved.origins["face.min_size"] == str(isolate_env / "beaver.toml")
    assert resolved.origins["face.threshold"] == str(user_config_file())
    assert "face.min_cluster" not in resolved.origins
    rows = {k: (v, src) for k, v, src in settings_table(resolved)}
    assert rows["face.min_cluster"] == (5, "default")
    assert rows["face.min_score"] == (0.4, "command line")


def test_env_beats_files_and_is_named_as_source(isolate_env, monkeypatch):
    _write(isolate_env / "beaver.toml", 'models_dir = "/from/file"\n')
    monkeypatch.setenv("BEAVER_MODELS_DIR", "/from/env")
    monkeypatch.setenv("BEAVER_TRAIN__BACKENDS", '["kohya"]')
    resolved = load_settings()
    assert resolved.settings.models_dir == Path("/from/env")
    assert resolved.origins["models_dir"] == "env BEAVER_MODELS_DIR"
    assert resolved.settings.train.backends == ["kohya"]


def test_explicit_config_replaces_search(isolate_env, tmp_path, monkeypatch):
    _write(isolate_env / "beaver.toml", "[face]\nmin_size = 22\n")
    other = _write(tmp_path / "other.toml", "[face]\nmin_cluster = 9\n")
    s = load_settings(other).settings
    assert s.face.min_cluster == 9
    assert s.face.min_size == 40  # ./beaver.toml not read
    monkeypatch.setenv("BEAVER_CONFIG", str(other))
    assert config_files() == (other,)


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.toml")


def test_malformed_toml_names_the_file(isolate_env):
    bad = _write(isolate_env / "beaver.toml", "[face\nmin_score = \n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(bad) in str(info.value)
    assert "not valid TOML" in str(info.value)


def test_unknown_key_names_its_source(isolate_env, monkeypatch):
    _write(isolate_env / "beaver.toml", "[face]\nmin_scor = 0.5\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "beaver.toml: face.min_scor" in str(info.value)
    (isolate_env / "beaver.toml").unlink()
    monkeypatch.setenv("BEAVER_FACE__MIN_SCORE", "lots")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "BEAVER_FACE__MIN_SCORE: face.min_score" in str(info.value)


def test_out_of_range_value_rejected():
    with pytest.raises(ConfigError, match=r"command line: face\.min_score"):
        load_settings(overrides={"face": {"min_score": 3}})


def test_plugin_option_tables(isolate_env):
    _write(isolate_env / "beaver.toml", "[plugins.wd14]\ngeneral_threshold = 0.5\n")
    resolved = load_settings()
    assert resolved.settings.plugin_options("wd14") == {"general_threshold": 0.5}
    assert resolved.settings.plugin_options("blip") == {}
    assert resolved.origins["plugins.wd14.general_threshold"] == str(isolate_env / "beaver.toml")
