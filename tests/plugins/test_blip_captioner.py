"""The ``blip`` captioner, run through the real factory on a tiny random BLIP saved to a folder."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")

import beaver_blip
from beaver.errors import ConfigError, ModelError
from beaver.images import open_image
from beaver.interfaces import Caption, Captioner
from beaver.plugins import make_plugin_manager

SIDE = 32
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
WORDS = [
    *("a", "an", "the", "of", "photo", "photography", "man", "woman", "child", "dog", "cat"),
    *("sitting", "standing", "walking", "on", "in", "with", "near", "red", "blue", "green"),
    *("old", "young", "beach", "street", "room"),
]


@pytest.fixture(scope="module")
def tiny_blip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A BLIP captioner with random weights, saved as `save_pretrained` writes a real one."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder = tmp_path_factory.mktemp("tiny-blip")
    vocab = {token: i for i, token in enumerate(SPECIALS + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]")
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": SIDE, "width": SIDE}),
        tokenizer=tokenizer,
    )
    config = BlipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 1,
            "encoder_hidden_size": 16,
            "max_position_embeddings": 128,
            "bos_token_id": vocab["[DEC]"],
            "sep_token_id": vocab["[SEP]"],
            "eos_token_id": vocab["[SEP]"],
            "pad_token_id": vocab["[PAD]"],
        },
        vision_config={
            "hidden_size": 16,
            "intermediate_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 1,
            "image_size": SIDE,
            "patch_size": 8,
        },
        projection_dim=16,
        image_text_hidden_size=16,
    )
    torch.manual_seed(1)
    model = BlipForConditionalGeneration(config).eval()
    # The default init (std 0.02) writes the same word whatever the image; bigger weights
    # make captions differ from image to image, so batching mistakes would show.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.5)
        # Only whole words and the end token, so a caption's words count the tokens written
        # (BLIP's generate reads its text decoder's generation config, not the saved one).
        head = model.text_decoder.cls.predictions
        unwanted = [vocab[t] for t in SPECIALS if t != "[SEP]"]
        head.decoder.bias[unwanted] = -1e4
        head.bias[unwanted] = -1e4
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def create(model: Path | str, **options: Any) -> Any:
    spec = make_plugin_manager().captioners().get("blip")
    return spec.create({"model": str(model), "num_beams": 1, **options})


def made_images() -> list[Image.Image]:
    """Images of the sizes the core may hand over: tiny, very wide, tall, square."""
    rng = np.random.default_rng(7)
    gradient = np.linspace(0, 255, 2000 * 100 * 3).reshape(100, 2000, 3).astype(np.uint8)
    return [
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)),
        Image.fromarray(gradient),
        Image.fromarray(rng.integers(0, 256, (300, 120, 3), dtype=np.uint8)),
        Image.new("RGB", (64, 64), (200, 30, 30)),
    ]


def word_count(caption: Caption) -> int:
    return len(caption.text.split())


def test_the_record_is_ready():
    spec = make_plugin_manager().captioners().get("blip")

    assert spec.readiness() is None
    assert spec.options is beaver_blip.BlipOptions
    assert spec.options().model == "Salesforce/blip-image-captioning-large"


def test_an_old_transformers_is_reported(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "4.30.2")

    assert beaver_blip.check() == (
        "needs transformers>=4.40 (found 4.30.2): pip install -U 'transformers>=4.40'"
    )


def test_one_caption_per_image_and_batched_equals_one_by_one(tiny_blip):
    captioner = create(tiny_blip, max_new_tokens=8)
    images = made_images()

    batched = captioner.caption(images)
    alone = [captioner.caption([image])[0] for image in images]

    assert len(batched) == len(images)
    assert all(isinstance(c, Caption) and c.tags == () and c.extra == {} for c in batched)
    assert batched == alone
    # Rows end at different lengths (one at once): the batch was padded, and it did not matter.
    assert len({c.text for c in batched}) == len(images), "captions should depend on the image"


def test_what_the_core_reads(tiny_blip):
    captioner = create(tiny_blip)

    assert isinstance(captioner, Captioner)
    assert captioner.model_id == str(tiny_blip)
    assert captioner.image_size == SIDE
    assert getattr(captioner, "max_batch", None) is None
    assert captioner.caption([]) == []


def test_max_new_tokens_is_honoured(tiny_blip):
    images = made_images()

    short = create(tiny_blip, max_new_tokens=3).caption(images)
    longer = create(tiny_blip, max_new_tokens=20).caption(images)

    assert all(word_count(c) <= 3 for c in short)
    assert max(word_count(c) for c in longer) > 3


def test_min_new_tokens_is_honoured(tiny_blip):
    images = made_images()

    captions = create(tiny_blip, max_new_tokens=8, min_new_tokens=4).caption(images)

    assert min(word_count(c) for c in create(tiny_blip, max_new_tokens=8).caption(images)) < 4
    assert all(4 <= word_count(c) <= 8 for c in captions)


def test_min_new_tokens_above_max_is_a_config_error(tiny_blip):
    with pytest.raises(ConfigError, match="min_new_tokens"):
        create(tiny_blip, max_new_tokens=5, min_new_tokens=6)


def test_a_prompt_starts_every_caption(tiny_blip):
    images = made_images()
    captioner = create(tiny_blip, prompt="A photography of", max_new_tokens=5)

    captions = captioner.caption(images)

    assert len(captions) == len(images)
    # BLIP's uncased tokenizer writes the prompt back in lower case.
    assert all(c.text.startswith("a photography of") for c in captions)
    assert all(3 <= word_count(c) <= 3 + 5 for c in captions)
    assert max(word_count(c) for c in captions) > 3
    assert all(c.extra == {"prompt": "A photography of"} for c in captions)
    assert captioner.model_id == f"{tiny_blip} (prompt: 'A photography of')"


def test_a_blank_prompt_is_no_prompt(tiny_blip):
    assert create(tiny_blip, prompt="  ").model_id == str(tiny_blip)


def test_beam_search_and_bfloat16(tiny_blip):
    images = made_images()

    captions = create(tiny_blip, num_beams=3, dtype="bfloat16", device="cpu").caption(images)

    assert len(captions) == len(images)
    assert all(isinstance(c.text, str) for c in captions)


def test_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")

    with pytest.raises(ModelError, match=r"not a BLIP model folder \(no config.json\)") as info:
        create(tmp_path)
    assert str(tmp_path) in info.value.message


def test_a_missing_folder(tmp_path):
    with pytest.raises(ModelError, match="no such model folder"):
        create(tmp_path / "gone")


def test_another_kind_of_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip"}), encoding="utf-8")

    with pytest.raises(ModelError, match="this is a clip model, not BLIP") as info:
        create(tmp_path)
    assert info.value.hint is not None
    assert "Salesforce/blip-image-captioning-large" in info.value.hint


def test_a_blip_that_does_not_caption(tiny_blip, tmp_path):
    folder = copy_model(tiny_blip, tmp_path)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["architectures"] = ["BlipForQuestionAnswering"]
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(ModelError, match="is a BlipForQuestionAnswering, not a captioning model"):
        create(folder)


def test_a_config_that_is_not_json(tmp_path):
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")

    with pytest.raises(ModelError, match="not a readable model config"):
        create(tmp_path)


def test_missing_tokenizer_files(tiny_blip, tmp_path):
    folder = copy_model(tiny_blip, tmp_path)
    (folder / "tokenizer.json").unlink()

    with pytest.raises(ModelError, match=r"no tokenizer.json or vocab.txt"):
        create(folder)


def test_corrupt_weights(tiny_blip, tmp_path):
    folder = copy_model(tiny_blip, tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 64)

    with pytest.raises(ModelError, match="could not load this BLIP model") as info:
        create(folder)
    assert str(folder) in info.value.message


def test_weights_of_another_model(tiny_blip, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_model(tiny_blip, tmp_path)
    weights = load_file(folder / "model.safetensors")
    kept = {k: v for k, v in weights.items() if not k.startswith("text_decoder.")}
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})

    with pytest.raises(ModelError, match=r"the weights lack \d+ of the model.s tensors"):
        create(folder)


def test_a_hub_id_that_is_not_cached_offline():
    with pytest.raises(ModelError) as info:
        create("nobody/no-such-blip")

    assert "nobody/no-such-blip" in info.value.message
    assert info.value.hint is not None
    assert "hf download nobody/no-such-blip" in info.value.hint


@pytest.mark.shared_data
def test_real_photos(tiny_blip, shared_faces: Path):
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as handle:
        files = [row["file"] for row in csv.DictReader(handle)][:4]
    captioner = create(tiny_blip, max_new_tokens=6)
    photos = [open_image(shared_faces / name, max_side=captioner.image_size) for name in files]

    captions = captioner.caption(photos)

    assert len(captions) == len(photos)
    assert all(word_count(c) <= 6 for c in captions)
    assert any(c.text for c in captions)


def copy_model(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    return copy


@pytest.mark.shared_data
def test_beaver_caption_end_to_end_on_real_photos(tiny_blip, shared_faces: Path, tmp_path: Path):
    from beaver.testing.captioncli import caption_photos

    photos = sorted(shared_faces.rglob("*.jpg"))[:4]
    data = caption_photos(photos, tmp_path, "blip", model=str(tiny_blip))
    assert data["captioner"] == "blip"
