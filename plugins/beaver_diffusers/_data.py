"""The training data as diffusers reads it: an imagefolder of links plus ``metadata.jsonl``.

The text-to-image scripts load ``--train_data_dir`` with ``load_dataset("imagefolder",
data_files=<dir>/**)`` and the FLUX DreamBooth script loads ``--dataset_name <dir>``; both
take the caption from a ``metadata.jsonl`` row (``file_name`` relative to the folder,
``text``). imagefolder wants every image in the folder to have a row, so the folder holds
nothing else. None of the scripts has per-folder repeats, so the plan's repeats become
repeated rows, each with its own link: one pass over the folder is one plan epoch.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from beaver.train.plan import TrainPlan

__all__ = ["METADATA", "Row", "plan_rows", "write_imagefolder"]

METADATA = "metadata.jsonl"


@dataclass(frozen=True)
class Row:
    """One sample of an epoch: a link name in data/, the image it points at, its caption."""

    file_name: str
    source: Path
    text: str
    shot: str
    repeat: int


def _names(shot: str, file: str, repeats: int, taken: set[str]) -> list[str]:
    """Unique, visible link names for the ``repeats`` rows of ``file`` (relative, posix)."""
    path = PurePosixPath(file)
    # datasets skips names starting with "." or "__" as hidden files; imagefolder would
    # then miss an image its metadata lists.
    stem = path.stem.lstrip("._") or "image"
    suffix = path.suffix.lower()
    # Two folders may hold the same file name (a hand-made dataset): prefix the shot.
    bases = itertools.chain(
        [stem, f"{shot}-{stem}"], (f"{shot}-{stem}-{n}" for n in itertools.count(2))
    )
    for base in bases:
        # The first row keeps the image's own name; the others say which repeat they
        # are, so `ls data/` shows the weighting.
        names = [f"{base}{suffix}"] + [f"{base}.r{r}{suffix}" for r in range(2, repeats + 1)]
        if taken.isdisjoint(names):
            taken.update(names)
            return names
    raise AssertionError("an endless supply of names ran out")


def plan_rows(plan: TrainPlan) -> Iterator[Row]:
    """Every row of metadata.jsonl: each image of each subset, once per repeat."""
    folders = {f.shot: f for f in plan.dataset.folders}
    taken: set[str] = set()
    for subset in plan.subsets:
        for image in folders[subset.shot].images:
            source = plan.dataset.path / image.file
            names = _names(subset.shot, image.file, subset.repeats, taken)
            for repeat, name in enumerate(names, start=1):
                yield Row(name, source, image.caption, subset.shot, repeat)


def _clear(data_dir: Path) -> None:
    """Remove a previous data/ (links and copies only point at or duplicate the dataset)."""
    if data_dir.is_symlink() or data_dir.is_file():
        data_dir.unlink()
    elif data_dir.is_dir():
        shutil.rmtree(data_dir)  # does not follow links: the dataset is never touched


def _place(source: Path, target: Path) -> bool:
    """Link ``target`` to ``source``; copy when links are refused. True when linked."""
    try:
        target.symlink_to(source)
    except OSError:  # Windows without developer mode, some network and FAT file systems
        shutil.copy2(source, target)
        return False
    return True


def write_imagefolder(plan: TrainPlan, data_dir: Path) -> tuple[list[Row], int]:
    """Write data/ afresh; return its rows and how many of them had to be copied."""
    _clear(data_dir)
    data_dir.mkdir(parents=True)
    rows = list(plan_rows(plan))
    copies = 0
    lines = []
    for row in rows:
        if not _place(row.source, data_dir / row.file_name):
            copies += 1
        lines.append(json.dumps({"file_name": row.file_name, "text": row.text}, ensure_ascii=False))
    (data_dir / METADATA).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows, copies
