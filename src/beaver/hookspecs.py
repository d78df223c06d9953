"""The hooks a beaver plugin can implement.

A plugin is a module (or object) registered under the ``beaver`` entry-point group. It
implements one or more of the hooks below with ``@beaver.hookimpl``; each hook yields small,
frozen *records* (see :mod:`beaver.plugins`) that the user picks by name.

The records' factories do the heavy imports (torch, onnxruntime, …), so loading plugins
costs almost nothing and ``beaver --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from beaver.plugins import CaptionerSpec, FaceDetectorSpec, TrainerSpec

PROJECT_NAME = "beaver"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for plugin authors: ``from beaver import hookimpl``."""


@hookspec
def beaver_face_detectors() -> Iterable[FaceDetectorSpec]:
    """Yield the face detectors this plugin provides.

    A face detector finds faces in an RGB image and computes an identity embedding for
    each one. Example::

        from pydantic import BaseModel
        from beaver import FaceDetectorSpec, hookimpl

        class Options(BaseModel):
            min_score: float = 0.6

        def make_detector(options: Options) -> "MyDetector":
            import onnxruntime  # heavy imports live inside the factory
            return MyDetector(onnxruntime, options)

        @hookimpl
        def beaver_face_detectors():
            yield FaceDetectorSpec(
                name="my-detector",
                factory=make_detector,
                options=Options,
                description="My ONNX face detector",
                licence="Apache-2.0",
            )
    """
    return ()


@hookspec
def beaver_captioners() -> Iterable[CaptionerSpec]:
    """Yield the captioners this plugin provides.

    A captioner turns a batch of RGB images into captions (and optionally tags). Example::

        from beaver import CaptionerSpec, hookimpl

        def make_captioner(options):
            from my_package.model import MyCaptioner  # imports torch
            return MyCaptioner(options)

        @hookimpl
        def beaver_captioners():
            yield CaptionerSpec(
                name="my-captioner",
                factory=make_captioner,
                description="Captions with my model",
                licence="MIT",
            )
    """
    return ()


@hookspec
def beaver_trainers() -> Iterable[TrainerSpec]:
    """Yield the training backends this plugin provides.

    A training backend turns a resolved training plan into the files its trainer reads
    (configs, a launch script) and can optionally launch it. Example::

        from beaver import TrainerSpec, hookimpl

        def make_trainer(options):
            from my_package.backend import MyBackend
            return MyBackend(options)

        @hookimpl
        def beaver_trainers():
            yield TrainerSpec(
                name="my-trainer",
                factory=make_trainer,
                description="Configs for my trainer",
                licence="Apache-2.0",
            )
    """
    return ()
