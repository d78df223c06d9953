"""The ``blip`` captioner: transformers' BlipForConditionalGeneration, one generate call per batch.

torch and transformers are imported only inside :func:`load_captioner`, which the plugin's
factory calls. Only API that transformers 4.40 already had is used (``BlipProcessor``,
``from_pretrained(output_loading_info=True)``, ``generate(min_new_tokens=...)``).
"""

from __future__ import annotations

import importlib
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
from beaver.captions.runtime import pick_device, pick_dtype, resolve_model
from beaver.errors import ModelError
from beaver.interfaces import Caption

if TYPE_CHECKING:
    from PIL import Image

    from beaver_blip import BlipOptions

MODEL_TYPE = "blip"
ARCHITECTURE = "BlipForConditionalGeneration"
DEFAULT_SIDE = 384
REQUIRED_FILES = (
    "config.json",
    "preprocessor_config.json|processor_config.json",
    "tokenizer.json|vocab.txt",
    "model.safetensors|model.safetensors.index.json|pytorch_model.bin|pytorch_model.bin.index.json",
)
HUB_FILES = ("*.json", "*.txt", "*.safetensors")
"""What a hub download fetches: configs, tokenizer and safetensors weights, not the TF/bin copies."""
HINT = (
    "Use a BLIP captioning model such as Salesforce/blip-image-captioning-large "
    "(or -base), or a folder saved from one."
)


def load_captioner(options: BlipOptions) -> BlipCaptioner:
    """Find the weights, check they are a BLIP captioner, and load model and processor."""
    folder = resolve_model(
        options.model, required=("config.json",), what="BLIP model", allow_patterns=HUB_FILES
    )
    check_config(folder)  # before the other files: "a CLIP model" says more than "no vocab"
    resolve_model(str(folder), required=REQUIRED_FILES, what="BLIP model")
    device = pick_device(options.device)
    dtype = pick_dtype(options.dtype, device)

    # transformers' from_pretrained is untyped and returns a tuple here: use it as Any.
    transformers: Any = importlib.import_module("transformers")

    processor, model = load_pretrained(
        folder,
        processor=transformers.BlipProcessor.from_pretrained,
        model=transformers.BlipForConditionalGeneration.from_pretrained,
        what="BLIP model",
        hint=HINT,
        device=device,
        dtype=dtype,
    )
    prompt = options.prompt
    return BlipCaptioner(
        model,
        processor,
        model_id=options.model if prompt is None else f"{options.model} (prompt: {prompt!r})",
        image_size=processor_side(processor.image_processor, DEFAULT_SIDE),
        device=device,
        dtype=dtype,
        prompt=prompt,
        generate_kwargs={
            "max_new_tokens": options.max_new_tokens,
            "min_new_tokens": options.min_new_tokens,
            "num_beams": options.num_beams,
            "do_sample": False,
        },
    )


@dataclass(kw_only=True)
class BlipCaptioner(LoadedModel):
    """Captions batches of RGB images with BLIP. Satisfies :class:`beaver.interfaces.Captioner`.

    With a ``prompt`` every caption starts with it (as BLIP's tokenizer writes it: lower
    case) and BLIP writes the rest.
    """

    prompt: str | None

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """One caption per image, in order, from a single ``generate`` call."""
        if not images:
            return []
        import torch

        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        text = {"text": [self.prompt] * len(rgb)} if self.prompt else {}
        inputs = self.processor(images=rgb, return_tensors="pt", padding=True, **text)
        tensors = {"pixel_values": inputs["pixel_values"].to(self.device, self.dtype)}
        if self.prompt:
            tensors["input_ids"] = inputs["input_ids"].to(self.device)
            tensors["attention_mask"] = inputs["attention_mask"].to(self.device)
        with torch.inference_mode(), quiet_transformers():
            generated = self.model.generate(**tensors, **self.generate_kwargs)
        texts = self.processor.batch_decode(generated, skip_special_tokens=True)
        extra = {"prompt": self.prompt} if self.prompt else {}
        return [Caption(text=" ".join(str(t).split()), extra=dict(extra)) for t in texts]


def check_config(folder: Path) -> dict[str, Any]:
    """``folder``'s config.json, after checking it describes a BLIP captioning model."""
    config = read_config(folder)
    model_type = config.get("model_type")
    if model_type != MODEL_TYPE:
        kind = f"a {model_type}" if isinstance(model_type, str) and model_type else "an unknown"
        raise ModelError(f"{folder}: this is {kind} model, not BLIP.", hint=HINT)
    architectures = config.get("architectures") or []
    if isinstance(architectures, list) and architectures and ARCHITECTURE not in architectures:
        raise ModelError(
            f"{folder}: this BLIP model is a {architectures[0]}, not a captioning model "
            f"({ARCHITECTURE}).",
            hint=HINT,
        )
    return config
