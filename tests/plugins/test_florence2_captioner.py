"""The ``florence2`` captioner, through the real factory, on a tiny random Florence-2 in a folder."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import shutil
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("torch")
pytest.importorskip("transformers")

import beaver_florence2
from beaver.errors import ModelError
from beaver.images import open_image
from beaver.interfaces import Caption, Captioner
from beaver.plugins import make_plugin_manager

SIDE = 32
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
EOS_SCALE = 3.0
"""Makes the end token likelier, so some captions end before max_new_tokens."""
SPACE = "Ġ"
"""How the byte-level tokenizer writes a space."""


@pytest.fixture(scope="module")
def tiny_florence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Florence-2 with random weights, saved as transformers' converted checkpoints are."""
    import torch
    from tokenizers import pre_tokenizers
    from transformers import (
        BartTokenizer,
        CLIPImageProcessor,
        Florence2Config,
        Florence2ForConditionalGeneration,
        Florence2Processor,
    )

    folder = tmp_path_factory.mktemp("tiny-florence2")
    # One token per byte (no merges): any text encodes, and each written token is one character.
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {token: i for i, token in enumerate(SPECIALS + alphabet)}
    tokenizer = BartTokenizer(
        vocab=vocab, merges=[], extra_special_tokens={"image_token": "<image>"}
    )
    image_processor = CLIPImageProcessor(
        size={"height": SIDE, "width": SIDE},
        do_center_crop=False,
        # Two vision stages (strides 4 and 2) leave 4x4 patches, plus one pooled token.
        image_seq_length=(SIDE // 8) ** 2 + 1,
    )
    processor = Florence2Processor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        post_processor_config={"pure_text": {}},
    )
    config = Florence2Config(
        text_config={
            "model_type": "bart",
            "vocab_size": len(tokenizer),
            "max_position_embeddings": 128,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "encoder_ffn_dim": 16,
            "decoder_ffn_dim": 16,
            "encoder_attention_heads": 1,
            "decoder_attention_heads": 1,
            "d_model": 16,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "decoder_start_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "depths": [1, 1],
            "patch_size": [7, 3],
            "patch_stride": [4, 2],
            "patch_padding": [3, 1],
            "patch_prenorm": [False, True],
            "embed_dim": [16, 16],
            "num_heads": [1, 1],
            "num_groups": [1, 1],
            "window_size": 4,
            "projection_dim": 16,
            "drop_path_rate": 0.0,
        },
        image_token_id=tokenizer.image_token_id,
    )
    torch.manual_seed(1)
    model = Florence2ForConditionalGeneration(config).eval()
    # The default init (std 0.02) writes the same text whatever the image; bigger weights
    # make captions differ from image to image, so batching mistakes would show.
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() > 1:
                parameter.normal_(0.0, 0.5)
        model.lm_head.weight[vocab["</s>"]] *= EOS_SCALE
    # Lower-case letters, spaces and the end token only: readable captions, one character
    # per token written.
    allowed = {vocab[c] for c in string.ascii_lowercase} | {vocab[SPACE], vocab["</s>"]}
    model.generation_config.suppress_tokens = sorted(set(range(len(tokenizer))) - allowed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def create(model: Path | str, **options: Any) -> Any:
    spec = make_plugin_manager().captioners().get("florence2")
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


def test_the_record_is_ready():
    spec = make_plugin_manager().captioners().get("florence2")

    assert spec.readiness() is None
    assert spec.options is beaver_florence2.Florence2Options
    assert spec.options().model == "florence-community/Florence-2-base"
    assert spec.options().task == "<DETAILED_CAPTION>"


def test_a_transformers_without_florence2_is_reported(monkeypatch):
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "4.56.1")

    message = beaver_florence2.check()

    assert message is not None
    assert message.startswith("needs transformers>=4.57 for its built-in Florence-2")


def test_one_caption_per_image_and_batched_equals_one_by_one(tiny_florence):
    captioner = create(tiny_florence, max_new_tokens=12)
    images = made_images()

    batched = captioner.caption(images)
    alone = [captioner.caption([image])[0] for image in images]

    assert len(batched) == len(images)
    assert all(isinstance(c, Caption) and c.tags == () for c in batched)
    assert all(c.extra == {"task": "<DETAILED_CAPTION>"} for c in batched)
    assert all(set(c.text) <= set(string.ascii_lowercase + " ") for c in batched)
    assert batched == alone
    assert len({c.text for c in batched}) == len(images), "captions should depend on the image"
    # Some rows ended early and were padded in the batch; the padding is not in their text.
    assert min(len(c.text) for c in batched) < max(len(c.text) for c in batched)


def test_what_the_core_reads(tiny_florence):
    captioner = create(tiny_florence, task="<CAPTION>")

    assert isinstance(captioner, Captioner)
    assert captioner.model_id == f"{tiny_florence} <CAPTION>"
    assert captioner.image_size == SIDE
    assert getattr(captioner, "max_batch", None) is None
    assert captioner.caption([]) == []


def test_max_new_tokens_is_honoured(tiny_florence):
    images = made_images()

    short = create(tiny_florence, max_new_tokens=4).caption(images)
    longer = create(tiny_florence, max_new_tokens=30).caption(images)

    # One token per character; the first token is the decoder's start.
    assert all(len(c.text) <= 4 for c in short)
    assert max(len(c.text) for c in longer) > 4


def test_each_task_captions(tiny_florence):
    images = made_images()[:2]

    for task in ("<CAPTION>", "<DETAILED_CAPTION>", "<MORE_DETAILED_CAPTION>"):
        captions = create(tiny_florence, task=task, max_new_tokens=6).caption(images)
        assert [c.extra for c in captions] == [{"task": task}] * 2


def test_an_unknown_task_is_a_config_error(tiny_florence):
    from beaver.errors import ConfigError

    with pytest.raises(ConfigError, match="task"):
        create(tiny_florence, task="<OD>")


def test_beam_search_and_bfloat16(tiny_florence):
    images = made_images()

    captions = create(tiny_florence, num_beams=3, dtype="bfloat16", device="cpu").caption(images)

    assert len(captions) == len(images)
    assert all(isinstance(c.text, str) for c in captions)


def test_microsofts_original_hub_ids_are_refused_before_any_lookup():
    with pytest.raises(ModelError, match="need their own code") as info:
        create("microsoft/Florence-2-large-ft")

    assert info.value.message.startswith("microsoft/Florence-2-large-ft:")
    assert info.value.hint is not None
    assert "florence-community/Florence-2-large" in info.value.hint


def test_a_remote_code_checkpoint_folder_is_refused(tmp_path):
    config = {
        "model_type": "florence2",
        "architectures": ["Florence2ForConditionalGeneration"],
        "auto_map": {
            "AutoConfig": "configuration_florence2.Florence2Config",
            "AutoModelForCausalLM": "modeling_florence2.Florence2ForConditionalGeneration",
        },
        "vision_config": {"model_type": "davit"},
    }
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")

    with pytest.raises(ModelError, match=r"needs its own modeling code .*auto_map") as info:
        create(tmp_path)
    assert str(tmp_path) in info.value.message
    assert info.value.hint is not None
    assert "florence-community/Florence-2-base" in info.value.hint


def test_a_folder_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")

    with pytest.raises(ModelError, match=r"not a Florence-2 model folder \(no config.json\)"):
        create(tmp_path)


def test_another_kind_of_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "blip"}), encoding="utf-8")

    with pytest.raises(ModelError, match="this is a blip model, not Florence-2") as info:
        create(tmp_path)
    assert info.value.hint is not None
    assert "florence-community/Florence-2-base" in info.value.hint


def test_missing_processor_files(tiny_florence, tmp_path):
    folder = copy_model(tiny_florence, tmp_path)
    (folder / "processor_config.json").unlink()

    with pytest.raises(ModelError, match=r"no processor_config.json or preprocessor_config.json"):
        create(folder)


def test_corrupt_weights(tiny_florence, tmp_path):
    folder = copy_model(tiny_florence, tmp_path)
    (folder / "model.safetensors").write_bytes(b"\x00garbage" * 64)

    with pytest.raises(ModelError, match="could not load this Florence-2 model") as info:
        create(folder)
    assert str(folder) in info.value.message


def test_weights_of_another_model(tiny_florence, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = copy_model(tiny_florence, tmp_path)
    weights = load_file(folder / "model.safetensors")
    kept = {k: v for k, v in weights.items() if ".decoder." not in k}
    save_file(kept, folder / "model.safetensors", metadata={"format": "pt"})

    with pytest.raises(ModelError, match=r"the weights lack \d+ of the model.s tensors"):
        create(folder)


def test_a_hub_id_that_is_not_cached_offline():
    with pytest.raises(ModelError) as info:
        create("florence-community/Florence-2-base")

    assert "florence-community/Florence-2-base" in info.value.message
    assert info.value.hint is not None
    assert "hf download florence-community/Florence-2-base" in info.value.hint


@pytest.mark.shared_data
def test_real_photos(tiny_florence, shared_faces: Path):
    with (shared_faces / "MANIFEST.csv").open(encoding="utf-8") as handle:
        files = [row["file"] for row in csv.DictReader(handle)][:4]
    captioner = create(tiny_florence, max_new_tokens=8)
    photos = [open_image(shared_faces / name, max_side=captioner.image_size) for name in files]

    captions = captioner.caption(photos)

    assert len(captions) == len(photos)
    assert all(len(c.text) <= 8 for c in captions)
    assert any(c.text for c in captions)


def copy_model(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    return copy


@pytest.mark.shared_data
def test_beaver_caption_end_to_end_on_real_photos(
    tiny_florence, shared_faces: Path, tmp_path: Path
):
    from beaver.testing.captioncli import caption_photos

    photos = sorted(shared_faces.rglob("*.jpg"))[:4]
    data = caption_photos(photos, tmp_path, "florence2", model=str(tiny_florence))
    assert data["captioner"] == "florence2"
