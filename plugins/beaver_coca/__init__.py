"""First-party captioner: CoCa through open_clip."""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Iterator
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from beaver import CaptionerSpec, hookimpl
from beaver.captions.runtime import too_old

if TYPE_CHECKING:
    from beaver_coca._captioner import CocaCaptioner

MIN_OPEN_CLIP = (3, 0)
"""The first open_clip with ``local-dir:`` folders."""


class CocaOptions(BaseModel):
    """Options of the ``coca`` captioner."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(
        "coca_ViT-L-14",
        min_length=1,
        description="open_clip CoCa architecture (weights from `pretrained`), hub id "
        "(owner/name, or hf-hub:owner/name) or folder in open_clip's hub format.",
    )
    pretrained: str = Field(
        "mscoco_finetuned_laion2B-s13B-b90k",
        min_length=1,
        description="With an architecture name: open_clip's pretrained tag, or a checkpoint file.",
    )
    seq_len: int = Field(
        30,
        ge=6,
        description="Longest caption in tokens, counting the start and end tokens "
        "(open_clip's seq_len).",
    )
    generation_type: Literal["beam_search", "top_k", "top_p"] = Field(
        "beam_search",
        description="beam_search (open_clip's default), top_k (greedy with top_k 1) or top_p "
        "(sampling).",
    )
    top_k: int = Field(1, ge=1, description="top_k: draw among this many best tokens.")
    top_p: float = Field(
        0.1, gt=0, le=1, description="top_p: draw among the best tokens holding this probability."
    )
    seed: int = Field(0, ge=0, description="Seed of the top_k/top_p draws (each batch restarts).")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="Where the model runs; auto: cuda, then mps, then cpu."
    )
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto",
        description="auto: half precision (autocast) on CUDA, else float32; "
        "float16/bfloat16 on CUDA only.",
    )


def create_captioner(options: CocaOptions) -> CocaCaptioner:
    """The factory: finds the weights and loads the CoCa model (imports torch and open_clip)."""
    problem = torch_pair_problem()
    if problem is not None:
        from beaver.errors import ConfigError

        raise ConfigError(f"The coca captioner {problem}.", hint=PAIR_HINT)
    from beaver_coca._captioner import load_captioner

    return load_captioner(options)


PAIR_HINT = (
    "Install torch and torchvision from the same place, e.g. both from PyPI: "
    "pip install --force-reinstall 'torch==<version>' 'torchvision==<matching version>'."
)


def torch_pair_problem() -> str | None:
    """Why torchvision cannot load beside this torch, read from package metadata alone.

    PyPI's torchvision is built against PyPI's torch; beside a CPU-only torch from the
    PyTorch index or a local wheel (version ``…+cpu``) it fails to import ("operator
    torchvision::nms does not exist"), and so does open_clip.
    """
    try:
        torch_version = importlib.metadata.version("torch")
        vision_version = importlib.metadata.version("torchvision")
    except importlib.metadata.PackageNotFoundError:
        return None
    if torch_version.endswith("+cpu") and not vision_version.endswith("+cpu"):
        return (
            f"needs a torchvision built for this torch: torch {torch_version} is a CPU-only "
            f"build, torchvision {vision_version} is not"
        )
    return None


def check() -> str | None:
    """Cheap readiness check: torch and torchvision fit, open_clip is recent (nothing imported)."""
    if importlib.util.find_spec("open_clip") is None:
        return None  # the spec's `requires` reports it
    if (problem := torch_pair_problem()) is not None:
        return problem
    return too_old("open_clip_torch", MIN_OPEN_CLIP)


@hookimpl
def beaver_captioners() -> Iterator[CaptionerSpec]:
    """The CoCa captioner."""
    yield CaptionerSpec(
        name="coca",
        factory=create_captioner,
        options=CocaOptions,
        description="open_clip CoCa: short COCO-style captions, default ViT-L/14 COCO fine-tune",
        licence="code MIT (open_clip); LAION CoCa weights MIT",
        requires=("torch", "open_clip"),
        install="eager-beaver[coca]",
        check=check,
    )
