"""The kohya backend: sd-scripts' config TOML, dataset TOML, sample prompts and launch lines.

The facts (argument names and types per script, the dataset-config schema) live in
tests/train/data/kohya_*.json with the sd-scripts source they were read from; the validators
below apply them to what the backend writes, and are shown to reject broken configs.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beaver.interfaces import Trainer
from beaver.plugins import make_plugin_manager
from beaver.testing.trainset import fixed_plan, normalise, write_dataset
from beaver.train.plan import TrainPlan
from beaver_kohya import KohyaOptions, create_trainer

DATA = Path(__file__).parent / "data"
GOLDEN = Path(__file__).parent / "golden" / "kohya"
ARGS = json.loads((DATA / "kohya_arguments.json").read_text(encoding="utf-8"))
SCHEMA = json.loads((DATA / "kohya_dataset_schema.json").read_text(encoding="utf-8"))
# Read at import: the autouse isolate_env fixture removes BEAVER_* variables from tests.
UPDATE_GOLDEN = os.environ.get("BEAVER_UPDATE_GOLDEN") == "1"
BASES = {"sd15": "sd15", "sdxl": "sdxl", "flux": "flux.1-dev"}
SCRIPTS = {
    "sd15": "train_network.py",
    "sdxl": "sdxl_train_network.py",
    "flux": "flux_train_network.py",
}
FIXED = KohyaOptions(sd_scripts_dir=Path("/opt/sd-scripts"), flux_dir=Path("/opt/models/flux"))

Doc = dict[str, Any]


# --- the facts, applied --------------------------------------------------------------------


def script_args(script: str) -> dict[str, str]:
    """Every argument ``script``'s parser declares, with its type."""
    out: dict[str, str] = {}
    for group in ARGS["scripts"][script]:
        out.update(ARGS["groups"][group]["args"])
    return out


def _is_type(value: Any, kind: str, *, strict_float: bool = False) -> bool:
    """Whether ``value`` (as tomllib read it) has ``kind``; ``strict_float``: voluptuous'
    ``float``, which rejects an integer (argparse-side code takes either)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    checks: dict[str, Callable[[Any], bool]] = {
        "str": lambda v: isinstance(v, str),
        "path": lambda v: isinstance(v, str),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, float) if strict_float else number,
        "number": lambda v: number,
        "int_or_float": lambda v: number,
        "flag": lambda v: v is True,
        "bool": lambda v: isinstance(v, bool),
        "dict": lambda v: isinstance(v, dict),
        "str_list": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
        "float_list": lambda v: (
            isinstance(v, list)
            and all(isinstance(i, int | float) and not isinstance(i, bool) for i in v)
        ),
        "int_or_pair": lambda v: (
            (isinstance(v, int) and not isinstance(v, bool))
            or (isinstance(v, list) and len(v) == 2 and all(type(i) is int for i in v))
        ),
        "float_pair": lambda v: (
            isinstance(v, list) and len(v) == 2 and all(isinstance(i, float) for i in v)
        ),
    }
    return checks[kind](value)


def flatten_config(doc: Doc) -> tuple[Doc, list[str]]:
    """What sd-scripts' read_config_from_file makes of a --config_file: one level flattened."""
    flat: Doc = {}
    errors: list[str] = []
    for key, value in doc.items():
        items = value.items() if isinstance(value, dict) else [(key, value)]
        for name, item in items:
            if isinstance(item, dict):
                errors.append(f"{key}.{name}: nested two levels deep, sd-scripts would ignore it")
            if name in flat:
                errors.append(f"{name}: set twice; the later table silently wins")
            flat[name] = item
    return flat, errors


def validate_config(doc: Doc, script: str) -> list[str]:
    """Errors of a --config_file document for ``script`` (empty: sd-scripts takes it)."""
    flat, errors = flatten_config(doc)
    known = script_args(script)
    for name, value in flat.items():
        if name not in known:
            errors.append(f"{name}: not an argument of {script} (sd-scripts ignores it silently)")
            continue
        if not _is_type(value, known[name]):
            errors.append(f"{name}: {value!r} is not of type {known[name]}")
        choices = ARGS["choices"].get(name)
        if choices is not None and value not in choices:
            errors.append(f"{name}: {value!r} is not one of {choices}")
    if "train_batch_size" in flat:
        errors.append("train_batch_size: the batch size belongs in the dataset config")
    resolution = flat.get("resolution")
    if isinstance(resolution, str) and not re.fullmatch(r"\d+(,\d+)?", resolution):
        errors.append(f"resolution: {resolution!r} is not 'W,H'")
    if script == "sdxl_train_network.py":
        if flat.get("cache_text_encoder_outputs") and not flat.get("network_train_unet_only"):
            errors.append("cache_text_encoder_outputs needs network_train_unet_only on SDXL")
        if "clip_skip" in flat:
            errors.append("clip_skip: SDXL does not use it (sd-scripts only warns)")
    if script == "flux_train_network.py":
        for role in ("clip_l", "t5xxl", "ae"):
            if not flat.get(role):
                errors.append(f"{role}: FLUX needs the file")
        if not str(flat.get("pretrained_model_name_or_path", "")).endswith(".safetensors"):
            errors.append("pretrained_model_name_or_path: FLUX needs one .safetensors file")
        if flat.get("network_module") != "networks.lora_flux":
            errors.append("network_module: FLUX trains networks.lora_flux")
    return errors


def _level_schema(level: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in SCHEMA["levels"][level]:
        out.update(SCHEMA["schemas"][part])
    return out


def _check_level(table: Any, level: str, where: str) -> list[str]:
    if not isinstance(table, dict):
        return [f"{where}: must be a table"]
    schema = _level_schema(level)
    errors: list[str] = []
    for key, value in table.items():
        if key == "subsets" and level == "datasets":
            continue
        if key not in schema:
            errors.append(f"{where}.{key}: extra keys not allowed")
        elif not _is_type(value, schema[key], strict_float=True):
            errors.append(f"{where}.{key}: {value!r} is not of type {schema[key]}")
    return errors


def validate_dataset(doc: Doc, script: str, config: Doc) -> list[str]:
    """Errors of a --dataset_config document, given the flattened --config_file."""
    errors = [f"{k}: extra keys not allowed" for k in doc if k not in SCHEMA["top_level"]]
    general = doc.get("general", {})
    errors += _check_level(general, "general", "general")
    datasets = doc.get("datasets", [])
    if not isinstance(datasets, list) or not datasets:
        return [*errors, "datasets: needs at least one [[datasets]] table"]
    defaults = SCHEMA["defaults"]
    for i, dataset in enumerate(datasets):
        where = f"datasets[{i}]"
        errors += _check_level(dataset, "datasets", where)
        if not isinstance(dataset, dict):
            continue

        def pick(key: str, *tables: Doc) -> Any:
            for table in tables:
                if key in table:
                    return table[key]
            return defaults.get(key)

        step = pick("bucket_reso_steps", dataset, general)
        divisor = SCHEMA["rules"]["bucket_reso_steps_divisor"][script]
        if not isinstance(step, int) or step % divisor:
            errors.append(f"{where}.bucket_reso_steps: {step!r} is not divisible by {divisor}")
        res = pick("resolution", dataset, general)
        if pick("enable_bucket", dataset, general) and _is_type(res, "int_or_pair"):
            sizes = [res, res] if isinstance(res, int) else res
            low = pick("min_bucket_reso", dataset, general)
            high = pick("max_bucket_reso", dataset, general)
            if isinstance(low, int) and low > min(sizes):
                errors.append(f"{where}: min_bucket_reso {low} > resolution {min(sizes)}")
            if isinstance(high, int) and high < max(sizes):
                errors.append(f"{where}: max_bucket_reso {high} < resolution {max(sizes)}")
        subsets = dataset.get("subsets", [])
        if not isinstance(subsets, list) or not subsets:
            errors.append(f"{where}.subsets: needs at least one subset")
            continue
        for j, subset in enumerate(subsets):
            at = f"{where}.subsets[{j}]"
            errors += _check_level(subset, "subsets", at)
            if not isinstance(subset, dict):
                continue
            for key in SCHEMA["required"]["subsets"]:
                if key not in subset:
                    errors.append(f"{at}.{key}: required key not provided")
            image_dir = subset.get("image_dir")
            if isinstance(image_dir, str) and not Path(image_dir).is_absolute():
                errors.append(f"{at}.image_dir: {image_dir!r} is not absolute")
            tables = (subset, dataset, general)
            extension = pick("caption_extension", *tables)
            if extension != ".txt":
                errors.append(f"{at}.caption_extension: {extension!r}, the captions are .txt")
            if config.get("cache_latents") and (
                pick("color_aug", *tables) or pick("random_crop", *tables)
            ):
                errors.append(f"{at}: cache_latents needs color_aug and random_crop off")
            if config.get("cache_text_encoder_outputs") and (
                pick("shuffle_caption", *tables)
                or (pick("caption_dropout_rate", *tables) or 0) > 0
                or (pick("caption_tag_dropout_rate", *tables) or 0) > 0
                or (pick("token_warmup_step", *tables) or 0) > 0
            ):
                errors.append(f"{at}: text-encoder caching needs no caption shuffle or dropout")
    return errors


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def no_sd_scripts_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """launch_problem reads SD_SCRIPTS_DIR: a developer's own must not leak in."""
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("kohya") / "emma")


def build(
    dataset: Path, run: Path, key: str, options: KohyaOptions = FIXED, **request: Any
) -> tuple[TrainPlan, Trainer, Path, list[Path]]:
    plan = fixed_plan(dataset, run, base_model=BASES[key], **request)
    trainer = create_trainer(options)
    out = run / "kohya"
    return plan, trainer, out, trainer.write(plan, out)


def load(out: Path) -> tuple[Doc, Doc]:
    config = tomllib.loads((out / "config.toml").read_text(encoding="utf-8"))
    dataset = tomllib.loads((out / "dataset.toml").read_text(encoding="utf-8"))
    return config, dataset


# --- what is written -----------------------------------------------------------------------


@pytest.mark.parametrize("key", list(BASES))
def test_written_configs_pass_the_sd_scripts_rules(dataset_dir, tmp_path, key):
    plan, _, out, files = build(dataset_dir, tmp_path / "run", key)
    assert [f.name for f in files] == ["config.toml", "dataset.toml", "sample_prompts.txt"]
    assert all(f.is_absolute() and f.parent == out for f in files)
    config, dataset = load(out)
    assert validate_config(config, SCRIPTS[key]) == []
    flat, _ = flatten_config(config)
    assert validate_dataset(dataset, SCRIPTS[key], flat) == []
    assert plan.preset.kohya_script == SCRIPTS[key]


@pytest.mark.parametrize("key", list(BASES))
def test_config_values_come_from_the_plan_with_sd_scripts_types(dataset_dir, tmp_path, key):
    plan, _, out, _ = build(dataset_dir, tmp_path / "run", key)
    flat, _ = flatten_config(load(out)[0])
    assert flat["resolution"] == f"{plan.resolution},{plan.resolution}"
    assert flat["output_dir"] == str(plan.model_dir)
    assert flat["logging_dir"] == str(plan.logging_dir)
    assert flat["log_with"] == "tensorboard"
    assert flat["output_name"] == plan.output_name
    assert flat["max_train_epochs"] == plan.epochs
    assert flat["learning_rate"] == flat["unet_lr"] == plan.learning_rate
    assert (flat["network_dim"], flat["network_alpha"]) == (plan.network_dim, plan.network_alpha)
    assert flat["save_every_n_epochs"] == flat["sample_every_n_epochs"] == plan.save_every_n_epochs
    assert flat["dataset_config"] == str(out / "dataset.toml")
    assert flat["sample_prompts"] == str(out / "sample_prompts.txt")
    assert flat["cache_latents"] is flat["cache_latents_to_disk"] is True
    assert flat.get("min_snr_gamma") == plan.preset.min_snr_gamma
    assert flat.get("noise_offset") == plan.preset.noise_offset
    assert "train_batch_size" not in flat
    if plan.text_encoder_lr is None:
        assert flat["network_train_unet_only"] is True
        assert "text_encoder_lr" not in flat
    else:
        assert flat["text_encoder_lr"] == [plan.text_encoder_lr]
        assert "network_train_unet_only" not in flat


def test_sd15_trains_its_text_encoder_and_caches_no_text(dataset_dir, tmp_path):
    plan, _, out, _ = build(dataset_dir, tmp_path / "run", "sd15")
    flat, _ = flatten_config(load(out)[0])
    assert plan.text_encoder_lr is not None
    assert flat["text_encoder_lr"] == [plan.text_encoder_lr]
    assert "cache_text_encoder_outputs" not in flat
    assert "clip_skip" not in flat


def test_sdxl_text_encoder_training_gets_two_rates_and_no_text_cache(dataset_dir, tmp_path):
    plan = fixed_plan(dataset_dir, tmp_path / "run", base_model="sdxl")
    plan = plan.model_copy(update={"text_encoder_lr": 1e-5})
    out = tmp_path / "run" / "kohya"
    create_trainer(FIXED).write(plan, out)
    config, dataset = load(out)
    flat, _ = flatten_config(config)
    assert flat["text_encoder_lr"] == [1e-5, 1e-5]  # TE1 and TE2; no text_encoder_lr1/2
    assert "network_train_unet_only" not in flat
    assert "cache_text_encoder_outputs" not in flat
    assert validate_config(config, "sdxl_train_network.py") == []
    assert validate_dataset(dataset, "sdxl_train_network.py", flat) == []


def test_sdxl_in_fp16_keeps_the_vae_in_float(dataset_dir, tmp_path):
    plan = fixed_plan(dataset_dir, tmp_path / "run", base_model="sdxl")
    plan = plan.model_copy(update={"mixed_precision": "fp16"})
    out = tmp_path / "run" / "kohya"
    create_trainer(FIXED).write(plan, out)
    flat, _ = flatten_config(load(out)[0])
    assert flat["no_half_vae"] is True
    assert flat["save_precision"] == "fp16"


def test_flux_files_come_from_flux_dir(dataset_dir, tmp_path):
    options = KohyaOptions(flux_dir=tmp_path / "flux", fp8_base=True)
    _, _, out, _ = build(dataset_dir, tmp_path / "run", "flux", options)
    flat, _ = flatten_config(load(out)[0])
    flux = tmp_path / "flux"
    assert flat["pretrained_model_name_or_path"] == str(flux / "flux1-dev.safetensors")
    assert flat["clip_l"] == str(flux / "clip_l.safetensors")
    assert flat["t5xxl"] == str(flux / "t5xxl_fp16.safetensors")
    assert flat["ae"] == str(flux / "ae.safetensors")
    assert flat["guidance_scale"] == 1.0
    assert flat["model_prediction_type"] == "raw"
    assert flat["timestep_sampling"] == "shift"
    assert flat["fp8_base"] is True
    assert flat["cache_text_encoder_outputs"] is True


def test_a_checkpoint_file_is_used_as_given(dataset_dir, tmp_path):
    checkpoint = tmp_path / "models" / "my-sdxl.safetensors"
    plan = fixed_plan(dataset_dir, tmp_path / "run", base_model=str(checkpoint))
    trainer = create_trainer(FIXED)
    trainer.write(plan, tmp_path / "run" / "kohya")
    flat, _ = flatten_config(load(tmp_path / "run" / "kohya")[0])
    assert flat["pretrained_model_name_or_path"] == str(checkpoint)


def test_dataset_has_one_subset_per_folder_with_its_repeats(dataset_dir, tmp_path):
    plan, _, out, _ = build(dataset_dir, tmp_path / "run", "sdxl")
    dataset = load(out)[1]
    assert dataset["general"]["caption_extension"] == ".txt"
    assert dataset["general"]["keep_tokens"] == 1
    assert dataset["general"]["shuffle_caption"] is False
    (only,) = dataset["datasets"]
    assert only["resolution"] == plan.resolution
    assert only["batch_size"] == plan.batch_size
    assert only["bucket_reso_steps"] == plan.preset.bucket_step
    got = [(s["image_dir"], s["num_repeats"], s["class_tokens"]) for s in only["subsets"]]
    want = [(str(s.image_dir), s.repeats, plan.dataset.class_tokens) for s in plan.subsets]
    assert got == want
    # keep_tokens 1 keeps the trigger: it is the first comma-separated token everywhere.
    first = {c.split(",")[0] for f in plan.dataset.folders for c in (i.caption for i in f.images)}
    assert first == {plan.trigger_word}
    assert plan.dataset.class_tokens.split(",")[0] == plan.trigger_word


def test_buckets_stretch_to_a_resolution_outside_the_preset(dataset_dir, tmp_path):
    _, _, out, _ = build(dataset_dir, tmp_path / "run", "sd15", resolution=1280)
    config, dataset = load(out)
    flat, _ = flatten_config(config)
    assert dataset["datasets"][0]["max_bucket_reso"] == 1280
    assert validate_dataset(dataset, "train_network.py", flat) == []


@pytest.mark.parametrize("key", list(BASES))
def test_sample_prompts_use_only_options_sd_scripts_parses(dataset_dir, tmp_path, key):
    plan, _, out, _ = build(dataset_dir, tmp_path / "run", key)
    lines = (out / "sample_prompts.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(plan.sample_prompts)
    # train_util.line_to_prompt_dict: the line splits on " --", each part one option.
    patterns = {"w": r"\d+", "h": r"\d+", "d": r"\d+", "s": r"\d+", "l": r"[\d.]+"}
    patterns |= {"g": r"[\d.]+", "n": r".+"}
    for line, prompt in zip(lines, plan.sample_prompts, strict=True):
        text, *parts = line.split(" --")
        assert text == prompt
        options = {}
        for part in parts:
            name, _, value = part.partition(" ")
            assert re.fullmatch(patterns[name], value), part
            options[name] = value
        assert options["w"] == options["h"] == str(plan.resolution)
        if key == "flux":
            assert (options["g"], options["l"]) == ("3.5", "1")  # guidance 3.5, no CFG
            assert "n" not in options
        else:
            assert options["l"] == "7"
            assert "g" not in options
            assert options["n"]


# --- the validators reject what sd-scripts rejects ----------------------------------------


def _subset(doc: Doc) -> Doc:
    subset: Doc = doc["datasets"][0]["subsets"][0]
    return subset


DATASET_MUTATIONS: dict[str, tuple[str, Callable[[Doc], None], str]] = {
    "no caption_extension": ("sdxl", lambda d: d["general"].pop("caption_extension"), ".caption"),
    "caption_extension .caption": (
        "sdxl",
        lambda d: d["general"].update(caption_extension=".caption"),
        ".caption",
    ),
    "SD1.5 bucket step 32": (
        "sd15",
        lambda d: d["datasets"][0].update(bucket_reso_steps=32),
        "not divisible by 64",
    ),
    "SDXL bucket step 48": (
        "sdxl",
        lambda d: d["datasets"][0].update(bucket_reso_steps=48),
        "not divisible by 32",
    ),
    "unknown general key": ("sdxl", lambda d: d["general"].update(caption_ext=".txt"), "extra"),
    "unknown dataset key": ("sdxl", lambda d: d["datasets"][0].update(repeats=2), "extra"),
    "validation_split in a subset": (
        "sdxl",
        lambda d: _subset(d).update(validation_split=0.1),
        "extra keys",
    ),
    "unknown top-level table": ("sdxl", lambda d: d.update(dataset={}), "extra"),
    "no image_dir": ("sdxl", lambda d: _subset(d).pop("image_dir"), "required key"),
    "relative image_dir": ("sdxl", lambda d: _subset(d).update(image_dir="close"), "absolute"),
    "batch_size as text": ("sdxl", lambda d: d["datasets"][0].update(batch_size="2"), "type"),
    "keep_tokens as bool": ("sdxl", lambda d: d["general"].update(keep_tokens=True), "type"),
    "validation_split as int": (
        "sdxl",
        lambda d: d["datasets"][0].update(validation_split=0),
        "type",
    ),
    "resolution as text": ("sdxl", lambda d: d["datasets"][0].update(resolution="1024"), "type"),
    "min bucket above resolution": (
        "sdxl",
        lambda d: d["datasets"][0].update(min_bucket_reso=1536),
        "min_bucket_reso",
    ),
    "max bucket below resolution": (
        "sdxl",
        lambda d: d["datasets"][0].update(max_bucket_reso=768),
        "max_bucket_reso",
    ),
    "color_aug with cached latents": (
        "sd15",
        lambda d: _subset(d).update(color_aug=True),
        "cache_latents",
    ),
    "random_crop with cached latents": (
        "sd15",
        lambda d: d["general"].update(random_crop=True),
        "cache_latents",
    ),
    "shuffle with cached text": (
        "sdxl",
        lambda d: d["general"].update(shuffle_caption=True),
        "text-encoder caching",
    ),
    "caption dropout with cached text": (
        "flux",
        lambda d: _subset(d).update(caption_dropout_rate=0.1),
        "text-encoder caching",
    ),
    "no subsets": ("sdxl", lambda d: d["datasets"][0].pop("subsets"), "subset"),
}


@pytest.mark.parametrize("name", list(DATASET_MUTATIONS))
def test_dataset_validator_rejects_a_broken_dataset(dataset_dir, tmp_path, name):
    key, mutate, message = DATASET_MUTATIONS[name]
    _, _, out, _ = build(dataset_dir, tmp_path / "run", key)
    config, dataset = load(out)
    flat, _ = flatten_config(config)
    broken = copy.deepcopy(dataset)
    mutate(broken)
    errors = validate_dataset(broken, SCRIPTS[key], flat)
    assert any(message in e for e in errors), errors


CONFIG_MUTATIONS: dict[str, tuple[str, Callable[[Doc], None], str]] = {
    "text_encoder_lr1 (does not exist)": (
        "sdxl",
        lambda d: d["optimizer"].update(text_encoder_lr1=1e-5),
        "not an argument",
    ),
    "resolution as int": ("sdxl", lambda d: d["training"].update(resolution=1024), "type str"),
    "resolution 1024x1024": (
        "sdxl",
        lambda d: d["training"].update(resolution="1024x1024"),
        "'W,H'",
    ),
    "text_encoder_lr as a float": (
        "sd15",
        lambda d: d["optimizer"].update(text_encoder_lr=5e-5),
        "float_list",
    ),
    "train_batch_size": ("sdxl", lambda d: d["training"].update(train_batch_size=2), "batch"),
    "network_dim as float": ("sdxl", lambda d: d["network"].update(network_dim=32.0), "type int"),
    "flag as text": (
        "sdxl",
        lambda d: d["training"].update(gradient_checkpointing="true"),
        "type flag",
    ),
    "unknown sampler": (
        "sdxl",
        lambda d: d["sampling"].update(sample_sampler="dpm++"),
        "not one of",
    ),
    "mixed_precision bf16-mixed": (
        "sdxl",
        lambda d: d["training"].update(mixed_precision="bf16-mixed"),
        "not one of",
    ),
    "SDXL text cache while training text encoders": (
        "sdxl",
        lambda d: d["network"].pop("network_train_unet_only"),
        "network_train_unet_only",
    ),
    "SDXL clip_skip": ("sdxl", lambda d: d["training"].update(clip_skip=2), "clip_skip"),
    "table nested twice": (
        "sdxl",
        lambda d: d["training"].update(extra={"seed": 1}),
        "nested two levels",
    ),
    "key in two tables": ("sdxl", lambda d: d["saving"].update(seed=7), "set twice"),
    "FLUX without clip_l": ("flux", lambda d: d["flux"].pop("clip_l"), "clip_l"),
    "FLUX with the SD network": (
        "flux",
        lambda d: d["network"].update(network_module="networks.lora"),
        "lora_flux",
    ),
    "FLUX argument given to SDXL": (
        "sdxl",
        lambda d: d["training"].update(guidance_scale=1.0),
        "not an argument",
    ),
}


@pytest.mark.parametrize("name", list(CONFIG_MUTATIONS))
def test_config_validator_rejects_a_broken_config(dataset_dir, tmp_path, name):
    key, mutate, message = CONFIG_MUTATIONS[name]
    _, _, out, _ = build(dataset_dir, tmp_path / "run", key)
    broken = copy.deepcopy(load(out)[0])
    mutate(broken)
    errors = validate_config(broken, SCRIPTS[key])
    assert any(message in e for e in errors), errors


def test_facts_cover_every_script_and_schema_level():
    for script in SCRIPTS.values():
        assert len(script_args(script)) > 100
    assert set(script_args("flux_train_network.py")) - set(script_args("sdxl_train_network.py"))
    assert "cache_text_encoder_outputs" not in script_args("train_network.py")
    for name in ARGS["not_arguments"]["names"]:
        assert all(name not in script_args(s) for s in SCRIPTS.values())
    assert "image_dir" not in _level_schema("general")
    assert "batch_size" not in _level_schema("subsets")
    assert "validation_split" not in _level_schema("subsets")


# --- golden files --------------------------------------------------------------------------


@pytest.mark.parametrize("key", list(BASES))
def test_golden(dataset_dir, tmp_path, key):
    plan, trainer, out, files = build(dataset_dir, tmp_path / "run", key)
    texts = {f.name: f.read_text(encoding="utf-8") for f in files}
    texts["train_section.sh"] = trainer.script(plan, out)
    folder = GOLDEN / key
    for name, text in texts.items():
        got = normalise(text, plan)
        assert "$RUN" in got or "$DATASET" in got or name == "sample_prompts.txt"
        path = folder / name
        if UPDATE_GOLDEN:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(got, encoding="utf-8")
        assert path.read_text(encoding="utf-8") == got, f"{path} (BEAVER_UPDATE_GOLDEN=1)"


# --- train.sh, run under bash ---------------------------------------------------------------

STUB = '#!/usr/bin/env bash\nprintf "%s\\n" "$PWD" "$@" > "$ACCELERATE_LOG"\n'


def fake_sd_scripts(root: Path, script: str, *, venv: bool = True) -> Path:
    root.mkdir(parents=True)
    (root / script).write_text("# stand-in for sd-scripts\n", encoding="utf-8")
    if venv:
        _stub(root / "venv" / "bin" / "accelerate")
    return root


def _stub(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STUB, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def run_section(
    body: str, tmp_path: Path, env: dict[str, str] | None = None, path: str = "/usr/bin:/bin"
) -> subprocess.CompletedProcess[str]:
    """Run the backend's lines the way train.sh does: in an indented function, set -euo."""
    indented = "\n".join(f"    {line}" if line.strip() else "" for line in body.splitlines())
    script = tmp_path / "train_section.sh"
    script.write_text(f"set -euo pipefail\nrun_kohya() {{\n{indented}\n}}\nrun_kohya\n")
    full = {
        "PATH": path,
        "HOME": str(tmp_path / "home"),
        "ACCELERATE_LOG": str(tmp_path / "accelerate.log"),
    }
    full.update(env or {})
    return subprocess.run(
        ["bash", str(script)],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def launched(tmp_path: Path) -> list[str]:
    return (tmp_path / "accelerate.log").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("key", ["sd15", "sdxl"])
def test_script_launches_the_venv_accelerate_with_both_configs(dataset_dir, tmp_path, key):
    sd = fake_sd_scripts(tmp_path / "sd scripts", SCRIPTS[key])
    options = KohyaOptions(sd_scripts_dir=sd)
    plan, trainer, out, _ = build(dataset_dir, tmp_path / "a run", key, options)
    result = run_section(trainer.script(plan, out), tmp_path)
    assert result.returncode == 0, result.stderr
    cwd, *argv = launched(tmp_path)
    assert cwd == str(sd)
    assert argv == [
        "launch",
        "--num_cpu_threads_per_process",
        "1",
        str(sd / SCRIPTS[key]),
        f"--config_file={out / 'config.toml'}",
        f"--dataset_config={out / 'dataset.toml'}",
    ]
    assert trainer.launch_problem(plan) is None


def test_script_falls_back_to_accelerate_on_path_and_honours_the_env(
    dataset_dir, tmp_path, monkeypatch
):
    sd = fake_sd_scripts(tmp_path / "elsewhere", "sdxl_train_network.py", venv=False)
    bin_dir = tmp_path / "bin"
    _stub(bin_dir / "accelerate")
    plan, trainer, out, _ = build(dataset_dir, tmp_path / "run", "sdxl")  # option: /opt/...
    env = {"SD_SCRIPTS_DIR": "elsewhere"}  # relative to where train.sh is started
    result = run_section(trainer.script(plan, out), tmp_path, env, f"{bin_dir}:/usr/bin:/bin")
    assert result.returncode == 0, result.stderr
    assert launched(tmp_path)[:5] == [
        str(sd),
        "launch",
        "--num_cpu_threads_per_process",
        "1",
        str(sd / "sdxl_train_network.py"),
    ]
    monkeypatch.setenv("SD_SCRIPTS_DIR", str(sd))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert trainer.launch_problem(plan) is None
    monkeypatch.setenv("PATH", "/nonexistent")
    problem = trainer.launch_problem(plan)
    assert problem is not None
    assert problem.startswith(f"accelerate is not installed in {sd}/venv")


def test_script_without_sd_scripts_exits_3_with_the_install_commands(dataset_dir, tmp_path):
    plan, trainer, out, _ = build(dataset_dir, tmp_path / "run", "sdxl", KohyaOptions())
    result = run_section(trainer.script(plan, out), tmp_path)
    assert result.returncode == 3
    assert "git clone https://github.com/kohya-ss/sd-scripts" in result.stderr
    assert "pip install -r requirements.txt" in result.stderr
    assert "accelerate config" in result.stderr
    assert "SD_SCRIPTS_DIR" in result.stderr
    assert not (tmp_path / "accelerate.log").exists()
    problem = trainer.launch_problem(plan)
    assert problem is not None
    assert "git clone https://github.com/kohya-ss/sd-scripts" in problem


def test_script_with_a_configured_but_missing_folder_says_where(dataset_dir, tmp_path):
    missing = tmp_path / "no such folder"
    plan, trainer, out, _ = build(
        dataset_dir, tmp_path / "run", "sd15", KohyaOptions(sd_scripts_dir=missing)
    )
    result = run_section(trainer.script(plan, out), tmp_path)
    assert result.returncode == 3
    assert f"at {missing}" in result.stderr
    assert "git clone https://github.com/kohya-ss/sd-scripts" in result.stderr


@pytest.mark.skipif(
    shutil.which("accelerate", path="/usr/bin:/bin") is not None,
    reason="accelerate is installed system-wide",
)
def test_script_without_accelerate_exits_3(dataset_dir, tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd", "train_network.py", venv=False)
    plan, trainer, out, _ = build(
        dataset_dir, tmp_path / "run", "sd15", KohyaOptions(sd_scripts_dir=sd)
    )
    result = run_section(trainer.script(plan, out), tmp_path)
    assert result.returncode == 3
    assert "accelerate is not installed" in result.stderr
    assert "requirements.txt" in result.stderr


def test_flux_script_lists_every_missing_file_with_hf_download(dataset_dir, tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd", "flux_train_network.py")
    flux = tmp_path / "flux models"
    flux.mkdir()
    (flux / "ae.safetensors").write_bytes(b"x")
    options = KohyaOptions(sd_scripts_dir=sd, flux_dir=flux)
    plan, trainer, out, _ = build(dataset_dir, tmp_path / "run", "flux", options)
    result = run_section(trainer.script(plan, out), tmp_path)
    assert result.returncode == 3
    quoted = f"'{flux}'"
    for repo, name in [
        ("black-forest-labs/FLUX.1-dev", "flux1-dev.safetensors"),
        ("comfyanonymous/flux_text_encoders", "clip_l.safetensors"),
        ("comfyanonymous/flux_text_encoders", "t5xxl_fp16.safetensors"),
    ]:
        assert f"hf download {repo} {name} --local-dir {quoted}" in result.stderr
    assert "ae.safetensors --local-dir" not in result.stderr
    assert "hf auth login" in result.stderr
    problem = trainer.launch_problem(plan)
    assert problem is not None
    assert "hf download comfyanonymous/flux_text_encoders" in problem

    for name in ("flux1-dev.safetensors", "clip_l.safetensors", "t5xxl_fp16.safetensors"):
        (flux / name).write_bytes(b"x")
    result = run_section(trainer.script(plan, out), tmp_path)
    assert result.returncode == 0, result.stderr
    assert launched(tmp_path)[4] == str(sd / "flux_train_network.py")
    assert trainer.launch_problem(plan) is None


def test_a_missing_sdxl_checkpoint_file_stops_the_launch(dataset_dir, tmp_path):
    sd = fake_sd_scripts(tmp_path / "sd", "sdxl_train_network.py")
    checkpoint = tmp_path / "my-sdxl.safetensors"
    plan = fixed_plan(dataset_dir, tmp_path / "run", base_model=str(checkpoint))
    trainer = create_trainer(KohyaOptions(sd_scripts_dir=sd))
    out = tmp_path / "run" / "kohya"
    trainer.write(plan, out)
    result = run_section(trainer.script(plan, out), tmp_path)
    assert result.returncode == 3
    assert str(checkpoint) in result.stderr
    assert "hf download" not in result.stderr  # beaver knows no source for a custom file
    assert trainer.launch_problem(plan) is not None
    checkpoint.write_bytes(b"x")
    assert run_section(trainer.script(plan, out), tmp_path).returncode == 0
    assert trainer.launch_problem(plan) is None


# --- the plugin ----------------------------------------------------------------------------


def test_the_registered_plugin_builds_a_trainer_from_settings(tmp_path):
    spec = make_plugin_manager(env={}).trainers().get("kohya")
    settings = {"sd_scripts_dir": tmp_path / "sd", "flux_dir": tmp_path / "flux", "base_model": "x"}
    values = spec.with_settings({}, settings)
    assert set(values) == {"sd_scripts_dir", "flux_dir"}
    trainer = spec.create(values)
    assert isinstance(trainer, Trainer)
    assert spec.readiness() is None
    for field in KohyaOptions.model_fields.values():
        assert field.description
        assert "[" not in field.description


def test_a_constant_schedule_gets_no_warmup_steps(dataset_dir, tmp_path):
    plan = fixed_plan(dataset_dir, tmp_path / "run", base_model="sdxl")
    plan = plan.model_copy(update={"lr_scheduler": "constant"})
    out = tmp_path / "run" / "kohya"
    create_trainer(FIXED).write(plan, out)
    flat, _ = flatten_config(load(out)[0])
    assert flat["lr_scheduler"] == "constant"
    assert "lr_warmup_steps" not in flat  # sd-scripts raises on warmup for "constant"
