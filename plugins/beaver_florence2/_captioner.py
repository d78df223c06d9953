"""The ``florence2`` captioner: transformers' built-in Florence-2, one generate call per batch.

Only checkpoints in transformers' own format load (``florence-community/Florence-2-base``
and ``-large``, or a folder saved from one). Microsoft's original checkpoints ship their
own modeling code (config.json names it under ``auto_map``); beaver never runs code from
a model repository, and that code breaks with each new transformers anyway, so those are
refused with the name of the converted checkpoint to use instead.

torch and transformers are imported only inside :func:`load_captioner`, which the plugin's
factory calls.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beaver.captions.hf import (
    LoadedModel,
    load_pretrained,
    processor_side,
    quiet_transformers,
    read_config,
)
from beaver.captions.runtime import looks_like_path, pick_device, pick_dtype, resolve_model
from beaver.errors import ModelError
from beaver.interfaces import Caption

if TYPE_CHECKING:
    from PIL import Image

    from beaver_florence2 import Florence2Options

MODEL_TYPE = "florence2"
DEFAULT_SIDE = 768
REQUIRED_FILES = (
    "config.json",
    "processor_config.json|preprocessor_config.json",
    "tokenizer.json|vocab.json",
    "model.safetensors|model.safetensors.index.json|pytorch_model.bin|pytorch_model.bin.index.json",
)
HUB_FILES = ("*.json", "*.txt", "*.safetensors")
"""What a hub download fetches: configs, tokenizer and safetensors weights."""
CONVERTED = "florence-community/Florence-2-base or florence-community/Florence-2-large"
HINT = f"Use {CONVERTED}, or a folder saved from one."
_MICROSOFT_ID = re.compile(r"microsoft/florence-2-(base|large)(-ft)?", re.IGNORECASE)


def load_captioner(options: Florence2Options) -> Florence2Captioner:
    """Find the weights, check they are Florence-2 in transformers' format, and load them."""
    refuse_original_checkpoint(options.model)
    folder = resolve_model(
        options.model, required=("config.json",), what="Florence-2 model", allow_patterns=HUB_FILES
    )
    check_config(folder)
    resolve_model(str(folder), required=REQUIRED_FILES, what="Florence-2 model")
    device = pick_device(options.device)
    dtype = pick_dtype(options.dtype, device)

    # transformers' from_pretrained is untyped and returns a tuple here: use it as Any.
    transformers: Any = importlib.import_module("transformers")

    processor, model = load_pretrained(
        folder,
        processor=transformers.AutoProcessor.from_pretrained,
        model=transformers.Florence2ForConditionalGeneration.from_pretrained,
        what="Florence-2 model",
        hint=HINT,
        device=device,
        dtype=dtype,
    )
    if not hasattr(processor, "post_process_generation"):
        raise ModelError(
            f"{folder}: its processor is a {type(processor).__name__}, not Florence-2's.",
            hint=HINT,
        )
    return Florence2Captioner(
        model,
        processor,
        model_id=f"{options.model} {options.task}",
        image_size=processor_side(processor.image_processor, DEFAULT_SIDE),
        device=device,
        dtype=dtype,
        task=options.task,
        generate_kwargs={
            "max_new_tokens": options.max_new_tokens,
            "num_beams": options.num_beams,
            "do_sample": False,
        },
    )


@dataclass(kw_only=True)
class Florence2Captioner(LoadedModel):
    """Captions batches of RGB images with one Florence-2 caption task.

    Satisfies :class:`beaver.interfaces.Captioner`.
    """

    task: str

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """One caption per image, in order, from a single ``generate`` call."""
        if not images:
            return []
        import torch

        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        inputs = self.processor(
            text=[self.task] * len(rgb), images=rgb, return_tensors="pt", padding="longest"
        )
        with torch.inference_mode(), quiet_transformers():
            generated = self.model.generate(
                input_ids=inputs["input_ids"].to(self.device),
                attention_mask=inputs["attention_mask"].to(self.device),
                pixel_values=inputs["pixel_values"].to(self.device, self.dtype),
                **self.generate_kwargs,
            )
        texts = self.processor.batch_decode(generated, skip_special_tokens=False)
        return [
            Caption(text=self._answer(str(text), image), extra={"task": self.task})
            for text, image in zip(texts, rgb, strict=True)
        ]

    def _answer(self, text: str, image: Image.Image) -> str:
        # Rows that finished early are padded; the caption tasks' parser drops <s> and </s>
        # but not <pad>.
        pad = self.processor.tokenizer.pad_token
        if pad:
            text = text.replace(str(pad), "")
        parsed = self.processor.post_process_generation(
            text, task=self.task, image_size=(image.width, image.height)
        )
        return " ".join(str(parsed.get(self.task, "")).split())


def refuse_original_checkpoint(model: str) -> None:
    """Microsoft's own hub ids run remote code: name the converted checkpoint instead."""
    if looks_like_path(model):
        return
    found = _MICROSOFT_ID.fullmatch(model.strip())
    if found is None:
        return
    size = found[1].lower()
    raise ModelError(
        f"{model}: Microsoft's original Florence-2 checkpoints need their own code from the "
        "hub, which beaver does not run.",
        hint=f"Use florence-community/Florence-2-{size}, the same weights converted for "
        "transformers' built-in Florence-2.",
    )


def check_config(folder: Path) -> dict[str, Any]:
    """``folder``'s config.json, after checking it is Florence-2 in transformers' format."""
    config = read_config(folder)
    model_type = config.get("model_type")
    if model_type != MODEL_TYPE:
        kind = f"a {model_type}" if isinstance(model_type, str) and model_type else "an unknown"
        raise ModelError(f"{folder}: this is {kind} model, not Florence-2.", hint=HINT)
    vision = config.get("vision_config")
    vision_type = vision.get("model_type") if isinstance(vision, dict) else None
    if "auto_map" in config or vision_type == "davit":
        raise ModelError(
            f"{folder}: this Florence-2 checkpoint needs its own modeling code from the hub "
            "(config.json has auto_map), which beaver does not run.",
            hint=f"Use {CONVERTED} (converted for transformers' built-in Florence-2), or "
            "convert this one with transformers' convert_florence2_original_pytorch_to_hf.py.",
        )
    return config
