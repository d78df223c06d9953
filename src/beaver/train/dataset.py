"""Reading a ``beaver prep`` dataset the way the trainers will see it.

The image files on disk are the truth (a user may have deleted some since prep ran);
metadata.json gives the person, trigger word and top concepts. Every problem a trainer
would only report an hour into a run (an empty caption file, an image format it skips,
images in a sub-folder it does not scan) is found here.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from beaver.errors import DatasetError
from beaver.prep.dataset import METADATA, Metadata
from beaver.prep.edits import EXCLUDED_DIR

__all__ = [
    "SHOT_FOLDERS",
    "TRAINER_EXTENSIONS",
    "DatasetImage",
    "ShotFolder",
    "TrainDataset",
    "read_dataset",
]

SHOT_FOLDERS = ("close", "mid", "far", "unknown")
EMPHASIS = "_emphasis"
"""Suffix of the extra folder of images tagged for emphasis in preview (``close_emphasis``)."""
"""Sub-folders ``beaver prep`` writes, in this order."""
TRAINER_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
"""Image types sd-scripts, diffusers' imagefolder and ComfyUI's dataset loader all read."""
_OTHER_IMAGES = frozenset({".gif", ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl"})
_PREP_HINT = "Run `beaver prep PHOTOS --name NAME` and pass the folder it writes."


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetImage(_Frozen):
    """One training image and its caption."""

    file: str = Field(description="Path relative to the dataset folder, with '/'.")
    caption: str = Field(description="First line of its .txt (the class tokens when none).")
    has_caption: bool = Field(description="Whether a .txt caption file exists.")


class ShotFolder(_Frozen):
    """A folder of images a trainer reads as one subset."""

    shot: str = Field(description="close, mid, far, unknown, or all (a flat dataset).")
    image_dir: Path = Field(description="Absolute path of the folder.")
    images: tuple[DatasetImage, ...]


class TrainDataset(_Frozen):
    """A prepared dataset, as read for training."""

    path: Path = Field(description="Absolute path of the dataset folder.")
    person: str
    trigger_word: str
    class_tokens: str = Field(description="Caption of an image without one: '<trigger>, <class>'.")
    top_concepts: tuple[str, ...]
    folders: tuple[ShotFolder, ...]
    emphasis: tuple[str, ...] = Field(
        (), description="Images tagged for emphasis in `beaver preview` (dataset-relative)."
    )

    @property
    def total_images(self) -> int:
        """Images the trainers will read (each once, emphasised or not)."""
        return sum(len(f.images) for f in self.folders if not f.shot.endswith(EMPHASIS))

    @property
    def shot_distribution(self) -> dict[str, int]:
        """Images per shot folder."""
        return {f.shot: len(f.images) for f in self.folders if not f.shot.endswith(EMPHASIS)}


def _read_metadata(path: Path) -> Metadata:
    meta_path = path / METADATA
    if not meta_path.is_file():
        raise DatasetError(
            path, f"not a beaver prep dataset ({METADATA} is missing).", hint=_PREP_HINT
        )
    try:
        raw = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(
            meta_path,
            f"not valid JSON (line {exc.lineno}: {exc.msg}).",
            hint="Re-run `beaver prep` to rewrite it.",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(meta_path, f"cannot read it ({exc}).") from None
    try:
        return Metadata.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        raise DatasetError(
            meta_path, f"{where}: {err['msg']}.", hint="Re-run `beaver prep` to rewrite it."
        ) from None


def _caption(image: Path, warnings: list[str], counts: dict[str, int]) -> str | None:
    txt = image.with_suffix(".txt")
    if not txt.is_file():
        return None
    try:
        text = txt.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(
            txt,
            "not UTF-8 text, which the trainers require.",
            hint="Save it as UTF-8, or re-run `beaver prep`.",
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        # sd-scripts stops with an assertion on an empty caption file.
        raise DatasetError(
            txt,
            "the caption file is empty, which kohya sd-scripts rejects.",
            hint="Write a caption into it or delete it (the image then gets the class tokens).",
        )
    if len(lines) > 1:
        counts["multiline"] += 1
        if counts["multiline"] == 1:
            warnings.append(
                f"{txt}: the caption has {len(lines)} lines; trainers read only the first."
            )
    return lines[0]


def _images_in(folder: Path, warnings: list[str]) -> list[Path]:
    found: list[Path] = []
    skipped: list[Path] = []
    nested = 0
    for entry in sorted(folder.iterdir()):
        if entry.is_dir():
            # excluded/ holds what the user left out in preview, on purpose out of reach.
            if entry.name != EXCLUDED_DIR and any(
                p.suffix.lower() in TRAINER_EXTENSIONS for p in entry.rglob("*")
            ):
                nested += 1
            continue
        suffix = entry.suffix.lower()
        if suffix in TRAINER_EXTENSIONS:
            found.append(entry)
        elif suffix in _OTHER_IMAGES:
            skipped.append(entry)
    if skipped:
        warnings.append(
            f"{len(skipped)} image(s) in {folder} are a type trainers skip "
            f"({skipped[0].name}…): convert them to JPEG or PNG, or re-run `beaver prep`."
        )
    if nested:
        warnings.append(
            f"{folder} has {nested} sub-folder(s) with images; trainers read only the "
            "images directly in it."
        )
    return found


def read_dataset(path: Path, *, class_word: str = "person") -> tuple[TrainDataset, list[str]]:
    """The dataset at ``path`` and warnings about it; raises DatasetError when unusable."""
    path = path.expanduser()
    if not path.exists():
        raise DatasetError(path, "no such folder.", hint=_PREP_HINT)
    if not path.is_dir():
        raise DatasetError(path, "is a file, not a dataset folder.", hint=_PREP_HINT)
    path = path.resolve()
    meta = _read_metadata(path)
    warnings: list[str] = []
    counts = {"multiline": 0, "uncaptioned": 0, "no_trigger": 0}
    trigger = meta.trigger_word
    class_tokens = f"{trigger}, {class_word}"
    shot_dirs = [(s, path / s) for s in SHOT_FOLDERS if (path / s).is_dir()]
    if not shot_dirs:
        shot_dirs = [("all", path)]
    folders: list[ShotFolder] = []
    for shot, folder in shot_dirs:
        try:
            files = _images_in(folder, warnings)
        except PermissionError:
            raise DatasetError(
                folder, "permission denied.", hint="Make it readable (chmod u+rx)."
            ) from None
        images = []
        for image in files:
            caption = _caption(image, warnings, counts)
            if caption is None:
                counts["uncaptioned"] += 1
            elif not caption.lower().startswith(trigger.lower()):
                counts["no_trigger"] += 1
            images.append(
                DatasetImage(
                    file=image.relative_to(path).as_posix(),
                    caption=caption if caption is not None else class_tokens,
                    has_caption=caption is not None,
                )
            )
        if images:
            folders.append(ShotFolder(shot=shot, image_dir=folder, images=tuple(images)))
    if not folders:
        where = ", ".join(f"{s}/" for s, _ in shot_dirs) if shot_dirs[0][0] != "all" else "it"
        raise DatasetError(
            path,
            f"the dataset has no images ({where} empty).",
            hint="Re-run `beaver prep` with more photos, or with --keep-all.",
        )
    if counts["uncaptioned"]:
        warnings.append(
            f"{counts['uncaptioned']} image(s) have no .txt caption; they train on "
            f"{class_tokens!r}."
        )
    if counts["no_trigger"]:
        warnings.append(
            f"{counts['no_trigger']} caption(s) do not start with the trigger word "
            f"{trigger!r}; keep_tokens protects only the first one."
        )
    listed = {image.file for folder in folders for image in folder.images}
    emphasis = tuple(f for f in meta.emphasis if f in listed)
    if len(emphasis) < len(meta.emphasis):
        warnings.append(
            f"{len(meta.emphasis) - len(emphasis)} image(s) tagged for emphasis are no longer "
            "in the dataset; the others are."
        )
    dataset = TrainDataset(
        path=path,
        person=meta.person,
        trigger_word=trigger,
        class_tokens=class_tokens,
        top_concepts=tuple(c.concept for c in meta.top_concepts),
        folders=tuple(folders),
        emphasis=emphasis,
    )
    if meta.total_images != dataset.total_images:
        warnings.append(
            f"{METADATA} lists {meta.total_images} images but {dataset.total_images} are on "
            "disk; training uses the ones on disk."
        )
    return dataset, warnings
