"""The wd14 tagger plugin, end to end through the plugin manager, on tiny generated taggers."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from beaver.captions.runtime import is_out_of_memory
from beaver.errors import ConfigError, ModelError
from beaver.interfaces import Caption, Captioner
from beaver.plugins import make_plugin_manager
from beaver.testing import tinytagger as tt
from beaver.testing.tinytagger import BLACK, BLUE, GREEN, RED, WHITE, YELLOW, TinyTag

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from beaver_wd14 import check
from beaver_wd14._tagger import (
    CPU,
    CUDA,
    OutOfMemoryError,
    choose_providers,
    mcut_threshold,
)

SCORE_TOLERANCE = 1e-4


def create(model: Path | str, **options: Any) -> Any:
    return make_plugin_manager().captioners().get("wd14").create({"model": str(model), **options})


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("taggers")
    tt.write_tiny_tagger(root / "tagger")
    tt.write_tiny_tagger(root / "batch1", batch=1)
    tt.write_tiny_tagger(root / "batch2", size=64, batch=2)
    tt.write_tiny_tagger(root / "size64", size=64)
    tt.write_tiny_tagger(root / "anysize", size=None)
    return root


@pytest.fixture(scope="module")
def tagger(models: Path) -> Any:
    return create(models / "tagger")


def tags_of(captioner: Any, *images: Image.Image) -> list[tuple[str, ...]]:
    return [c.tags for c in captioner.caption(list(images))]


def test_the_plugin_is_ready_and_satisfies_the_captioner_protocol(models, tagger):
    spec = make_plugin_manager().captioners().get("wd14")

    assert check() is None
    assert spec.readiness() is None
    assert isinstance(tagger, Captioner)
    assert tagger.model_id == str(models / "tagger")
    assert tagger.image_size == 448
    assert tagger.max_batch is None
    assert tagger.providers == [CPU]


def test_solid_colours_get_their_tags_characters_first_then_by_score(tagger):
    red, blue, yellow, green = tagger.caption(
        [tt.solid(RED), tt.solid(BLUE), tt.solid(YELLOW), tt.solid(GREEN)]
    )

    assert red.tags == ("red hair", "1girl", "solo")
    assert red.text == "red hair, 1girl, solo"
    assert blue.tags == ("blue sky", "1girl", "solo")
    # kagamine_rin (0.88) is a character: it comes before ^_^ (0.95).
    assert yellow.tags == ("kagamine rin", "^_^", "1girl", "solo")
    assert green.tags == ("hatsune miku", "1girl", "solo")
    expected = tt.tag_probabilities(YELLOW)
    assert yellow.extra["scores"] == pytest.approx(
        {
            "kagamine rin": expected["kagamine_rin"],
            "^_^": expected["^_^"],
            "1girl": expected["1girl"],
            "solo": expected["solo"],
        },
        abs=SCORE_TOLERANCE,
    )


def test_the_model_sees_bgr(tagger):
    # The tiny model reads channel 0 as blue, like the real taggers: fed RGB, a red
    # photo would come out as "blue sky".
    (red,) = tagger.caption([tt.solid(RED)])

    assert "red hair" in red.tags
    assert "blue sky" not in red.tags


def test_rating_tags_are_reported_apart_unless_asked_for(models, tagger):
    red, blue = tagger.caption([tt.solid(RED), tt.solid(BLUE)])
    rated = create(models / "tagger", rating=True).caption([tt.solid(RED), tt.solid(BLUE)])

    ratings = {"general", "sensitive", "questionable", "explicit"}
    assert not ratings & set(red.tags + blue.tags)  # "general" scores 0.73 everywhere
    assert red.extra["rating"] == "sensitive"
    assert blue.extra["rating"] == "general"
    assert [c.tags for c in rated] == [
        ("sensitive", "red hair", "1girl", "solo"),
        ("general", "blue sky", "1girl", "solo"),
    ]
    assert rated[0].extra["scores"]["sensitive"] == pytest.approx(
        tt.tag_probabilities(RED)["sensitive"], abs=SCORE_TOLERANCE
    )


def test_thresholds_are_strict_and_per_category(models):
    def red_tags(**options: Any) -> tuple[str, ...]:
        return tags_of(create(models / "tagger", **options), tt.solid(RED))[0]

    assert red_tags(general_threshold=0.6) == ("red hair", "1girl")
    assert red_tags(general_threshold=0.95) == ()
    # kagamine_rin scores 0.5 on red: kept above 0.49, not at 0.5.
    assert red_tags(character_threshold=0.49)[0] == "kagamine rin"
    assert "kagamine rin" not in red_tags(character_threshold=0.5)
    green = tags_of(create(models / "tagger", character_threshold=1.0), tt.solid(GREEN))[0]
    assert "hatsune miku" not in green


def test_mcut_cuts_at_the_largest_gap():
    assert mcut_threshold([0.1, 0.9, 0.8, 0.2]) == pytest.approx(0.5)
    assert mcut_threshold([0.95, 0.9, 0.1]) == pytest.approx(0.5)
    assert mcut_threshold([0.7]) is None
    assert mcut_threshold([]) is None


def test_mcut_replaces_the_thresholds(models):
    mcut = create(
        models / "tagger",
        general_mcut=True,
        character_mcut=True,
        general_threshold=0.95,
        character_threshold=0.95,
    )

    red, black = mcut.caption([tt.solid(RED), tt.solid(BLACK)])

    # Red, general: 0.90 0.73 0.55 | 0.27 ...; characters: rin 0.50 | miku 0.004.
    assert red.tags == ("kagamine rin", "red hair", "1girl", "solo")
    # Black, general: 0.88 0.73 0.55 | 0.14 ...
    assert black.tags[1:] == ("hood (clothing)", "1girl", "solo")


def test_character_mcut_never_keeps_scores_of_0_15_or_less(tmp_path):
    tags = [
        TinyTag("general", tt.RATING, 0.0),
        TinyTag("1girl", tt.GENERAL, 1.0),
        TinyTag("weak_character", tt.CHARACTER, -1.82),  # 0.14
        TinyTag("other_character", tt.CHARACTER, -4.0),  # 0.02
    ]
    folder = tt.write_tiny_tagger(tmp_path / "weak", size=32, tags=tags)

    (caption,) = create(folder, character_mcut=True).caption([tt.solid(WHITE)])

    # The gap's midpoint (0.08) would keep weak_character; SmilingWolf's floor does not.
    assert caption.tags == ("1girl",)


def test_underscores_kaomoji_and_brackets(models, tagger):
    yellow, black = tagger.caption([tt.solid(YELLOW), tt.solid(BLACK)])
    raw = create(models / "tagger", remove_underscores=False)
    escaped = create(models / "tagger", escape_brackets=True)

    assert "^_^" in yellow.tags  # a kaomoji keeps its underscore
    assert "kagamine rin" in yellow.tags
    assert "hood (clothing)" in black.tags
    assert tags_of(raw, tt.solid(YELLOW))[0] == ("kagamine_rin", "^_^", "1girl", "solo")
    assert tags_of(escaped, tt.solid(BLACK))[0][0] == "hood \\(clothing\\)"


def test_excluded_tags_match_with_or_without_underscores(models):
    excluding = create(
        models / "tagger",
        exclude_tags=["red_hair", "SOLO", "hood (clothing)", "kagamine rin"],
        escape_brackets=True,
    )

    red, black, yellow = excluding.caption([tt.solid(RED), tt.solid(BLACK), tt.solid(YELLOW)])

    assert red.tags == ("1girl",)
    assert black.tags == ("1girl",)
    assert yellow.tags == ("^_^", "1girl")
    assert "red hair" not in red.extra["scores"]


def test_max_tags_keeps_characters_first(models):
    capped = create(models / "tagger", max_tags=2, rating=True)

    (yellow,) = capped.caption([tt.solid(YELLOW)])

    assert yellow.tags == ("general", "kagamine rin", "^_^")  # the rating tag is extra
    assert set(yellow.extra["scores"]) == set(yellow.tags)


def test_non_square_images_are_padded_with_white_in_the_middle(tagger):
    wide, tall = tagger.caption([tt.solid(RED, (200, 100)), tt.solid(RED, (100, 200))])

    half_red = tt.blend({RED: 1, WHITE: 1})
    assert wide.tags == ("letterboxed", "1girl", "solo")
    assert tall.tags == ("pillarboxed", "1girl", "solo")
    # Padding only below or only on the right would leave red in the top/left strip.
    expected = tt.tag_probabilities(half_red, top=WHITE, left=half_red)
    assert wide.extra["scores"]["letterboxed"] == pytest.approx(expected["letterboxed"], abs=1e-3)


def test_transparency_is_composited_on_white(tagger):
    clear, half, opaque, rgb = tagger.caption(
        [
            tt.solid(RED, alpha=0),
            tt.solid(RED, alpha=128),
            tt.solid(RED, alpha=255),
            tt.solid(RED),
        ]
    )
    palette = Image.new("P", (64, 64), 0)
    palette.putpalette([*RED, *BLUE] * 128)
    palette.info["transparency"] = 0

    assert clear.tags == ("letterboxed", "pillarboxed", "1girl", "solo")  # white
    assert opaque == rgb
    pink = tt.blend({RED: 128, WHITE: 127})
    assert half.extra["scores"]["1girl"] == pytest.approx(
        tt.tag_probabilities(pink)["1girl"], abs=SCORE_TOLERANCE
    )
    assert tags_of(tagger, palette)[0] == clear.tags
    assert tags_of(tagger, Image.new("L", (30, 30), 0))[0][0] == "hood (clothing)"


def test_any_size_of_image(tagger):
    small, wide = tagger.caption([tt.solid(RED, (10, 10)), tt.solid(BLUE, (2000, 100))])

    assert small.tags == ("red hair", "1girl", "solo")
    assert wide.tags[0] == "letterboxed"


def test_a_batch_is_one_call_and_equals_one_by_one(tagger, monkeypatch):
    images = [
        tt.solid(RED),
        tt.solid(BLUE, (300, 120)),
        tt.solid(YELLOW, (50, 90)),
        tt.solid(GREEN, alpha=200),
        tt.solid(BLACK, (7, 7)),
    ]
    alone = [tagger.caption([image])[0] for image in images]
    calls: list[tuple[int, ...]] = []
    run = tagger._session.run

    def counting_run(names: Any, feeds: dict[str, Any]) -> Any:
        calls.append(next(iter(feeds.values())).shape)
        return run(names, feeds)

    monkeypatch.setattr(tagger, "_session", _Proxy(tagger._session, run=counting_run))
    together = tagger.caption(images)

    assert calls == [(5, 448, 448, 3)]
    assert len(together) == 5
    for one, batched in zip(alone, together, strict=True):
        assert batched.tags == one.tags
        assert batched.extra["rating"] == one.extra["rating"]
        assert batched.extra["scores"] == pytest.approx(one.extra["scores"], abs=1e-5)
    assert tagger.caption([]) == []


def test_a_fixed_batch_axis_sets_max_batch(models, tagger):
    one = create(models / "batch1")
    two = create(models / "batch2")
    images = [tt.solid(RED), tt.solid(BLUE), tt.solid(YELLOW)]

    assert one.max_batch == 1
    assert two.max_batch == 2
    assert create(models / "size64").max_batch is None
    # A batch over the limit is split (and the last part padded), not refused.
    expected = tags_of(tagger, *images)
    assert tags_of(one, *images) == expected
    assert tags_of(two, *images) == expected


def test_the_input_size_is_read_from_the_model(models):
    assert create(models / "size64").image_size == 64
    assert create(models / "batch2").image_size == 64
    assert create(models / "anysize").image_size == 448  # open: SmilingWolf's size


def smilingwolf_prepare(image: Image.Image, size: int) -> np.ndarray:
    """SmilingWolf's wd-tagger Space (app.py, prepare_image), on its RGBA input."""
    image = image.convert("RGBA")
    canvas = Image.new("RGBA", image.size, (255, 255, 255))
    canvas.alpha_composite(image)
    image = canvas.convert("RGB")
    max_dim = max(image.size)
    pad_left = (max_dim - image.size[0]) // 2
    pad_top = (max_dim - image.size[1]) // 2
    padded = Image.new("RGB", (max_dim, max_dim), (255, 255, 255))
    padded.paste(image, (pad_left, pad_top))
    if max_dim != size:
        padded = padded.resize((size, size), Image.Resampling.BICUBIC)
    array = np.asarray(padded, dtype=np.float32)[:, :, ::-1]
    return np.expand_dims(array, axis=0)


def test_the_input_follows_smilingwolfs_layout(models, monkeypatch):
    tagger = create(models / "batch1")  # fixed [1, 448, 448, 3], like the v2 exports
    session = tagger._session
    model_input = session.get_inputs()[0]
    assert model_input.shape == [1, 448, 448, 3]
    rng = np.random.default_rng(448)
    noise = rng.integers(0, 256, size=(300, 500, 4), dtype=np.uint8)
    images = [
        Image.fromarray(noise, "RGBA"),  # alpha varies pixel to pixel
        Image.fromarray(noise[:, :, :3].copy(), "RGB").resize((333, 1000)),
        Image.fromarray(noise[:200, :200, :3].copy(), "RGB"),  # upscaled
    ]
    fed: list[np.ndarray] = []
    run = session.run

    def recording_run(names: Any, feeds: dict[str, Any]) -> Any:
        fed.append(feeds[model_input.name])
        return run(names, feeds)

    monkeypatch.setattr(tagger, "_session", _Proxy(session, run=recording_run))
    tagger.caption(images)

    assert len(fed) == 3
    for image, batch in zip(images, fed, strict=True):
        assert batch.dtype == np.float32
        assert batch.flags.c_contiguous
        np.testing.assert_array_equal(batch, smilingwolf_prepare(image, 448))


def test_model_id_names_the_options_that_change_the_tags(models):
    folder = str(models / "tagger")

    assert create(folder, device="cpu").model_id == folder
    changed = create(folder, general_threshold=0.5, exclude_tags=["solo"]).model_id
    assert changed == f"{folder} (general_threshold=0.5, exclude_tags=['solo'])"


def test_providers_follow_the_device():
    assert choose_providers("auto", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("auto", ["AzureExecutionProvider", CPU]) == [CPU]
    assert choose_providers("cpu", [CUDA, CPU]) == [CPU]
    assert choose_providers("cuda", [CUDA, CPU]) == [CUDA, CPU]
    assert choose_providers("mps", ["CoreMLExecutionProvider", CPU])[0] == (
        "CoreMLExecutionProvider"
    )
    with pytest.raises(ConfigError, match="no CUDAExecutionProvider"):
        choose_providers("cuda", [CPU])
    with pytest.raises(ConfigError, match="no CoreMLExecutionProvider"):
        choose_providers("mps", [CPU])


def test_cuda_without_a_cuda_onnxruntime_is_a_config_error(models):
    import onnxruntime

    if CUDA in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ConfigError, match="onnxruntime-gpu"):
        create(models / "tagger", device="cuda")


def test_bad_options_are_config_errors(models):
    with pytest.raises(ConfigError, match="device"):
        create(models / "tagger", device="tpu")
    with pytest.raises(ConfigError, match="thresh: Extra inputs"):
        create(models / "tagger", thresh=0.5)


class _FakeOrtError(Exception):
    """Stands in for onnxruntime's pybind exception types."""


_FakeOrtError.__module__ = "onnxruntime.capi.onnxruntime_pybind11_state"


class _Proxy:
    """A session whose ``run`` is replaced; everything else is the real session's."""

    def __init__(self, session: Any, run: Any) -> None:
        self._session = session
        self.run = run

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def test_out_of_memory_asks_the_caption_loop_for_a_smaller_batch(models, monkeypatch):
    tagger = create(models / "tagger")

    def failing_run(names: Any, feeds: Any) -> Any:
        msg = "[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory for buffer"
        raise _FakeOrtError(msg)

    monkeypatch.setattr(tagger, "_session", _Proxy(tagger._session, run=failing_run))

    with pytest.raises(OutOfMemoryError) as caught:
        tagger.caption([tt.solid(RED), tt.solid(BLUE)])

    assert is_out_of_memory(caught.value)


def test_an_onnxruntime_failure_names_the_model(models, monkeypatch):
    tagger = create(models / "tagger")

    def failing_run(names: Any, feeds: Any) -> Any:
        raise _FakeOrtError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code")

    monkeypatch.setattr(tagger, "_session", _Proxy(tagger._session, run=failing_run))

    with pytest.raises(ModelError, match=r"model\.onnx: the tagger failed on a batch of 1"):
        tagger.caption([tt.solid(RED)])


# --- errors ---------------------------------------------------------------------------


def copy_tagger(models: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(models / "tagger", tmp_path / "copy"))


def test_a_folder_that_is_not_a_tagger(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")

    with pytest.raises(ModelError, match=r"not a WD14 tagger folder \(no selected_tags\.csv\)"):
        create(tmp_path)
    with pytest.raises(ModelError, match="no such model folder"):
        create(tmp_path / "missing")


def test_a_missing_hub_model_offline_names_it():
    with pytest.raises(ModelError, match=r"SmilingWolf/wd-swinv2-tagger-v3: .*HF_HUB_OFFLINE"):
        make_plugin_manager().captioners().get("wd14").create({})


def test_a_tag_list_with_the_wrong_header(models, tmp_path):
    folder = copy_tagger(models, tmp_path)
    (folder / "selected_tags.csv").write_text("id,tag,kind\n1,a,0\n", encoding="utf-8")

    with pytest.raises(ModelError) as caught:
        create(folder)

    assert "selected_tags.csv: not a WD14 tag list" in caught.value.message
    assert "tag_id,name,category,count" in caught.value.message
    assert caught.value.hint


def test_a_tag_list_with_a_bad_row_names_its_line(models, tmp_path):
    folder = copy_tagger(models, tmp_path)
    path = folder / "selected_tags.csv"
    rows = path.read_text(encoding="utf-8").splitlines()
    rows[3] = "9000002,questionable,rating,10"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")

    with pytest.raises(ModelError, match=r"selected_tags\.csv, line 4: not a tag row"):
        create(folder)


def test_an_empty_tag_list(models, tmp_path):
    folder = copy_tagger(models, tmp_path)
    (folder / "selected_tags.csv").write_text("tag_id,name,category,count\n", encoding="utf-8")

    with pytest.raises(ModelError, match="has no tags"):
        create(folder)


def test_a_tag_list_that_does_not_match_the_model(models, tmp_path):
    folder = copy_tagger(models, tmp_path)
    path = folder / "selected_tags.csv"
    with path.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows[:-1])

    with pytest.raises(ModelError) as caught:
        create(folder)

    assert "model.onnx: the model gives ['batch_size', 14] scores" in caught.value.message
    assert "selected_tags.csv lists 13 tags" in caught.value.message


def test_a_corrupt_model_file(models, tmp_path):
    folder = copy_tagger(models, tmp_path)
    (folder / "model.onnx").write_bytes(b"\x08\x07garbage, not a protobuf" * 10)

    with pytest.raises(ModelError) as caught:
        create(folder)

    assert caught.value.message.startswith(f"{folder / 'model.onnx'}: not a readable ONNX model")
    assert "selected_tags.csv" in (caught.value.hint or "")


def test_the_wrong_kind_of_onnx_model(models, tmp_path):
    from beaver.testing.tinymodels import write_tiny_recognizer

    folder = copy_tagger(models, tmp_path)
    write_tiny_recognizer(folder / "model.onnx")  # [N, 3, 112, 112] in: channels first

    with pytest.raises(ModelError, match=r"model\.onnx: not a WD14-style tagger"):
        create(folder)


# --- real photos ----------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_photos(shared_faces: Path, tagger):
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as handle:
        files = [shared_faces / row["file"] for row in csv.DictReader(handle)][:4]
    images = []
    for path in files:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))

    captions = tagger.caption(images)

    assert len(captions) == 4
    for caption in captions:
        assert isinstance(caption, Caption)
        assert caption.tags
        assert caption.text == ", ".join(caption.tags)
        assert caption.extra["rating"] in {"general", "sensitive", "questionable", "explicit"}
