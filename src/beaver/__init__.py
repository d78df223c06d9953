"""Eager Beaver: from a personal photo library to a trained LoRA of the people in it.

The public API for plugin authors is re-exported here::

    from beaver import hookimpl, CaptionerSpec, FaceDetectorSpec, TrainerSpec
"""

from __future__ import annotations

from beaver.errors import BeaverError
from beaver.hookspecs import hookimpl
from beaver.interfaces import Caption, Captioner, DetectedFace, FaceDetector, Trainer
from beaver.plugins import CaptionerSpec, FaceDetectorSpec, NoOptions, TrainerSpec

__version__ = "0.1.0"

__all__ = [
    "BeaverError",
    "Caption",
    "Captioner",
    "CaptionerSpec",
    "DetectedFace",
    "FaceDetector",
    "FaceDetectorSpec",
    "NoOptions",
    "Trainer",
    "TrainerSpec",
    "__version__",
    "hookimpl",
]
