"""Small prepared datasets and fixed training plans for tests of ``beaver train`` backends.

``write_dataset`` writes what ``beaver prep`` writes (shot folders, images with .txt
captions, metadata.json) without running prep; ``fixed_plan`` resolves a plan with a fixed
clock, so generated files can be compared with golden copies after ``normalise``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from beaver import TrainerSpec, hookimpl
from beaver.train.dataset import read_dataset
from beaver.train.plan import TrainPlan, TrainRequest, make_plan

__all__ = [
    "FIXED_NOW",
    "EchoPlugin",
    "EchoTrainer",
    "fixed_plan",
    "normalise",
    "write_dataset",
]

FIXED_NOW = datetime(2026, 1, 2, 3, 4, 5)
DEFAULT_SHOTS: Mapping[str, int] = {"close": 15, "mid": 20, "far": 12}
DEFAULT_CONCEPTS = ("smiling", "outdoor", "glasses", "standing", "beach")


def write_dataset(
    root: Path,
    *,
    person: str = "Emma",
    trigger: str = "emma",
    shots: Mapping[str, int] = DEFAULT_SHOTS,
    concepts: Sequence[str] = DEFAULT_CONCEPTS,
    size: tuple[int, int] = (96, 128),
    captions: bool = True,
    organised: bool = True,
) -> Path:
    """A prep-style dataset under ``root`` with ``shots`` images per folder; returns ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    total = 0
    for shot, count in shots.items():
        folder = root / shot if organised else root
        folder.mkdir(exist_ok=True)
        for i in range(1, count + 1):
            stem = f"{trigger}_{shot}_{i:04d}"
            colour = ((i * 37) % 256, (i * 91 + len(shot) * 40) % 256, (i * 13) % 256)
            Image.new("RGB", size, colour).save(folder / f"{stem}.jpg", quality=90)
            if captions:
                extra = concepts[i % len(concepts)] if concepts else "indoors"
                (folder / f"{stem}.txt").write_text(
                    f"{trigger}, a woman, {shot} shot, {extra}\n", encoding="utf-8"
                )
            total += 1
    meta: dict[str, Any] = {
        "person": person,
        "trigger_word": trigger,
        "total_images": total,
        "shot_distribution": dict(shots),
        "top_concepts": [
            {"concept": c, "count": max(total // (k + 2), 1), "frequency": round(1 / (k + 2), 2)}
            for k, c in enumerate(concepts)
        ],
        "created_at": FIXED_NOW.isoformat(timespec="seconds"),
    }
    (root / "metadata.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return root


def fixed_plan(
    dataset_dir: Path, run_dir: Path, base_model: str = "sdxl", **request: Any
) -> TrainPlan:
    """The plan ``beaver train`` would make for ``dataset_dir``, at ``FIXED_NOW``."""
    dataset, _ = read_dataset(dataset_dir)
    req = TrainRequest(base_model=base_model, **request)
    plan = make_plan(dataset, req, run_dir, now=FIXED_NOW)
    return plan.model_copy(update={"beaver_version": "0.0.0-test"})


def normalise(text: str, plan: TrainPlan) -> str:
    """``text`` with the plan's absolute paths replaced by ``$RUN`` and ``$DATASET``."""
    return text.replace(str(plan.run_dir), "$RUN").replace(str(plan.dataset.path), "$DATASET")


class EchoOptions(BaseModel):
    """Options of the test backend ``echo``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sd_scripts_dir: Path | None = Field(None, description="Receives settings.train's value.")
    installed: bool = Field(True, description="Whether --run may launch it.")


class EchoTrainer:
    """A backend that writes its plan's numbers and whose script prints and exits."""

    def __init__(self, options: EchoOptions) -> None:
        self.options = options

    def write(self, plan: TrainPlan, out_dir: Path) -> list[Path]:
        """``echo/plan.txt``: a few plan values."""
        target = out_dir / "plan.txt"
        target.write_text(
            f"epochs={plan.epochs} batch={plan.batch_size} steps={plan.total_steps}\n",
            encoding="utf-8",
        )
        return [target]

    def script(self, plan: TrainPlan, out_dir: Path) -> str:
        """Prints a line per epoch; ``ECHO_FAIL`` makes it fail."""
        return "\n".join(
            [
                f'echo "echo trainer: $(cat {shlex.quote(str(out_dir / "plan.txt"))})"',
                f'for e in $(seq 1 {plan.epochs}); do echo "epoch $e"; done',
                'if [ -n "${ECHO_FAIL:-}" ]; then echo "boom" >&2; exit 7; fi',
            ]
        )

    def launch_problem(self, plan: TrainPlan) -> str | None:
        """Not installed unless the option says so."""
        del plan
        return None if self.options.installed else "echo is not installed (set installed)"


class EchoPlugin:
    """Registers ``echo`` (tests pass it as an extra plugin); built trainers are kept."""

    def __init__(self) -> None:
        self.made: list[EchoTrainer] = []

    @hookimpl
    def beaver_trainers(self) -> Iterator[TrainerSpec]:
        """The ``echo`` backend."""

        def make(options: Any) -> EchoTrainer:
            trainer = EchoTrainer(options)
            self.made.append(trainer)
            return trainer

        yield TrainerSpec(name="echo", factory=make, options=EchoOptions)


def write_prepared(root: Path, **kwargs: Any) -> Path:
    """``write_dataset`` plus what else ``beaver prep`` writes: shots.json, concepts.json,
    preview_manifest.json, captions/ and its name record, consistent with each other."""
    from beaver.prep import dataset as files
    from beaver.prep.concepts import extract, top_concepts
    from beaver.prep.taxonomy import load_taxonomy
    from beaver.prep.writer import CAPTIONS_DIR, STATE

    root = write_dataset(root, **kwargs)
    taxonomy = load_taxonomy(None)
    shots: dict[str, files.ShotEntry] = {}
    concepts: dict[str, Any] = {}
    images: list[files.PreviewImage] = []
    names: dict[str, str] = {}
    (root / CAPTIONS_DIR).mkdir(exist_ok=True)
    for image in sorted(root.rglob("*.jpg")):
        rel = image.relative_to(root).as_posix()
        shot = rel.split("/")[0] if "/" in rel else "mid"
        txt = image.with_suffix(".txt")
        caption = txt.read_text(encoding="utf-8").strip() if txt.is_file() else ""
        if txt.is_file():
            (root / CAPTIONS_DIR / txt.name).write_text(caption + "\n", encoding="utf-8")
        ratio = {"close": 0.45, "mid": 0.25, "far": 0.1}.get(shot)
        with Image.open(image) as opened:
            w, h = opened.size
        box = None
        if ratio is not None:
            side = round(ratio * h)
            box = [(w - side) // 2, h // 8, (w - side) // 2 + side, h // 8 + side]
        shots[image.name] = files.ShotEntry(
            shot_type=shot if shot in ("close", "mid", "far", "unknown") else "mid",
            face_ratio=ratio,
            confidence=0.8 if ratio is not None else 0.0,
            face_bbox=box,
            source=f"/photos/{image.name}",
        )
        found = extract(caption, taxonomy)
        concepts[image.name] = found
        images.append(
            files.PreviewImage(
                filename=rel,
                shot_type=shots[image.name].shot_type,
                shot_confidence=shots[image.name].confidence,
                caption=caption,
                concepts=found.concepts,
                pose=found.pose,
                setting=found.setting,
            )
        )
        names[f"key-{image.stem}"] = rel
    meta = json.loads((root / files.METADATA).read_text(encoding="utf-8"))
    meta["top_concepts"] = [
        t.model_dump() for t in top_concepts(list(concepts.values()), len(images))
    ]
    meta["recommended_mix"] = {"close": 0.3, "mid": 0.45, "far": 0.25}
    (root / files.METADATA).write_text(json.dumps(meta, indent=2), encoding="utf-8")
    files.write_json(root / files.SHOTS, dict(shots))
    files.write_json(root / files.CONCEPTS, concepts)
    files.write_json(
        root / files.PREVIEW,
        files.PreviewManifest(
            dataset=files.PreviewDataset(
                name=meta["person"], trigger=meta["trigger_word"], total_images=len(images)
            ),
            images=images,
        ),
    )
    (root / STATE).write_text(
        json.dumps({"version": 1, "names": names, "crops": {}}, indent=1), encoding="utf-8"
    )
    return root
