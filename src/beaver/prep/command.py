"""``beaver prep`` resolved and run: photos → shots, concepts, quality → a dataset folder.

One plan (:class:`PrepPlan`) from settings and flags; :func:`prepare` reads the photos
once (hash, size), finds their faces (face cache, else the installed detector, else none:
everything to mid/ with a warning), their captions and concepts, flags duplicates and
unusable photos, and writes the dataset with :mod:`beaver.prep.writer` and the four JSON
files of :mod:`beaver.prep.dataset`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from beaver import __version__
from beaver.captions.compose import compose, core_of
from beaver.captions.schema import ImageCaption, read_captions
from beaver.errors import BeaverError, InputError
from beaver.faces.scan import ScanPlan
from beaver.fsutil import write_atomic
from beaver.images import IMAGE_SUFFIXES, ImageLoadError, find_images
from beaver.interfaces import FaceDetector
from beaver.prep import dataset as files
from beaver.prep import quality
from beaver.prep.balance import recommend
from beaver.prep.captions import match_captions
from beaver.prep.concepts import ImageConcepts, extract, top_concepts
from beaver.prep.crop import crop_box, shift_box
from beaver.prep.edits import EXCLUDED_DIR, USER_EXCLUDED, read_edits
from beaver.prep.faces import DETECT_PLAN, FaceCacheIndex, ImageFaces, detect_faces_on_the_fly
from beaver.prep.quality import MIN_SIDE, ImageFacts, assess
from beaver.prep.shots import PersonRef, ShotResult, ShotThresholds, classify_without_faces
from beaver.prep.taxonomy import load_taxonomy
from beaver.prep.writer import STATE, Item, Placed, place
from beaver.progress import NullProgress, Progress

SHOTS = ("close", "mid", "far")


@dataclass(frozen=True)
class PrepPlan:
    """Everything one prep run needs."""

    input_dir: Path
    output_dir: Path
    name: str
    trigger: str
    facevault_cache: Path | None = None
    captions: Path | None = None
    taxonomy: Path | None = None
    organize_by_shot: bool = True
    min_per_shot: int = 3
    symlink: bool = False
    keep_all: bool = False
    crop: bool = False
    min_side: int = MIN_SIDE
    thresholds: ShotThresholds = field(default_factory=ShotThresholds)
    class_word: str = "person"
    recursive: bool = True


@dataclass
class PrepReport:
    """What a run did, for the summary and ``--json``."""

    output: str = ""
    photos: int = 0
    total_images: int = 0
    shot_distribution: dict[str, int] = field(default_factory=dict)
    faces_from: Literal["face cache", "detector", "none"] = "none"
    captions_matched: int | None = None
    cache_matched: int | None = None
    excluded: dict[str, list[str]] = field(default_factory=dict)
    quality: dict[str, int | float | bool] = field(default_factory=dict)
    recommended_mix: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Photo:
    path: Path
    sha256: str
    width: int
    height: int
    facts: ImageFacts


def prepare(
    plan: PrepPlan,
    *,
    detector: Callable[[], FaceDetector] | None = None,
    scan_plan: ScanPlan | None = None,
    progress: Progress | None = None,
) -> PrepReport:
    """Build the dataset described by ``plan``; see the module docstring."""
    progress = progress or NullProgress()
    started = time.perf_counter()
    report = PrepReport(output=str(plan.output_dir))
    taxonomy = load_taxonomy(plan.taxonomy)  # a bad taxonomy fails before any work
    captions_file = read_captions(plan.captions) if plan.captions else None
    cache = FaceCacheIndex.load(plan.facevault_cache) if plan.facevault_cache else None
    photos = _read_photos(plan, report, progress)
    report.photos = len(photos)

    faces = _faces(plan, photos, cache, detector, scan_plan, report, progress)
    target = PersonRef.from_text(plan.name)
    edits = read_edits(plan.output_dir)  # what the user decided in `beaver preview`
    shots: dict[Path, ShotResult] = {}
    for photo in photos:
        found = faces.get(photo.path)
        shots[photo.path] = (
            found.classify(plan.thresholds, target)
            if found is not None
            else classify_without_faces(source=str(photo.path))
        )
        chosen = edits.get(photo.sha256, {}).get("shot")
        if chosen is not None:
            shots[photo.path] = shots[photo.path].model_copy(
                update={"shot_type": chosen, "confidence": 1.0}
            )

    captions: dict[Path, ImageCaption] = {}
    if captions_file is not None and plan.captions is not None:
        captions = match_captions(
            captions_file,
            [p.path for p in photos],
            plan.input_dir,
            {p.path: p.sha256 for p in photos},
        )
        report.captions_matched = len(captions)
        if not captions:
            raise InputError(
                plan.captions,
                f"matches none of the {len(photos)} photos in {plan.input_dir}",
                hint="Pass the captions.json made for this folder (`beaver caption --input "
                f"{plan.input_dir} --output-name …`).",
            )

    kept = _select(plan, photos, shots, report)
    old_trigger = captions_file.trigger if captions_file is not None else None
    items = []
    concept_entries: dict[Path, ImageConcepts] = {}
    for photo in kept:
        entry = captions.get(photo.path)
        text = (entry.raw or entry.caption) if entry is not None else ""
        caption = (
            _training_caption(entry.caption, plan.trigger, old_trigger)
            if entry is not None and entry.caption.strip()
            else f"{plan.trigger}, {plan.class_word}"
        )
        edited = edits.get(photo.sha256, {}).get("caption")
        if edited is not None:
            caption = text = edited
        concept_entries[photo.path] = extract(text, taxonomy)
        shot = shots[photo.path]
        box = (
            crop_box(photo.width, photo.height, shot.face_bbox, shot.shot_type)
            if plan.crop
            else None
        )
        items.append(Item(photo.path, photo.sha256, shot.shot_type, caption, box))

    placed = place(
        plan.output_dir,
        items,
        trigger=plan.trigger,
        organize_by_shot=plan.organize_by_shot,
        symlink=plan.symlink,
    )
    placed = _set_aside(plan.output_dir, placed, edits)
    _write_files(plan, placed, shots, concept_entries, report, edits)
    report.seconds = time.perf_counter() - started
    return report


def _set_aside(
    dataset: Path, placed: list[Placed], edits: dict[str, dict[str, Any]]
) -> list[Placed]:
    """Move the images excluded in preview to excluded/ (kept, so preview can bring them
    back), and record their names there."""
    moved: dict[str, str] = {}
    out = []
    for p in placed:
        if not edits.get(p.item.key, {}).get("excluded"):
            out.append(p)
            continue
        name = f"{EXCLUDED_DIR}/{Path(p.name).name}"
        (dataset / EXCLUDED_DIR).mkdir(exist_ok=True)
        for src, dst in ((p.name, name), (_txt(p.name), _txt(name))):
            if os.path.lexists(dataset / src):
                (dataset / src).replace(dataset / dst)
        moved[p.item.key] = name
        out.append(dataclasses.replace(p, name=name))
    if moved:
        record = json.loads((dataset / STATE).read_text(encoding="utf-8"))
        record["names"].update(moved)
        write_atomic(dataset / STATE, json.dumps(record, indent=1) + "\n")
    return out


def _txt(name: str) -> str:
    return Path(name).with_suffix(".txt").as_posix()


def _training_caption(caption: str, trigger: str, old_trigger: str | None) -> str:
    """``caption`` led by ``trigger``; a different trigger the caption run put first goes."""
    if old_trigger and old_trigger.casefold() != trigger.casefold():
        caption = core_of(caption, trigger=old_trigger, prefix="", suffix="")
    return compose(caption, trigger=trigger)


def _read_photos(plan: PrepPlan, report: PrepReport, progress: Progress) -> list[_Photo]:
    root = plan.input_dir
    if not root.is_dir():
        problem = "no such folder" if not root.exists() else "not a folder"
        raise InputError(root, problem, hint="Pass the folder of the person's photos.")

    def skip(path: Path, reason: str) -> None:
        report.skipped.setdefault(reason, []).append(str(path))

    paths = list(find_images([root], recursive=plan.recursive, on_error=skip))
    if not paths:
        raise InputError(
            root,
            "no images found",
            hint=f"beaver reads {', '.join(sorted(IMAGE_SUFFIXES))}.",
        )
    photos = []
    known = _load_facts(plan.output_dir)
    fresh: dict[str, list[Any]] = {}
    progress.start("Reading photos", total=len(paths))
    with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
        results = pool.map(lambda path: _measure(path, known), paths)
        for done, (path, result) in enumerate(zip(paths, results, strict=True), start=1):
            if isinstance(result, str):
                skip(path, result)
            else:
                facts, stamp = result
                fresh[str(path)] = [*stamp, *_facts_row(facts)]
                photos.append(_Photo(path, facts.sha256, facts.width, facts.height, facts))
            progress.update(done)
    progress.finish()
    _save_facts(plan.output_dir, fresh)
    if not photos:
        raise InputError(root, "none of its images could be read", hint="See the list above.")
    return photos


FACTS = ".beaver-prep-facts.json"
"""Each photo's measurements by path, size and mtime: a re-run decodes only changed photos."""


def _measure(path: Path, known: dict[str, list[Any]]) -> tuple[ImageFacts, tuple[int, int]] | str:
    """Size, hashes and sharpness (remembered, or from one reduced decode); or why not."""
    try:
        st = path.stat()
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    stamp = (st.st_size, st.st_mtime_ns)
    row = known.get(str(path))
    if row is not None and tuple(row[:2]) == stamp:
        try:
            width, height, sha, dh, ph, sharp = row[2:]
            return ImageFacts(
                path,
                int(width),
                int(height),
                str(sha),
                int(dh),
                int(ph),
                float(sharp),
            ), stamp
        except (TypeError, ValueError):
            pass  # an old or damaged record: measure again
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot read ({exc.strerror})"
    try:
        return quality.measure(path, data=data), stamp
    except ImageLoadError as exc:
        return exc.reason


def _facts_row(facts: ImageFacts) -> list[Any]:
    return [facts.width, facts.height, facts.sha256, facts.dhash, facts.phash, facts.sharpness]


def _load_facts(folder: Path) -> dict[str, list[Any]]:
    try:
        data = json.loads((folder / FACTS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    rows = data.get("photos") if isinstance(data, dict) and data.get("version") == 1 else None
    return (
        {str(k): v for k, v in rows.items() if isinstance(v, list)}
        if isinstance(rows, dict)
        else {}
    )


def _save_facts(folder: Path, rows: dict[str, list[Any]]) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / FACTS, json.dumps({"version": 1, "photos": rows}), durable=False)
    except (OSError, BeaverError):
        pass  # only a cache: the dataset writer reports an unwritable output


def _faces(
    plan: PrepPlan,
    photos: Sequence[_Photo],
    cache: FaceCacheIndex | None,
    detector: Callable[[], FaceDetector] | None,
    scan_plan: ScanPlan | None,
    report: PrepReport,
    progress: Progress,
) -> dict[Path, ImageFaces]:
    found: dict[Path, ImageFaces] = {}
    missing = [p.path for p in photos]
    if cache is not None:
        lookup = cache.match(missing)
        found.update(lookup.found)
        missing = lookup.missing
        for path, reason in lookup.failed.items():
            report.skipped.setdefault(reason, []).append(str(path))
        report.cache_matched = len(lookup.found)
        report.faces_from = "face cache"
        if not lookup.found:
            report.warnings.append(
                f"{plan.facevault_cache}: none of the {len(photos)} photos is in the face "
                "cache (scan them with `beaver face scan`)."
            )
    problem = ""
    if missing and detector is not None:
        try:
            loaded = detector()
        except BeaverError as exc:
            problem = f" (the face detector did not load: {exc.message.rstrip('.')})"
        else:
            progress.start("Finding faces", total=len(missing))
            done = 0

            def tick(_path: Path) -> None:
                nonlocal done
                done += 1
                progress.update(done)

            lookup = detect_faces_on_the_fly(
                missing, loaded, scan_plan or DETECT_PLAN, on_done=tick
            )
            progress.finish()
            found.update(lookup.found)
            for path, reason in lookup.failed.items():
                report.skipped.setdefault(reason, []).append(str(path))
            if report.faces_from == "none":
                report.faces_from = "detector"
            missing = []
    if missing:
        report.warnings.append(
            f"{len(missing)} of {len(photos)} photos have no face information{problem}: they "
            "go to mid/. Pass --facevault-cache, or install face models (`beaver models`)."
        )
    return found


def _select(
    plan: PrepPlan,
    photos: Sequence[_Photo],
    shots: dict[Path, ShotResult],
    report: PrepReport,
) -> list[_Photo]:
    """The photos that go into the dataset: duplicates once, flagged ones left out."""
    verdicts = assess(
        [p.facts for p in photos],
        min_side=plan.min_side,
        keep_all=plan.keep_all,
        target_found={p.path: shots[p.path].target_found for p in photos},
    )
    report.quality = verdicts.summary()
    report.warnings.extend(verdicts.messages())
    for verdict in verdicts.verdicts:
        if verdict.excluded:
            reason = verdict.issues[0].value if verdict.issues else "excluded"
            report.excluded.setdefault(reason, []).append(str(verdict.path))
    kept = set(verdicts.kept)
    return [p for p in photos if p.path in kept]


def _write_files(
    plan: PrepPlan,
    entries: Sequence[Placed],
    shots: dict[Path, ShotResult],
    concepts: dict[Path, ImageConcepts],
    report: PrepReport,
    edits: dict[str, dict[str, Any]],
) -> None:
    shot_json: dict[str, files.ShotEntry] = {}
    concept_json: dict[str, ImageConcepts] = {}
    preview: list[files.PreviewImage] = []
    for p in entries:
        shot = shots[p.item.source]
        key = Path(p.name).name
        shot_json[key] = files.ShotEntry(
            shot_type=shot.shot_type,
            face_ratio=shot.face_ratio,
            confidence=shot.confidence,
            face_bbox=shift_box(shot.face_bbox, p.item.crop) if shot.face_bbox else None,
            source=str(p.item.source),
        )
        concept = concepts[p.item.source]
        concept_json[key] = concept
        preview.append(
            files.PreviewImage(
                filename=p.name,
                shot_type=shot.shot_type,
                shot_confidence=shot.confidence,
                caption=p.item.caption,
                concepts=concept.concepts,
                pose=concept.pose,
                setting=concept.setting,
                excluded=bool(edits.get(p.item.key, {}).get("excluded")),
                emphasis=bool(edits.get(p.item.key, {}).get("emphasis")),
            )
        )
    set_aside = [p for p in entries if edits.get(p.item.key, {}).get("excluded")]
    if set_aside:
        report.excluded[USER_EXCLUDED] = [str(p.item.source) for p in set_aside]
    entries = [p for p in entries if not edits.get(p.item.key, {}).get("excluded")]
    counts: Counter[str] = Counter(shots[p.item.source].shot_type for p in entries)
    distribution = {s: counts.get(s, 0) for s in SHOTS}
    if counts.get("unknown"):
        distribution["unknown"] = counts["unknown"]
    report.total_images = len(entries)
    report.shot_distribution = distribution
    balance = recommend(distribution, plan.min_per_shot)
    report.warnings.extend(balance.warnings)
    report.recommended_mix = balance.recommended_mix
    top = top_concepts([concepts[p.item.source] for p in entries], len(entries))
    metadata = files.Metadata(
        person=plan.name,
        trigger_word=plan.trigger,
        total_images=len(entries),
        shot_distribution=distribution,
        top_concepts=top,
        created_at=datetime.now().replace(microsecond=0).isoformat(),
        generator=f"eager-beaver {__version__}",
        input=str(plan.input_dir),
        captions=files.SourceInfo(path=str(plan.captions), matched=report.captions_matched or 0)
        if plan.captions
        else None,
        face_cache=files.SourceInfo(
            path=str(plan.facevault_cache), matched=report.cache_matched or 0
        )
        if plan.facevault_cache
        else None,
        faces_from=report.faces_from,
        shot_thresholds={"close": plan.thresholds.close, "far": plan.thresholds.far},
        quality=report.quality,
        excluded=report.excluded,
        warnings=report.warnings,
        recommended_mix=report.recommended_mix,
        taxonomy=str(plan.taxonomy.resolve()) if plan.taxonomy else "",
        emphasis=[p.name for p in entries if edits.get(p.item.key, {}).get("emphasis")],
    )
    out = plan.output_dir
    files.write_json(out / files.SHOTS, shot_json)
    files.write_json(out / files.CONCEPTS, concept_json)
    files.write_json(
        out / files.PREVIEW,
        files.PreviewManifest(
            dataset=files.PreviewDataset(
                name=plan.name, trigger=plan.trigger, total_images=len(entries)
            ),
            images=preview,
        ),
    )
    files.write_json(out / files.METADATA, metadata)
