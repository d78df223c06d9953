"""One test per hook: a record yielded by a plugin reaches its registry and builds.

test_hooks_documented.py checks that every hookspec has a ``test_hook_<name>`` here.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from beaver import (
    Caption,
    Captioner,
    CaptionerSpec,
    DetectedFace,
    FaceDetector,
    FaceDetectorSpec,
    Trainer,
    TrainerSpec,
    hookimpl,
)
from beaver.errors import ConfigError
from beaver.plugins import BeaverPluginManager, make_plugin_manager


class ScoreOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_score: float = Field(0.5, ge=0, le=1)


class PrefixOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: str = "a photo"
    max_words: int = Field(10, ge=1)


class StepsOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    steps: int = Field(1000, ge=1)


class WholeImageDetector:
    def __init__(self, options: ScoreOptions) -> None:
        self.options = options

    def detect(self, image: npt.NDArray[np.uint8]) -> list[DetectedFace]:
        height, width = image.shape[:2]
        return [DetectedFace(bbox=(0.0, 0.0, float(width), float(height)), score=1.0)]


class PrefixCaptioner:
    def __init__(self, options: PrefixOptions) -> None:
        self.options = options

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        return [
            Caption(text=f"{self.options.prefix} {i}", tags=(f"{img.width}x{img.height}",))
            for i, img in enumerate(images)
        ]


class StepsTrainer:
    def __init__(self, options: StepsOptions) -> None:
        self.options = options

    def write(self, plan: Any, out_dir: Path) -> list[Path]:
        path = out_dir / "config.toml"
        path.write_text(f"steps = {self.options.steps}\n", encoding="utf-8")
        return [path]

    def script(self, plan: Any, out_dir: Path) -> str:
        return f"echo steps {self.options.steps} from {out_dir / 'config.toml'}"

    def launch_problem(self, plan: Any) -> str | None:
        return None


class DetectorPlugin:
    @hookimpl
    def beaver_face_detectors(self) -> Iterator[FaceDetectorSpec]:
        yield FaceDetectorSpec(
            name="whole-image", factory=WholeImageDetector, options=ScoreOptions, licence="MIT"
        )


class CaptionerPlugin:
    @hookimpl
    def beaver_captioners(self) -> Iterator[CaptionerSpec]:
        yield CaptionerSpec(
            name="prefix", factory=PrefixCaptioner, options=PrefixOptions, licence="MIT"
        )


class TrainerPlugin:
    @hookimpl
    def beaver_trainers(self) -> Iterator[TrainerSpec]:
        yield TrainerSpec(name="steps", factory=StepsTrainer, options=StepsOptions, licence="MIT")


def _manager(plugin: object) -> BeaverPluginManager:
    return make_plugin_manager(entry_points=[], extra_plugins=[(plugin, "t")], env={})


def _kinds_with_records(manager: BeaverPluginManager) -> dict[str, list[str]]:
    return {
        kind: registry.names()
        for kind, registry in (
            ("face detector", manager.face_detectors()),
            ("captioner", manager.captioners()),
            ("trainer", manager.trainers()),
        )
        if registry.names()
    }


def test_hook_beaver_face_detectors():
    manager = _manager(DetectorPlugin())

    spec = manager.face_detectors().get("whole-image")
    detector = spec.create({"min_score": 0.9})

    assert _kinds_with_records(manager) == {"face detector": ["whole-image"]}
    assert isinstance(detector, FaceDetector)
    [face] = detector.detect(np.zeros((6, 4, 3), dtype=np.uint8))
    assert face.bbox == (0.0, 0.0, 4.0, 6.0)
    with pytest.raises(ConfigError, match="min_score"):
        spec.create({"min_score": 2})


def test_hook_beaver_captioners():
    manager = _manager(CaptionerPlugin())

    spec = manager.captioners().get("prefix")
    captioner = spec.create({"prefix": "a portrait"})

    assert _kinds_with_records(manager) == {"captioner": ["prefix"]}
    assert isinstance(captioner, Captioner)
    captions = captioner.caption([Image.new("RGB", (3, 2)), Image.new("RGB", (5, 5))])
    assert [c.text for c in captions] == ["a portrait 0", "a portrait 1"]
    assert captions[0].tags == ("3x2",)
    with pytest.raises(ConfigError, match="max_words"):
        spec.create({"max_words": 0})
    with pytest.raises(ConfigError, match="temperature"):
        spec.create({"temperature": 0.7})


def test_hook_beaver_trainers(tmp_path):
    manager = _manager(TrainerPlugin())

    spec = manager.trainers().get("steps")
    trainer = spec.create({"steps": 250})

    assert _kinds_with_records(manager) == {"trainer": ["steps"]}
    assert isinstance(trainer, Trainer)
    assert trainer.write(plan=None, out_dir=tmp_path) == [tmp_path / "config.toml"]
    assert (tmp_path / "config.toml").read_text(encoding="utf-8") == "steps = 250\n"
    with pytest.raises(ConfigError, match="steps"):
        spec.create({"steps": "many"})

    # A third-party backend gets a real plan and a section of train.sh.
    from beaver.testing.trainset import fixed_plan, write_dataset
    from beaver.train.command import write_run

    plan = fixed_plan(write_dataset(tmp_path / "ds"), tmp_path / "run")
    report = write_run(plan, [("steps", trainer)], ["beaver", "train"])
    assert report.files == {"steps": [tmp_path / "run" / "steps" / "config.toml"]}
    script = report.script.read_text(encoding="utf-8")
    assert "run_steps() {" in script
    assert f"echo steps 250 from {tmp_path / 'run' / 'steps' / 'config.toml'}" in script
