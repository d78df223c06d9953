"""Where a CoCa model's files are: ``--model`` (+ ``pretrained``) → local files for open_clip.

``--model`` is one of:

* an open_clip architecture (``coca_ViT-L-14``, ``coca_ViT-B-32``) with ``pretrained`` a
  tag (its weights come from the hub repo open_clip names for it) or a checkpoint file;
* a hub id (``laion/CoCa-ViT-L-14-laion2B-s13B-b90k``, or ``hf-hub:`` + id): a repo in
  open_clip's format (``open_clip_config.json`` + weights), or one of the repos open_clip's
  own pretrained tags point at, some of which hold weights only;
* a folder in that same format (open_clip's ``local-dir:``; the prefix is optional).

Hub files are found with :func:`beaver.captions.runtime.resolve_model`: the HF cache
first, a download only when the hub is allowed, one-line errors otherwise; open_clip itself
only ever gets local files. open_clip is imported inside the functions that need it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from beaver.captions.runtime import looks_like_path, resolve_model
from beaver.errors import ConfigError, ModelError

if TYPE_CHECKING:
    from beaver_coca import CocaOptions

CONFIG = "open_clip_config.json"
WEIGHTS = ("open_clip_model.safetensors", "open_clip_pytorch_model.safetensors")
PICKLED_WEIGHTS = "open_clip_pytorch_model.bin"
HUB_FILES = (CONFIG, *WEIGHTS, PICKLED_WEIGHTS)
REQUIRED_WEIGHTS = "|".join((*WEIGHTS, PICKLED_WEIGHTS))
CHECKPOINT_SUFFIXES = (".bin", ".pt", ".pth", ".safetensors")
HUB_PREFIX = "hf-hub:"
FOLDER_PREFIX = "local-dir:"
VOCAB = 49408
"""Tokens in open_clip's CLIP tokenizer, the only one its CoCa decoding speaks."""
WHAT = "CoCa model"
HINT = (
    "Use an open_clip CoCa model: coca_ViT-L-14 or coca_ViT-B-32 with a pretrained tag, "
    "a hub id such as laion/mscoco_finetuned_CoCa-ViT-L-14-laion2B-s13B-b90k, "
    "or a folder holding open_clip_config.json and the weights."
)


@dataclass(frozen=True)
class Source:
    """Where the model comes from, as open_clip's ``create_model_and_transforms`` takes it."""

    name: str
    """An architecture name, or ``local-dir:`` + folder."""
    label: str
    """The file or folder that errors name."""
    model_id: str
    """What captions.json records, before the settings in parentheses."""
    pretrained: str | None = None
    """The checkpoint file for an architecture name."""
    tag: str | None = None
    """``pretrained`` as the user gave it (a tag or a file), for an architecture name."""
    preprocess: dict[str, Any] = field(default_factory=dict)
    """A pretrained tag's image settings (mean, std, interpolation, resize_mode)."""


def find_source(options: CocaOptions) -> Source:
    """Turn ``model`` (+ ``pretrained``) into local files open_clip can load; raises ModelError."""
    model = options.model.strip()
    if model.startswith(FOLDER_PREFIX):
        return _folder_source(model.removeprefix(FOLDER_PREFIX), options)
    if model.startswith(HUB_PREFIX):
        return _hub_source(model.removeprefix(HUB_PREFIX), options)
    if looks_like_path(model):
        return _folder_source(model, options)
    if "/" in model:
        return _hub_source(model, options)
    return _architecture_source(model, options.pretrained)


def _folder_source(text: str, options: CocaOptions) -> Source:
    _no_pretrained(text, options)
    folder = Path(text).expanduser()
    weights = [folder / name for name in (*WEIGHTS, PICKLED_WEIGHTS) if (folder / name).is_file()]
    if weights and not (folder / CONFIG).is_file():
        raise ModelError(
            f"{folder}: open_clip weights without the {CONFIG} that names their architecture.",
            hint="Set --model to the architecture (e.g. coca_ViT-L-14) and [plugins.coca] "
            f"pretrained to {weights[0]}.",
        )
    folder = resolve_model(text, required=(CONFIG, REQUIRED_WEIGHTS), what=WHAT)
    check_model_config(read_config(folder), folder / CONFIG)
    return Source(name=f"{FOLDER_PREFIX}{folder}", label=str(folder), model_id=str(folder))


def _hub_source(repo_id: str, options: CocaOptions) -> Source:
    _no_pretrained(repo_id, options)
    known = known_repos().get(repo_id)
    required = (REQUIRED_WEIGHTS,) if known else (CONFIG, REQUIRED_WEIGHTS)
    folder = resolve_model(repo_id, required=required, what=WHAT, allow_patterns=HUB_FILES)
    if (folder / CONFIG).is_file() or known is None:
        check_model_config(read_config(folder), folder / CONFIG)
        return Source(name=f"{FOLDER_PREFIX}{folder}", label=repo_id, model_id=repo_id)
    # One of open_clip's own repos that holds only weights: the architecture comes from
    # open_clip's built-in config, as for its pretrained tag.
    arch, tag = known
    weights = _pick_weights(folder, (*WEIGHTS, PICKLED_WEIGHTS))
    return Source(
        name=arch,
        label=repo_id,
        model_id=repo_id,
        pretrained=str(weights),
        preprocess=_tag_preprocess(arch, tag),
    )


def _architecture_source(arch: str, pretrained: str) -> Source:
    import open_clip

    config = open_clip.get_model_config(arch)
    if config is None:
        raise ConfigError(
            f"{arch}: not an open_clip architecture, a hub id (owner/name) or an existing folder.",
            hint=f"CoCa architectures here: {', '.join(coca_architectures())}. {HINT}",
        )
    check_model_config(config, arch)
    if looks_like_path(pretrained) or Path(pretrained).suffix in CHECKPOINT_SUFFIXES:
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise ModelError(
                f"{path}: no such checkpoint file.",
                hint=f"Set [plugins.coca] pretrained to a {arch} checkpoint or to a tag.",
            )
        return Source(
            name=arch, label=str(path), model_id=arch, pretrained=str(path), tag=pretrained
        )
    tag_config = open_clip.get_pretrained_cfg(arch, pretrained)
    hub = tag_config.get("hf_hub") if tag_config else None
    if not hub:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "(none)"
        raise ConfigError(
            f"{arch}: no pretrained weights tagged {pretrained!r} in open_clip.",
            hint=f"Choose one of: {tags}; or set pretrained to a checkpoint file.",
        )
    repo_id, filename = os.path.split(str(hub))
    names = _weight_names(filename or PICKLED_WEIGHTS)
    folder = resolve_model(
        repo_id,
        required=("|".join(names),),
        what=f"{WHAT} ({arch}, {pretrained})",
        allow_patterns=names,
    )
    return Source(
        name=arch,
        label=repo_id,
        model_id=arch,
        pretrained=str(_pick_weights(folder, names)),
        tag=pretrained,
        preprocess=_tag_preprocess(arch, pretrained),
    )


def _no_pretrained(model: str, options: CocaOptions) -> None:
    if "pretrained" in options.model_fields_set:
        raise ConfigError(
            f"pretrained ({options.pretrained}) applies to architecture names, "
            f"not to {model}: a hub repo or folder brings its own weights.",
            hint="Drop [plugins.coca] pretrained, or set --model to coca_ViT-L-14 or "
            "coca_ViT-B-32.",
        )


def _weight_names(filename: str) -> tuple[str, ...]:
    """open_clip's order: a safetensors twin of the named file first, then the file."""
    if filename == PICKLED_WEIGHTS:
        return (WEIGHTS[0], filename)
    if filename.endswith((".bin", ".pth")):
        return (filename[:-4] + ".safetensors", filename)
    return (filename,)


def _pick_weights(folder: Path, names: Sequence[str]) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise ModelError(f"{folder}: no {' or '.join(names)}.", hint=HINT)  # pragma: no cover


def _tag_preprocess(arch: str, tag: str) -> dict[str, Any]:
    import open_clip

    config = open_clip.get_pretrained_cfg(arch, tag) or {}
    keys = ("mean", "std", "interpolation", "resize_mode")
    return {key: config[key] for key in keys if config.get(key) is not None}


def known_repos() -> dict[str, tuple[str, str]]:
    """Hub repos behind open_clip's CoCa pretrained tags: repo id → (architecture, tag)."""
    import open_clip

    coca = set(coca_architectures())
    repos: dict[str, tuple[str, str]] = {}
    for arch, tag in open_clip.list_pretrained():
        if arch not in coca:
            continue
        hub = open_clip.get_pretrained_cfg(arch, tag).get("hf_hub") or ""
        repo_id, filename = os.path.split(hub)
        if repo_id and not filename:
            repos.setdefault(repo_id, (arch, tag))
    return repos


def coca_architectures() -> list[str]:
    """open_clip's built-in architectures that are CoCa models with the CLIP tokenizer."""
    import open_clip

    names = []
    for name in open_clip.list_models():
        config = open_clip.get_model_config(name)
        if config and "multimodal_cfg" in config and not _hf_text(config):
            names.append(name)
    return names


def read_config(folder: Path) -> dict[str, Any]:
    """The ``model_cfg`` of ``folder``'s open_clip_config.json; ModelError when unreadable."""
    path = folder / CONFIG
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(
            f"{path}: not a readable open_clip config ({_first_line(exc)}).", hint=HINT
        ) from None
    model_cfg = config.get("model_cfg") if isinstance(config, dict) else None
    if not isinstance(model_cfg, dict):
        raise ModelError(f"{path}: not an open_clip model config (no model_cfg).", hint=HINT)
    return model_cfg


def check_model_config(config: dict[str, Any], where: object) -> None:
    """Raise ModelError unless ``config`` is a CoCa model that open_clip's tokenizer decodes."""
    if not all(isinstance(config.get(key), dict) for key in ("vision_cfg", "text_cfg")):
        raise ModelError(f"{where}: not an open_clip model config.", hint=HINT)
    decoder = config.get("multimodal_cfg")
    if not isinstance(decoder, dict):
        raise ModelError(
            f"{where}: this open_clip model has no text decoder (multimodal_cfg); "
            "it is not a CoCa model and cannot write captions.",
            hint=HINT,
        )
    tokenizer = _hf_text(config)
    if tokenizer:
        raise ModelError(
            f"{where}: this CoCa model uses the Hugging Face tokenizer {tokenizer}; "
            "the coca captioner decodes open_clip's CLIP tokens only.",
            hint=HINT,
        )
    vocab = decoder.get("vocab_size", config["text_cfg"].get("vocab_size", VOCAB))
    if vocab != VOCAB:
        raise ModelError(
            f"{where}: the text decoder has {vocab} tokens, not the CLIP tokenizer's {VOCAB}.",
            hint=HINT,
        )


def _hf_text(config: dict[str, Any]) -> str | None:
    text = config.get("text_cfg") or {}
    name = text.get("hf_tokenizer_name") or text.get("hf_model_name")
    return str(name) if name else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
