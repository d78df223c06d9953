"""Dataset quality: duplicates, resolution, blur and photos of other people."""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from beaver.prep.quality import (
    BLUR_THRESHOLD,
    ImageFacts,
    QualityIssue,
    assess,
    dhash,
    duplicate_groups,
    flag_other_people,
    measure,
    phash,
    sharpness,
)


def photo(seed: int, size: tuple[int, int] = (900, 700)) -> Image.Image:
    """A photo-like image: smooth large shapes, hard edges and fine grain."""
    rng = np.random.default_rng(seed)
    field = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
    image = Image.fromarray(field).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y = int(rng.integers(0, size[0])), int(rng.integers(0, size[1]))
        w, h = int(rng.integers(20, 200)), int(rng.integers(20, 200))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.rectangle((x, y, x + w, y + h), fill=colour)
    grain = rng.normal(0, 12, (size[1], size[0], 3))
    pixels = np.clip(np.asarray(image, dtype=np.float64) + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def save(image: Image.Image, path: Path, quality: int = 92) -> Path:
    image.save(path, quality=quality)
    return path


def facts(
    name: str,
    *,
    size: tuple[int, int] = (1000, 800),
    sha: str | None = None,
    hashes: tuple[int, int] = (0, 0),
    sharp: float = 500.0,
) -> ImageFacts:
    return ImageFacts(
        path=Path(name),
        width=size[0],
        height=size[1],
        sha256=sha or name,
        dhash=hashes[0],
        phash=hashes[1],
        sharpness=sharp,
    )


def test_measure_reads_size_checksum_and_hashes(tmp_path: Path) -> None:
    path = save(photo(1, (1600, 1200)), tmp_path / "a.jpg")
    got = measure(path)
    assert (got.width, got.height) == (1600, 1200)
    assert len(got.sha256) == 64
    assert 0 <= got.dhash < 2**64
    assert 0 <= got.phash < 2**64
    assert got.sharpness > BLUR_THRESHOLD


def test_blurred_photos_score_below_the_threshold() -> None:
    for seed in range(4):
        image = photo(seed, (512, 400))
        assert sharpness(np.asarray(image)) > 5 * BLUR_THRESHOLD
        for radius in (3, 6):
            blurred = np.asarray(image.filter(ImageFilter.GaussianBlur(radius)))
            assert sharpness(blurred) < BLUR_THRESHOLD


def test_sharpness_of_a_face_box() -> None:
    sharp = np.asarray(photo(3, (600, 600)))
    soft = np.array(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(5)))
    soft[100:300, 100:300] = sharp[100:300, 100:300]
    assert sharpness(soft, (100, 100, 300, 300)) > 5 * BLUR_THRESHOLD
    assert sharpness(soft, (350, 350, 580, 580)) < BLUR_THRESHOLD
    assert sharpness(soft, (10, 10, 11, 11)) == 0.0


def test_resized_and_reencoded_copies_are_near_duplicates(tmp_path: Path) -> None:
    original = photo(7, (1920, 1080))
    paths = [save(original, tmp_path / "full.jpg")]
    for width in (1280, 854, 426):
        small = original.resize((width, width * 9 // 16), Image.Resampling.LANCZOS)
        paths.append(save(small, tmp_path / f"w{width}.jpg", quality=60))
    buffer = io.BytesIO()
    original.save(buffer, "PNG")
    (tmp_path / "copy.png").write_bytes(buffer.getvalue())
    paths.append(tmp_path / "copy.png")
    others = [save(photo(seed, (1920, 1080)), tmp_path / f"o{seed}.jpg") for seed in (8, 9, 10)]
    measured = [measure(p) for p in paths + others]
    assert duplicate_groups(measured) == [[0, 1, 2, 3, 4]]
    report = assess(measured)
    kept = [v.path for v in report.verdicts if not v.excluded]
    # The full-size JPEG and the PNG have the same pixels count: the sharper or first by path.
    assert len(kept) == 4
    assert set(others) <= set(kept)
    assert kept[0] in (paths[0], paths[4])
    assert report.count(QualityIssue.DUPLICATE) == 4
    assert {v.duplicate_of for v in report.verdicts if v.duplicate_of} == {kept[0]}


def test_exact_duplicates_are_grouped_by_checksum(tmp_path: Path) -> None:
    first = save(photo(11), tmp_path / "b.jpg")
    shutil.copy(first, tmp_path / "a.jpg")
    report = assess([measure(first), measure(tmp_path / "a.jpg")])
    assert [v.excluded for v in report.verdicts] == [True, False]  # a.jpg: first by path
    assert report.verdicts[0].duplicate_of == tmp_path / "a.jpg"


def test_keep_one_prefers_resolution_then_sharpness_then_path() -> None:
    same = (5, 5)
    group = [
        facts("c.jpg", size=(800, 600), hashes=same, sharp=900),
        facts("b.jpg", size=(1600, 1200), hashes=same, sharp=100),
        facts("a.jpg", size=(1600, 1200), hashes=same, sharp=50),
        facts("d.jpg", size=(1600, 1200), hashes=same, sharp=100),
    ]
    report = assess(group)
    assert [v.excluded for v in report.verdicts] == [True, False, True, True]


def test_hamming_threshold_on_both_hashes() -> None:
    near = facts("a", hashes=(0, 0)), facts("b", hashes=(0b1111111111, 0b111111))
    far_p = facts("a", hashes=(0, 0)), facts("b", hashes=(0, 0b1111111))
    far_d = facts("a", hashes=(0, 0)), facts("b", hashes=(0b11111111111, 0))
    assert duplicate_groups(near) == [[0, 1]]
    assert duplicate_groups(far_p) == []
    assert duplicate_groups(far_d) == []


def test_resolution_blur_and_other_people_flags() -> None:
    items = [
        facts("ok.jpg", hashes=(1, 1)),
        facts("small.jpg", size=(640, 480), hashes=(2**40 - 1, 2**40 - 1)),
        facts("blurry.jpg", sharp=BLUR_THRESHOLD / 2, hashes=(2**63, 2**63 + 2**62 - 1)),
        facts("stranger.jpg", hashes=(2**64 - 1, 2**64 - 1)),
        facts("noface.jpg", hashes=(2**32 - 1 << 16, 2**32 - 1 << 16)),
    ]
    found: dict[Path, bool | None] = {Path("stranger.jpg"): False, Path("noface.jpg"): None}
    report = assess(items, target_found=found)
    assert [v.issues for v in report.verdicts] == [
        (),
        (QualityIssue.LOW_RESOLUTION,),
        (QualityIssue.BLURRED,),
        (QualityIssue.OTHER_PEOPLE,),
        (),
    ]
    assert report.kept == (Path("ok.jpg"), Path("noface.jpg"))
    assert report.summary() | {} == {
        "duplicates": 0,
        "low_resolution": 1,
        "blurred": 1,
        "other_people": 1,
        "excluded": 3,
        "kept": 2,
        "min_side": 512,
        "blur_threshold": BLUR_THRESHOLD,
        "max_phash_distance": 6,
        "keep_all": False,
    }
    assert len(report.messages()) == 3
    assert assess(items, min_side=1024).count(QualityIssue.LOW_RESOLUTION) == 5


def test_keep_all_keeps_flagged_photos_but_one_copy_of_duplicates() -> None:
    items = [
        facts("a.jpg", size=(300, 300), hashes=(7, 7)),
        facts("b.jpg", size=(200, 200), hashes=(7, 7)),
    ]
    report = assess(items, keep_all=True)
    assert [v.excluded for v in report.verdicts] == [False, True]
    assert "kept (--keep-all)" in report.messages()[1]
    everything = assess(items, keep_all=True, keep_duplicates=True)
    assert everything.excluded == ()
    only_dups = assess(items, keep_duplicates=True)
    assert only_dups.excluded == (Path("a.jpg"), Path("b.jpg"))  # both too small


def test_flag_other_people() -> None:
    assert flag_other_people(False)
    assert not flag_other_people(True)
    assert not flag_other_people(None)


def test_hashes_of_pixels_match_measure(tmp_path: Path) -> None:
    image = photo(21, (500, 400))
    path = tmp_path / "p.png"
    image.save(path)
    got = measure(path)
    assert (got.dhash, got.phash) == (dhash(np.asarray(image)), phash(np.asarray(image)))


def test_dedupe_of_ten_thousand_hashes() -> None:
    rng = random.Random(5)
    items = [
        facts(f"{k:05}", hashes=(rng.getrandbits(64), rng.getrandbits(64))) for k in range(10_000)
    ]
    planted = []
    for k in range(0, 10_000, 1000):
        d, p = items[k].dhash, items[k].phash
        flip = sum(1 << b for b in rng.sample(range(64), 5))
        items.append(facts(f"copy{k}", hashes=(d ^ flip, p ^ flip)))
        planted.append([k, len(items) - 1])
    assert duplicate_groups(items) == planted


@pytest.mark.shared_data
def test_real_photos(shared_faces: Path) -> None:
    from beaver.images import find_images

    measured = [measure(p) for p in find_images([shared_faces])]
    assert len(measured) >= 290
    groups = [sorted(measured[k].path.name for k in g) for g in duplicate_groups(measured)]
    assert ["obama-1080p.jpg", "obama-240p.jpg", "obama-480p.jpg", "obama-720p.jpg"] in groups
    # Every other group is a re-encoded copy of one photo, never two film stills.
    assert all(len(g) == 2 for g in groups if "obama-240p.jpg" not in g)
    assert len(groups) <= 8
    assert not any(
        "jurassic" in str(measured[k].path) for g in duplicate_groups(measured) for k in g
    )
    report = assess(measured)
    kept_obama = [p.name for p in report.kept if p.name.startswith("obama-")]
    assert kept_obama == ["obama-1080p.jpg"]
    assert report.count(QualityIssue.BLURRED) <= 0.03 * len(measured)


def test_popcount_without_numpy_2(monkeypatch: pytest.MonkeyPatch) -> None:
    from beaver.prep import quality

    values = np.array([0, 1, 2**64 - 1, 0b1011], dtype=np.uint64)
    monkeypatch.delattr(np, "bitwise_count", raising=False)
    assert quality._popcount(values).tolist() == [0, 1, 64, 3]
