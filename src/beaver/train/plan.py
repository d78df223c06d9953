"""One frozen training plan: the dataset, the base model, every hyper-parameter and why.

Backends turn a plan into their trainer's files; they never decide a number themselves,
so kohya, diffusers and ComfyUI train the same thing from one plan. The smart defaults
are the workflow document's (epochs and batch size from the image count); repeats balance
the shot mix toward the document's recommended mix while keeping the number of images
the model sees in the range the references report for a person LoRA (docs/train.md).
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from beaver import __version__
from beaver.errors import ConfigError
from beaver.prep.balance import RECOMMENDED_MIX
from beaver.train.dataset import EMPHASIS, ShotFolder, TrainDataset
from beaver.train.presets import Family, ModelPreset, resolve_base_model

__all__ = [
    "PLAN_VERSION",
    "Subset",
    "TrainPlan",
    "TrainRequest",
    "default_batch_size",
    "default_epochs",
    "make_plan",
]

PLAN_VERSION = 1
_FAMILY_NAME = {"sd15": "SD1.5", "sdxl": "SDXL", "flux": "FLUX"}


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TrainRequest(_Frozen):
    """What the user asked for; None means "the smart default"."""

    base_model: str = "sdxl"
    model_family: Family | None = None
    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    learning_rate: float | None = Field(None, gt=0)
    network_dim: int | None = Field(None, ge=1)
    network_alpha: float | None = Field(None, gt=0)
    resolution: int | None = Field(None, ge=1)
    repeats: int | None = Field(None, ge=1)
    seed: int = 42


class Subset(_Frozen):
    """One folder of the dataset as the trainer reads it."""

    shot: str
    image_dir: Path
    images: int
    repeats: int

    @property
    def samples(self) -> int:
        """Images shown per epoch."""
        return self.images * self.repeats


class TrainPlan(_Frozen):
    """Everything a backend needs; training_info.json holds it whole."""

    version: int = PLAN_VERSION
    name: str = Field(description="The person (metadata.json's person).")
    trigger_word: str
    output_name: str = Field(description="File name of the trained LoRA, without extension.")
    dataset: TrainDataset
    preset: ModelPreset
    run_dir: Path = Field(description="Where this run's files go.")
    resolution: int
    epochs: int
    batch_size: int
    learning_rate: float
    text_encoder_lr: float | None
    network_dim: int
    network_alpha: float
    optimizer: str
    lr_scheduler: str
    lr_warmup_steps: int
    mixed_precision: str
    seed: int
    subsets: tuple[Subset, ...]
    samples_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    save_every_n_epochs: int
    sample_prompts: tuple[str, ...]
    reasons: dict[str, str] = Field(description="Each value, and why it was chosen.")
    warnings: tuple[str, ...]
    created_at: str
    beaver_version: str

    @property
    def model_dir(self) -> Path:
        """Where the trainers save the LoRA files."""
        return self.run_dir / "model"

    @property
    def logging_dir(self) -> Path:
        """TensorBoard logs (``tensorboard --logdir`` this)."""
        return self.run_dir / "logs"

    @property
    def samples_seen(self) -> int:
        """Images shown to the model over the whole run."""
        return self.samples_per_epoch * self.epochs


def default_epochs(images: int) -> int:
    """The workflow document's rule: <20 → 20, 20-50 → 15, 50-100 → 10, 100+ → 8."""
    if images < 20:
        return 20
    if images <= 50:
        return 15
    if images < 100:
        return 10
    return 8


def default_batch_size(images: int) -> int:
    """The workflow document's rule: <30 → 1, 30-100 → 2, 100+ → 4."""
    if images < 30:
        return 1
    if images < 100:
        return 2
    return 4


def _epochs_rule(images: int) -> str:
    band = (
        "under 20"
        if images < 20
        else "20-50"
        if images <= 50
        else "50-100"
        if images < 100
        else "100 or more"
    )
    return f"{images} images ({band}) → {default_epochs(images)} epochs"


def _balanced_repeats(
    dataset: TrainDataset, epochs: int, target: int
) -> tuple[dict[str, int], str]:
    """Repeats per folder: the recommended shot mix, about ``target`` images over the run."""
    per_epoch = target / epochs
    counts = dataset.shot_distribution
    mixed = {s: n for s, n in counts.items() if s in RECOMMENDED_MIX}
    repeats: dict[str, int] = {}
    if "unknown" in counts:
        repeats["unknown"] = 1  # no face found: useful variety, never emphasised
    if "all" in counts:
        repeats["all"] = max(1, round(per_epoch / counts["all"]))
        return repeats, f"about {target} images shown over the run"
    budget = max(per_epoch - counts.get("unknown", 0), 0)
    share_total = sum(RECOMMENDED_MIX[s] for s in mixed)
    for shot, n in mixed.items():
        share = RECOMMENDED_MIX[shot] / share_total
        repeats[shot] = max(1, round(share * budget / n))
    mix = "/".join(f"{round(RECOMMENDED_MIX[s] * 100)}" for s in mixed)
    names = "/".join(mixed)
    return repeats, f"{names} toward {mix} % and about {target} images shown over the run"


def _sample_prompts(dataset: TrainDataset) -> list[str]:
    """kohya-style prompt lines with the trigger word and the dataset's top concepts."""
    framing = {"portrait", "close_up", "upper_body", "full_body", "selfie", "headshot"}
    concepts = [c.replace("_", " ") for c in dataset.top_concepts if c not in framing]
    trigger = dataset.trigger_word
    bodies = [
        f"{trigger}, close-up portrait photo, looking at the camera",
        ", ".join([trigger, "upper body photo", *concepts[:2]]),
        ", ".join([trigger, "full body photo", *concepts[2:3], "outdoors"]),
        ", ".join([trigger, "photo", *concepts[3:5]] if concepts[3:5] else [trigger, "photo"]),
    ]
    return list(dict.fromkeys(bodies))


def _emphasis(
    dataset: TrainDataset, repeats: dict[str, int], run_dir: Path
) -> tuple[TrainDataset, list[Subset]]:
    """One more folder per shot for the images tagged for emphasis, with that shot's repeats.

    kohya repeats whole folders, so the tagged images are linked into
    ``<run>/emphasis/<shot>/`` (written with the run) and read from there as well.
    """
    tagged = set(dataset.emphasis)
    folders = list(dataset.folders)
    extra: list[Subset] = []
    for folder in dataset.folders:
        chosen = tuple(i for i in folder.images if i.file in tagged)
        if not chosen:
            continue
        image_dir = run_dir / "emphasis" / folder.shot
        shot = f"{folder.shot}{EMPHASIS}"
        folders.append(ShotFolder(shot=shot, image_dir=image_dir, images=chosen))
        extra.append(
            Subset(shot=shot, image_dir=image_dir, images=len(chosen), repeats=repeats[folder.shot])
        )
    return dataset.model_copy(update={"folders": tuple(folders)}), extra


def make_plan(
    dataset: TrainDataset,
    request: TrainRequest,
    run_dir: Path,
    *,
    now: datetime | None = None,
) -> TrainPlan:
    """Resolve ``request`` against ``dataset`` into one frozen plan; raise on conflicts."""
    preset, preset_warning = resolve_base_model(request.base_model, request.model_family)
    warnings: list[str] = [preset_warning] if preset_warning else []
    reasons: dict[str, str] = {}
    images = dataset.total_images
    fam = _FAMILY_NAME[preset.family]
    kind = f"custom preset with {fam}" if preset.key == "custom" else preset.label
    reasons["base_model"] = f"{preset.model}: {kind} settings" + (
        " (the default)" if request.base_model == "sdxl" else ""
    )

    resolution = request.resolution or preset.resolution
    reasons["resolution"] = (
        f"{resolution}: set" if request.resolution else f"{resolution}: {fam}'s native size"
    )
    if resolution % 64 or not 256 <= resolution <= 4096:
        raise ConfigError(
            f"--resolution {resolution} cannot be trained: it must be a multiple of 64 "
            "between 256 and 4096.",
            hint=f"{fam} trains at {preset.resolution}; 512, 768 and 1024 are common.",
        )
    if resolution != preset.resolution:
        warnings.append(
            f"Training {fam} at {resolution} px, not its native {preset.resolution} px."
        )

    epochs = request.epochs or default_epochs(images)
    reasons["epochs"] = f"{epochs}: set" if request.epochs else _epochs_rule(images)

    if request.batch_size is not None:
        batch = request.batch_size
        reasons["batch_size"] = f"{batch}: set"
        if batch > images:
            raise ConfigError(
                f"--batch-size {batch} is larger than the dataset ({images} images).",
                hint=f"Use at most {images}; the default for this dataset is "
                f"{min(default_batch_size(images), images)}.",
            )
    else:
        rule = default_batch_size(images)
        batch = min(rule, preset.max_default_batch, images)
        reasons["batch_size"] = f"{images} images → batch {rule}" + (
            f", capped at {batch} ({fam} at {preset.resolution} px; smaller images: raise it)"
            if batch < rule
            else ""
        )

    lr = request.learning_rate or preset.learning_rate
    reasons["learning_rate"] = f"{lr:g}: set" if request.learning_rate else f"{lr:g}: standard"
    if lr > 5e-4:
        warnings.append(
            f"Learning rate {lr:g} is high for AdamW on a person LoRA (references: 1e-4 to "
            "3e-4); the LoRA may burn in within a few epochs."
        )
    elif lr < 2e-5:
        warnings.append(
            f"Learning rate {lr:g} is low for a LoRA (references: 1e-4 to 3e-4); expect "
            "little to be learned."
        )
    dim = request.network_dim or 32
    alpha = request.network_alpha or 16.0
    reasons["network_dim"] = f"{dim}: set" if request.network_dim else "32: a good balance"
    reasons["network_alpha"] = (
        f"{alpha:g}: set" if request.network_alpha else "16: half the rank (the usual choice)"
    )
    if alpha > dim:
        raise ConfigError(
            f"--network-alpha {alpha:g} is larger than --network-dim {dim}: the updates would "
            f"be scaled up {alpha / dim:g}x.",
            hint=f"Use an alpha of at most {dim}; half the rank ({dim / 2:g}) is usual.",
        )

    target = sum(preset.samples_range) // 2
    if request.repeats is not None:
        repeats = {f.shot: request.repeats for f in dataset.folders}
        reasons["repeats"] = f"{request.repeats} for every folder: set"
    else:
        repeats, why = _balanced_repeats(dataset, epochs, target)
        shown = ", ".join(f"{s} {r}" for s, r in repeats.items())
        reasons["repeats"] = f"{shown}: balance {why}"
    subsets = [
        Subset(shot=f.shot, image_dir=f.image_dir, images=len(f.images), repeats=repeats[f.shot])
        for f in dataset.folders
    ]
    dataset, extra = _emphasis(dataset, repeats, run_dir)
    subsets.extend(extra)
    if extra:
        tagged = sum(s.images for s in extra)
        reasons["repeats"] += (
            f"; {tagged} image(s) tagged for emphasis in preview are shown twice as often"
        )
    samples = sum(s.samples for s in subsets)
    steps_per_epoch = math.ceil(samples / batch)
    total = steps_per_epoch * epochs
    seen = samples * epochs
    lo, hi = preset.samples_range
    reasons["total_steps"] = (
        f"{total}: {epochs} epochs x {steps_per_epoch} steps ({samples} images per epoch, "
        f"batch {batch}); {seen} images shown, {fam} person LoRAs: {lo}-{hi}"
    )
    if seen < lo / 2:
        warnings.append(
            f"Only {seen} images are shown over the run ({total} steps); {fam} person LoRAs "
            f"usually need {lo}-{hi}. Raise --epochs or --repeats, or add photos."
        )
    elif seen > hi * 2:
        warnings.append(
            f"{seen} images are shown over the run ({total} steps); {fam} person LoRAs "
            f"usually need {lo}-{hi}, so this risks overtraining and takes long. "
            "Lower --epochs (the saved epochs let you pick an earlier one)."
        )
    if images < 15:
        warnings.append(
            f"{images} images: at least 15 are recommended (30+ better) for a person LoRA."
        )

    save_every = max(1, round(epochs / 5))
    reasons["save_every_n_epochs"] = f"{save_every}: about 5 saved epochs to choose from"
    text_encoder_lr = preset.text_encoder_lr
    if text_encoder_lr is not None and request.learning_rate:
        text_encoder_lr = text_encoder_lr * request.learning_rate / preset.learning_rate
    reasons["text_encoder_lr"] = (
        f"{text_encoder_lr:g}: half the U-Net's"
        if text_encoder_lr is not None
        else "none: U-Net/transformer only (text-encoder outputs cached; the trigger is "
        "learned by the image model)"
    )
    when = now or datetime.now()
    return TrainPlan(
        name=dataset.person,
        trigger_word=dataset.trigger_word,
        output_name=dataset.trigger_word,
        dataset=dataset,
        preset=preset,
        run_dir=run_dir,
        resolution=resolution,
        epochs=epochs,
        batch_size=batch,
        learning_rate=lr,
        text_encoder_lr=text_encoder_lr,
        network_dim=dim,
        network_alpha=alpha,
        optimizer="AdamW8bit",
        lr_scheduler="cosine",
        lr_warmup_steps=round(total * 0.05),
        mixed_precision="bf16",
        seed=request.seed,
        subsets=tuple(subsets),
        samples_per_epoch=samples,
        steps_per_epoch=steps_per_epoch,
        total_steps=total,
        save_every_n_epochs=save_every,
        sample_prompts=tuple(_sample_prompts(dataset)),
        reasons=reasons,
        warnings=tuple(warnings),
        created_at=when.isoformat(timespec="seconds"),
        beaver_version=__version__,
    )
