"""Model lookup (folders, the hub cache, offline), device and dtype choice, OOM detection."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from beaver.captions import runtime
from beaver.errors import ConfigError, ModelError


def _cache_model(repo: str, files: dict[str, str]) -> Path:
    """A model in the Hugging Face cache layout, as `hf download` leaves it."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    base = cache / f"models--{repo.replace('/', '--')}"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snapshot = base / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(commit, encoding="utf-8")
    for name, text in files.items():
        (snapshot / name).write_text(text, encoding="utf-8")
    return snapshot


def test_a_local_folder_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}", encoding="utf-8")
    assert runtime.resolve_model(str(tmp_path / "m")) == tmp_path / "m"


def test_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with pytest.raises(ModelError, match=r"m: not a BLIP model folder \(no config.json\)"):
        runtime.resolve_model(str(tmp_path / "m"), what="BLIP model")
    with pytest.raises(ModelError, match=r"no model\.onnx or model\.bin"):
        runtime.resolve_model(str(tmp_path / "m"), required=("model.onnx|model.bin",))
    with pytest.raises(ModelError, match="no such model folder"):
        runtime.resolve_model(str(tmp_path / "nope"))
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(ModelError, match="not a folder"):
        runtime.resolve_model(str(tmp_path / "file"))


def test_hub_ids_are_found_in_the_cache_offline() -> None:
    snapshot = _cache_model("someone/tiny", {"config.json": "{}"})
    assert runtime.resolve_model("someone/tiny") == snapshot


def test_a_hub_id_missing_offline_names_the_fetch_command() -> None:
    with pytest.raises(
        ModelError,
        match=r"someone/absent: not in the Hugging Face cache.*hf download someone/absent",
    ):
        runtime.resolve_model("someone/absent")


def test_hub_offline_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE")
    assert not runtime.hub_offline()
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    assert runtime.hub_offline()


def test_device_and_dtype() -> None:
    pytest.importorskip("torch")
    import torch

    device = runtime.pick_device("auto")
    assert device in ("cpu", "cuda", "mps")
    assert runtime.pick_device("cpu") == "cpu"
    assert runtime.pick_dtype("auto", "cpu") is torch.float32
    assert runtime.pick_dtype("bfloat16", "cpu") is torch.bfloat16
    with pytest.raises(ConfigError, match="float16 on the CPU"):
        runtime.pick_dtype("float16", "cpu")
    with pytest.raises(ConfigError, match="Unknown device 'tpu'"):
        runtime.pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no usable CUDA GPU"):
            runtime.pick_device("cuda")


def test_out_of_memory_is_recognised() -> None:
    class OutOfMemoryError(RuntimeError):
        pass

    assert runtime.is_out_of_memory(OutOfMemoryError("x"))
    assert runtime.is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    assert runtime.is_out_of_memory(RuntimeError("MPS backend out of memory"))
    assert not runtime.is_out_of_memory(RuntimeError("shape mismatch"))
    assert not runtime.is_out_of_memory(ValueError("out of memory"))
