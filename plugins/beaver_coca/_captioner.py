"""The ``coca`` captioner: an open_clip CoCa model, one batched decode per batch of images.

torch and open_clip are imported only inside :func:`load_captioner`, which the plugin's
factory calls. Where the model comes from is :mod:`beaver_coca._sources`; decoding is
:mod:`beaver_coca._generate`.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from beaver.captions.runtime import pick_device, pick_dtype
from beaver.errors import ConfigError, ModelError
from beaver.interfaces import Caption
from beaver_coca import _generate
from beaver_coca._sources import HINT, Source, find_source

if TYPE_CHECKING:
    import torch
    from PIL import Image

    from beaver_coca import CocaOptions

DEFAULTS = {"generation_type": "beam_search", "seq_len": 30}


def load_captioner(options: CocaOptions) -> CocaCaptioner:
    """Find the weights, check they are a CoCa model, load it and its image transform."""
    device = pick_device(options.device)
    dtype = pick_dtype(options.dtype, device)
    if device != "cuda" and options.dtype in ("float16", "bfloat16"):
        raise ConfigError(
            f"--dtype {options.dtype}: the coca captioner uses half precision on CUDA only.",
            hint=f"Use --dtype float32 (or auto) on {device}.",
        )
    source = find_source(options)
    model, preprocess = _create(source, device)
    context = min(int(model.context_length), int(model.text.context_length))
    if options.seq_len > context + 1:
        raise ConfigError(
            f"seq_len {options.seq_len} is longer than this CoCa model's text "
            f"({context} tokens after the start token).",
            hint=f"Set [plugins.coca] seq_len to {context + 1} or less.",
        )
    size = model.visual.image_size
    return CocaCaptioner(
        model,
        preprocess,
        model_id=_model_id(source, options),
        image_size=max(size) if isinstance(size, tuple | list) else int(size),
        device=device,
        dtype=dtype,
        seq_len=options.seq_len,
        generation_type=options.generation_type,
        top_k=options.top_k,
        top_p=options.top_p,
        seed=options.seed,
    )


class CocaCaptioner:
    """Captions batches of RGB images with CoCa. Satisfies :class:`beaver.interfaces.Captioner`."""

    max_batch: int | None = None

    def __init__(
        self,
        model: Any,
        preprocess: Any,
        *,
        model_id: str,
        image_size: int,
        device: str,
        dtype: Any,
        seq_len: int,
        generation_type: str,
        top_k: int,
        top_p: float,
        seed: int,
    ) -> None:
        self.model = model
        self.preprocess = preprocess
        self.model_id = model_id
        self.image_size = image_size
        self.device = device
        self.dtype = dtype
        self.seq_len = seq_len
        self.generation_type = generation_type
        self.top_k = top_k
        self.top_p = top_p
        self.seed = seed

    def caption(self, images: Sequence[Image.Image]) -> list[Caption]:
        """One caption per image, in order, from one batched decode."""
        import open_clip
        import torch

        return [
            Caption(text=clean_caption(open_clip.decode(torch.tensor(tokens[1:]))))
            for tokens in self.generate(images)
        ]

    def generate(self, images: Sequence[Image.Image]) -> list[list[int]]:
        """Each image's caption tokens, from the start token to (without) the end token."""
        if not images:
            return []
        import torch

        pixels = torch.stack(
            [self.preprocess(im if im.mode == "RGB" else im.convert("RGB")) for im in images]
        ).to(self.device)
        with torch.inference_mode(), self._autocast():
            image_embs = self.model(pixels)["image_embs"]
            if self.generation_type == "beam_search":
                return _generate.beam_search(self._next_logits, image_embs, self.seq_len)
            generator = torch.Generator(device=self.device).manual_seed(self.seed)
            return _generate.sample(
                self._next_logits,
                image_embs,
                self.seq_len,
                top_k=self.top_k if self.generation_type == "top_k" else None,
                top_p=self.top_p if self.generation_type == "top_p" else None,
                generator=generator,
            )

    def _next_logits(self, image_embs: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        # The decoder never reads image_latent; any non-None value keeps forward from
        # encoding the images again (as CoCa.generate does).
        out = self.model(
            None, tokens, image_latent=image_embs, image_embs=image_embs, output_labels=False
        )
        logits: torch.Tensor = out["logits"][:, -1]
        return logits

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        import torch

        if self.device == "cuda" and self.dtype != torch.float32:
            autocast: contextlib.AbstractContextManager[Any] = torch.autocast(
                "cuda", dtype=self.dtype
            )
            return autocast
        return contextlib.nullcontext()


def _create(source: Source, device: str) -> tuple[Any, Any]:
    """open_clip's model (on ``device``, in eval mode) and its inference image transform."""
    import open_clip

    preprocess = {f"image_{key}": value for key, value in source.preprocess.items()}
    try:
        with _quiet_open_clip():
            model, _, transform = open_clip.create_model_and_transforms(
                source.name,
                pretrained=source.pretrained,
                device=device,
                force_custom_text=True,
                **preprocess,
            )
    except Exception as exc:  # noqa: BLE001 - corrupt or mismatched files, in many types
        raise ModelError(
            f"{source.label}: could not load this CoCa model ({_summary(exc)}).", hint=HINT
        ) from None
    if not isinstance(model, open_clip.CoCa):  # pragma: no cover - the config check stops it
        raise ModelError(f"{source.label}: not a CoCa model.", hint=HINT)
    model.eval()
    return model, transform


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    """Keep open_clip's loading chatter (root-logger info) off the terminal.

    open_clip calls ``logging.info`` & co., which would also give an unconfigured root
    logger a stderr handler for good; a NullHandler meanwhile prevents that.
    """
    import logging

    root = logging.getLogger()
    level = root.level
    silencer = logging.NullHandler() if not root.handlers else None
    if silencer is not None:
        root.addHandler(silencer)
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)
        if silencer is not None:
            root.removeHandler(silencer)


def _model_id(source: Source, options: CocaOptions) -> str:
    """The source plus its pretrained tag and the generation settings that are not defaults."""
    parts = [f"pretrained: {source.tag}"] if source.tag else []
    if options.generation_type != DEFAULTS["generation_type"]:
        if options.generation_type == "top_k":
            parts.append(f"top_k: {options.top_k}")
        else:
            parts.append(f"top_p: {options.top_p}")
        if options.seed:
            parts.append(f"seed: {options.seed}")
    if options.seq_len != DEFAULTS["seq_len"]:
        parts.append(f"seq_len: {options.seq_len}")
    return f"{source.model_id} ({', '.join(parts)})" if parts else source.model_id


_SPACE_BEFORE = re.compile(r"\s+([.,!?;:]|'(?:s|re|ve|ll|d|m|t)\b)")


def clean_caption(text: str) -> str:
    """A decoded caption without tokenizer markers, BPE spacing or the trailing ' .'."""
    text = text.replace("<start_of_text>", " ").split("<end_of_text>")[0]
    text = _SPACE_BEFORE.sub(r"\1", " ".join(text.split()))
    return text.rstrip(" .")


def _summary(exc: BaseException, limit: int = 200) -> str:
    """The start of an error: torch's state-dict errors put what matters on line two."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = " ".join(lines[:2]) if lines[0].endswith(":") else lines[0]
    return text if len(text) <= limit else text[: limit - 1] + "…"
