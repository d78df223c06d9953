"""The model packs beaver knows how to download: pinned URLs, checksums and licences."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlsplit

from beaver.errors import ModelError

ArtifactKind = Literal["zip", "file"]


@dataclass(frozen=True)
class Artifact:
    """One file to download: a zip to unpack into the pack folder, or a file to put there."""

    url: str
    sha256: str
    filename: str
    kind: ArtifactKind
    size: int | None = None
    """Exact download size in bytes, when pinned."""

    @property
    def host(self) -> str:
        """The server part of the URL (``github.com``), for error messages."""
        return urlsplit(self.url).netloc or self.url


@dataclass(frozen=True)
class ModelPack:
    """A named set of ONNX files laid out as insightface expects: ``<dir>/<name>/*.onnx``."""

    name: str
    description: str
    licence: str
    artifacts: tuple[Artifact, ...]
    approx_size: int
    """Bytes on disk once installed (approximate)."""
    expected_files: tuple[str, ...] = ()
    """Files the installed folder must contain; checked after unpacking."""


_GITHUB_INSIGHTFACE = "https://github.com/deepinsight/insightface/releases/download/v0.7"
_OPENCV_ZOO = "https://github.com/opencv/opencv_zoo/raw/main/models"
_INSIGHTFACE_LICENCE = "insightface weights: non-commercial research only"

_KNOWN: Mapping[str, ModelPack] = MappingProxyType(
    {
        "buffalo_l": ModelPack(
            name="buffalo_l",
            description="insightface SCRFD-10GF detector + ResNet50@WebFace600K embedding",
            licence=_INSIGHTFACE_LICENCE,
            artifacts=(
                Artifact(
                    url=f"{_GITHUB_INSIGHTFACE}/buffalo_l.zip",
                    sha256="80ffe37d8a5940d59a7384c201a2a38d4741f2f3c51eef46ebb28218a7b0ca2f",
                    filename="buffalo_l.zip",
                    kind="zip",
                ),
            ),
            approx_size=326_000_000,
            expected_files=("det_10g.onnx", "w600k_r50.onnx"),
        ),
        "buffalo_s": ModelPack(
            name="buffalo_s",
            description="insightface SCRFD-500MF detector + MobileFaceNet@WebFace600K embedding",
            licence=_INSIGHTFACE_LICENCE,
            artifacts=(
                Artifact(
                    url=f"{_GITHUB_INSIGHTFACE}/buffalo_s.zip",
                    sha256="d85a87f503f691807cd8bb97128bdf7a0660326cd9cd02657127fa978bab8b5e",
                    filename="buffalo_s.zip",
                    kind="zip",
                ),
            ),
            approx_size=159_000_000,
            expected_files=("det_500m.onnx", "w600k_mbf.onnx"),
        ),
        "yunet_sface": ModelPack(
            name="yunet_sface",
            description="OpenCV zoo YuNet detector + SFace embedding (for the opencv detector)",
            licence="YuNet MIT, SFace Apache-2.0",
            artifacts=(
                Artifact(
                    url=f"{_OPENCV_ZOO}/face_detection_yunet/face_detection_yunet_2023mar.onnx",
                    sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
                    filename="face_detection_yunet_2023mar.onnx",
                    kind="file",
                    size=232_589,
                ),
                Artifact(
                    url=f"{_OPENCV_ZOO}/face_recognition_sface/face_recognition_sface_2021dec.onnx",
                    sha256="0ba9fbfa01b5270c96627c4ef784da859931e02f04419c829e83484087c34e79",
                    filename="face_recognition_sface_2021dec.onnx",
                    kind="file",
                    size=38_696_353,
                ),
            ),
            approx_size=38_928_942,
            expected_files=(
                "face_detection_yunet_2023mar.onnx",
                "face_recognition_sface_2021dec.onnx",
            ),
        ),
    }
)


def known_packs() -> Mapping[str, ModelPack]:
    """Every pack ``beaver models pull`` can download, by name."""
    # A function rather than a constant so tests can point the CLI at their own server.
    return _KNOWN


def get_pack(name: str) -> ModelPack:
    """The known pack called ``name``; ModelError naming the choices otherwise."""
    packs = known_packs()
    try:
        return packs[name]
    except KeyError:
        choices = ", ".join(sorted(packs))
        msg = f"Unknown model pack {name!r}. Choose one of: {choices}."
        raise ModelError(
            msg,
            hint="To use another pack, register its folder with "
            f"`beaver models add PATH --name {name}`.",
        ) from None


def manual_download_hint(pack: ModelPack, models_dir: Path) -> str:
    """How to install ``pack`` by hand: what to download and where to put it."""
    target = models_dir / pack.name
    files = " and ".join(f"{a.url} (sha256 {a.sha256})" for a in pack.artifacts)
    if all(a.kind == "zip" for a in pack.artifacts):
        where = f"unzip it into {target}/"
    elif all(a.kind == "file" for a in pack.artifacts):
        where = f"put {'them' if len(pack.artifacts) > 1 else 'it'} in {target}/"
    else:
        where = f"unzip the zips and put the other files in {target}/"
    return (
        f"Download {files} yourself and {where}, or register an existing folder with "
        f"`beaver models add PATH --name {pack.name}`."
    )
