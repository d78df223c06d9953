"""The caption loop: batches, modes, resume, bad images, out-of-memory, sidecars."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from beaver.captions.run import (
    CaptionInterrupted,
    CaptionPlan,
    CaptionReport,
    caption_folder,
    sidecar_names,
)
from beaver.captions.schema import read_captions
from beaver.errors import BackendError, InputError
from beaver.testing.colourcaptioner import ColourCaptioner, write_image


def _plan(library: Path, out: Path, **kw: Any) -> CaptionPlan:
    return CaptionPlan(input_dir=library, output_dir=out, captioner="colour", **kw)


def _run(plan: CaptionPlan, captioner: ColourCaptioner | None = None) -> tuple[CaptionReport, int]:
    built: list[int] = []
    captioner = captioner or ColourCaptioner()

    def make() -> ColourCaptioner:
        built.append(1)
        return captioner

    return caption_folder(plan, make), len(built)


def _captions(out: Path) -> dict[str, str]:
    return {k: v.caption for k, v in read_captions(out / "captions.json").images.items()}


def test_captions_every_image_by_relative_path(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    captioner = ColourCaptioner()
    report, built = _run(_plan(library, out, batch_size=2, trigger="emma"), captioner)
    assert (report.images, report.captioned, built) == (5, 5, 1)
    assert _captions(out) == {
        "a.jpg": "emma, a red square",
        "b.png": "emma, a green square",
        "c.jpg": "emma, a blue square",
        "sub/d.jpg": "emma, a green square",
        "sub/e.webp": "emma, a red square",
    }
    assert [len(b) for b in captioner.batches] == [2, 2, 1]
    data = read_captions(out / "captions.json")
    assert data.images["a.jpg"].raw == "a red square"
    assert (data.captioner, data.model, data.trigger, data.unfinished) == (
        "colour",
        "test:colour",
        "emma",
        None,
    )
    assert data.images["a.jpg"].size == (library / "a.jpg").stat().st_size


def test_no_recursive_and_exclude(library: Path, tmp_path: Path) -> None:
    report, _ = _run(_plan(library, tmp_path / "o1", recursive=False))
    assert report.images == 3
    report, _ = _run(_plan(library, tmp_path / "o2", exclude=("*.png", "sub/e.*")))
    assert sorted(_captions(tmp_path / "o2")) == ["a.jpg", "c.jpg", "sub/d.jpg"]


def test_rerun_in_skip_mode_loads_no_model(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(_plan(library, out))
    before = (out / "captions.json").read_bytes()
    report, built = _run(_plan(library, out))
    assert (report.captioned, report.kept, built) == (0, 5, 0)
    assert (out / "captions.json").read_bytes() == before


def test_changed_images_are_captioned_again_touched_ones_are_not(
    library: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _run(_plan(library, out))
    write_image(library / "a.jpg", "blue")  # new content
    stat = (library / "c.jpg").stat()
    os.utime(library / "c.jpg", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched
    write_image(library / "new.png", "green")
    captioner = ColourCaptioner()
    report, _ = _run(_plan(library, out), captioner)
    assert (report.captioned, report.kept) == (2, 4)
    assert _captions(out)["a.jpg"] == "a blue square"
    assert _captions(out)["new.png"] == "a green square"
    touched = read_captions(out / "captions.json").images["c.jpg"]
    assert touched.mtime_ns == (library / "c.jpg").stat().st_mtime_ns  # not hashed again


def test_overwrite_append_prepend(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(_plan(library, out, trigger="emma", prefix="photo"))
    tagger = ColourCaptioner(tags=True)
    _run(_plan(library, out, trigger="emma", prefix="photo", mode="append"), tagger)
    assert _captions(out)["a.jpg"] == "emma, photo, a red square, red, square"
    _run(_plan(library, out, trigger="emma", prefix="photo", mode="prepend"), tagger)
    # Parts already present are not repeated.
    assert _captions(out)["a.jpg"] == "emma, photo, red, square, a red square"
    _run(_plan(library, out, mode="overwrite"))
    assert _captions(out)["a.jpg"] == "a red square"


def test_interrupted_append_run_continues_without_appending_twice(
    library: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    _run(_plan(library, out))
    captioner = ColourCaptioner(tags=True)
    calls = {"n": 0}

    def stop_on_third(images: Sequence[Image.Image]) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt

    captioner.fail = stop_on_third
    plan = _plan(library, out, mode="append", batch_size=1)
    with pytest.raises(CaptionInterrupted) as info:
        _run(plan, captioner)
    assert info.value.report.captioned == 2
    saved = read_captions(out / "captions.json")
    assert saved.unfinished is not None
    assert saved.images["a.jpg"].caption == "a red square, red, square"
    again = ColourCaptioner(tags=True)
    report, _ = _run(plan, again)
    assert (report.captioned, report.resumed) == (3, 2)
    captions = _captions(out)
    assert captions["a.jpg"] == "a red square, red, square"  # not "…, red, square" twice
    assert captions["sub/e.webp"] == "a red square, red, square"
    assert read_captions(out / "captions.json").unfinished is None
    # A new append run (the last one finished) appends again: only parts not yet there.
    report, _ = _run(plan, ColourCaptioner())
    assert report.captioned == 5


def test_a_different_run_does_not_continue_an_unfinished_one(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    captioner = ColourCaptioner()
    captioner.fail = lambda images: (
        (_ for _ in ()).throw(KeyboardInterrupt) if len(captioner.batches) == 1 else None
    )
    with pytest.raises(CaptionInterrupted):
        _run(_plan(library, out, mode="overwrite", batch_size=2), captioner)
    report, _ = _run(_plan(library, out, mode="overwrite", batch_size=2, trigger="x"))
    assert (report.captioned, report.resumed) == (5, 0)


def test_bad_images_are_skipped_with_their_reason_and_the_run_goes_on(
    library: Path, tmp_path: Path
) -> None:
    (library / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (library / "notes.png").write_text("hello", encoding="utf-8")
    out = tmp_path / "out"
    skipped: list[tuple[str, str]] = []
    report = caption_folder(
        _plan(library, out), ColourCaptioner, on_skip=lambda p, r: skipped.append((p, r))
    )
    assert report.captioned == 5
    assert sorted(p for p, _ in skipped) == ["broken.jpg", "notes.png"]
    data = read_captions(out / "captions.json")
    assert set(data.skipped) == {"broken.jpg", "notes.png"}
    assert all(data.skipped.values())
    write_image(library / "broken.jpg", "blue")
    report, _ = _run(_plan(library, out))
    assert report.captioned == 1
    data = read_captions(out / "captions.json")
    assert "broken.jpg" not in data.skipped
    assert data.images["broken.jpg"].caption == "a blue square"


def test_out_of_memory_halves_the_batch_and_loses_nothing(library: Path, tmp_path: Path) -> None:
    captioner = ColourCaptioner()

    def small_gpu(images: Sequence[Image.Image]) -> None:
        if len(images) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    captioner.fail = small_gpu
    report, _ = _run(_plan(library, tmp_path / "out", batch_size=8), captioner)
    assert report.captioned == 5
    assert report.batch_size == 2
    assert report.smaller_batches == 2  # 8 → 4 → 2
    assert max(len(b) for b in captioner.batches) == 2
    assert len(_captions(tmp_path / "out")) == 5


def test_out_of_memory_at_batch_one_says_what_to_do(library: Path, tmp_path: Path) -> None:
    captioner = ColourCaptioner()

    def no_gpu(images: Sequence[Image.Image]) -> None:
        raise RuntimeError("CUDA out of memory")

    captioner.fail = no_gpu
    with pytest.raises(BackendError, match=r"even one image at a time.*--device cpu"):
        _run(_plan(library, tmp_path / "out", batch_size=2), captioner)


def test_a_crash_keeps_what_was_captioned(library: Path, tmp_path: Path) -> None:
    captioner = ColourCaptioner()

    def crash(images: Sequence[Image.Image]) -> None:
        if len(captioner.batches) == 2:
            raise ValueError("model exploded")

    captioner.fail = crash
    out = tmp_path / "out"
    with pytest.raises(BackendError, match=r"captioner failed on .*model exploded"):
        _run(_plan(library, out, batch_size=2), captioner)
    assert len(_captions(out)) == 4
    report, _ = _run(_plan(library, out, batch_size=2))
    assert (report.captioned, report.kept) == (1, 4)


def test_max_batch_and_image_size_are_honoured(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    write_image(root / "big.jpg", "red", size=(4000, 3000))
    write_image(root / "small.png", "blue", size=(40, 30))
    captioner = ColourCaptioner(image_size=500, max_batch=1)
    report, _ = _run(_plan(root, tmp_path / "out", batch_size=8), captioner)
    assert report.batch_size == 1
    assert [len(b) for b in captioner.batches] == [1, 1]
    big = captioner.batches[0][0]
    assert 500 <= max(big) < 4000  # reduced, never below what the captioner asked for
    assert captioner.batches[1][0] == (40, 30)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    image = Image.new("RGB", (80, 40), (220, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° on display
    image.save(root / "rotated.jpg", exif=exif.tobytes())
    captioner = ColourCaptioner()
    _run(_plan(root, tmp_path / "out"), captioner)
    assert captioner.batches == [[(40, 80)]]


def test_wrong_caption_count_is_a_plugin_bug(library: Path, tmp_path: Path) -> None:
    class Lossy(ColourCaptioner):
        def caption(self, images: Sequence[Image.Image]) -> list[Any]:
            return super().caption(images)[:-1]

    with pytest.raises(BackendError, match="returned 1 captions for 2 images"):
        _run(_plan(library, tmp_path / "out", batch_size=2), Lossy())


def test_missing_empty_and_unreadable_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such folder"):
        _run(_plan(tmp_path / "nope", tmp_path / "out"))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x", encoding="utf-8")
    with pytest.raises(InputError, match="no images found"):
        _run(_plan(tmp_path / "empty", tmp_path / "out"))
    write_image(tmp_path / "file.jpg", "red")
    with pytest.raises(InputError, match="not a folder"):
        _run(_plan(tmp_path / "file.jpg", tmp_path / "out"))


def test_a_damaged_captions_file_is_named_and_never_overwritten(
    library: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "captions.json").write_text('{"version": 1, "images": [}', encoding="utf-8")
    with pytest.raises(InputError, match=r"captions.json: not valid JSON"):
        _run(_plan(library, out))
    assert (out / "captions.json").read_text(encoding="utf-8") == '{"version": 1, "images": [}'


def test_sidecars_mirror_the_folder_and_are_rewritten_only_when_changed(
    library: Path, tmp_path: Path
) -> None:
    write_image(library / "a.png", "blue")  # a.jpg and a.png share a stem
    out = tmp_path / "out"
    report, _ = _run(_plan(library, out, sidecars=True, trigger="emma"))
    side = out / "captions"
    assert report.sidecars == 6
    assert (side / "a.jpg.txt").read_text(encoding="utf-8") == "emma, a red square\n"
    assert (side / "a.png.txt").read_text(encoding="utf-8") == "emma, a blue square\n"
    assert (side / "sub" / "d.txt").read_text(encoding="utf-8") == "emma, a green square\n"
    report, _ = _run(_plan(library, out, sidecars=True, trigger="emma"))
    assert report.sidecars == 0


def test_sidecar_names() -> None:
    assert sidecar_names(["x/a.jpg", "x/A.png", "b.jpg", "x/b.jpg"]) == {
        "x/a.jpg": "x/a.jpg.txt",
        "x/A.png": "x/A.png.txt",
        "b.jpg": "b.txt",
        "x/b.jpg": "x/b.txt",
    }


def test_the_file_is_written_atomically_during_the_run(library: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    seen: list[int] = []
    captioner = ColourCaptioner()

    def look(images: Sequence[Image.Image]) -> None:
        path = out / "captions.json"
        if path.exists():
            seen.append(len(json.loads(path.read_text(encoding="utf-8"))["images"]))

    captioner.fail = look
    _run(_plan(library, out, batch_size=1, save_every=2), captioner)
    assert seen == [2, 2, 4]  # saved every 2 images, never half-written
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
