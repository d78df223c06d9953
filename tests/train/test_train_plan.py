"""The training plan: the workflow document's smart defaults, presets, repeats, conflicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from beaver.errors import ConfigError
from beaver.testing.trainset import fixed_plan, write_dataset
from beaver.train.dataset import read_dataset
from beaver.train.plan import TrainRequest, default_batch_size, default_epochs, make_plan
from beaver.train.presets import PRESETS, resolve_base_model


@pytest.mark.parametrize(
    ("images", "epochs", "batch"),
    [
        (1, 20, 1),
        (19, 20, 1),
        (20, 15, 1),
        (29, 15, 1),
        (30, 15, 2),
        (47, 15, 2),
        (50, 15, 2),
        (51, 10, 2),
        (99, 10, 2),
        (100, 8, 4),
        (5000, 8, 4),
    ],
)
def test_smart_defaults_follow_the_workflow_document(images, epochs, batch):
    assert default_epochs(images) == epochs
    assert default_batch_size(images) == batch


def test_47_images_plan_15_epochs_and_batch_2(tmp_path):
    plan = fixed_plan(write_dataset(tmp_path / "ds"), tmp_path / "run")
    assert plan.dataset.total_images == 47
    assert (plan.epochs, plan.batch_size) == (15, 2)
    assert plan.reasons["epochs"] == "47 images (20-50) → 15 epochs"
    assert plan.learning_rate == 1e-4
    assert (plan.network_dim, plan.network_alpha) == (32, 16)
    assert plan.preset.key == "sdxl"
    assert plan.resolution == 1024


def test_steps_are_epochs_times_batches_of_the_repeated_images(tmp_path):
    plan = fixed_plan(write_dataset(tmp_path / "ds"), tmp_path / "run")
    samples = sum(s.images * s.repeats for s in plan.subsets)
    assert plan.samples_per_epoch == samples
    assert plan.steps_per_epoch == -(-samples // plan.batch_size)
    assert plan.total_steps == plan.steps_per_epoch * plan.epochs
    lo, hi = plan.preset.samples_range
    assert lo <= plan.samples_seen <= hi
    assert not plan.warnings


def test_repeats_raise_the_shot_type_that_is_short_of_the_mix(tmp_path):
    ds = write_dataset(tmp_path / "ds", shots={"close": 30, "mid": 10, "far": 5})
    plan = fixed_plan(ds, tmp_path / "run")
    repeats = {s.shot: s.repeats for s in plan.subsets}
    shares = {s.shot: s.samples / plan.samples_per_epoch for s in plan.subsets}
    assert repeats["far"] > repeats["mid"] > repeats["close"]
    # Toward 30/45/25: each share within 8 points of the recommended mix.
    for shot, want in {"close": 0.30, "mid": 0.45, "far": 0.25}.items():
        assert abs(shares[shot] - want) < 0.08, shares


def test_unknown_folder_trains_once_and_a_flat_dataset_is_one_subset(tmp_path):
    ds = write_dataset(tmp_path / "ds", shots={"close": 10, "mid": 10, "unknown": 4})
    plan = fixed_plan(ds, tmp_path / "run")
    assert {s.shot: s.repeats for s in plan.subsets}["unknown"] == 1
    flat = write_dataset(tmp_path / "flat", shots={"all": 25}, organised=False)
    plan = fixed_plan(flat, tmp_path / "run2")
    assert [s.shot for s in plan.subsets] == ["all"]
    assert plan.subsets[0].image_dir == flat.resolve()


def test_set_values_win_and_are_reported_as_set(tmp_path):
    plan = fixed_plan(
        write_dataset(tmp_path / "ds"),
        tmp_path / "run",
        epochs=3,
        batch_size=4,
        learning_rate=2e-4,
        network_dim=16,
        network_alpha=8,
        resolution=768,
        repeats=2,
    )
    assert (plan.epochs, plan.batch_size, plan.resolution) == (3, 4, 768)
    assert all(s.repeats == 2 for s in plan.subsets)
    assert plan.reasons["epochs"] == "3: set"
    assert any("not its native 1024" in w for w in plan.warnings)


def test_far_too_few_or_too_many_steps_are_warned_about(tmp_path):
    ds = write_dataset(tmp_path / "ds")
    few = fixed_plan(ds, tmp_path / "a", epochs=1, repeats=1)
    assert any("Only 47 images are shown" in w for w in few.warnings)
    many = fixed_plan(ds, tmp_path / "b", epochs=40, repeats=10)
    assert any("risks overtraining" in w for w in many.warnings)


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"network_dim": 16, "network_alpha": 32}, "larger than --network-dim 16"),
        ({"batch_size": 48}, "larger than the dataset (47 images)"),
        ({"resolution": 1000}, "multiple of 64"),
    ],
)
def test_conflicting_options_are_refused(tmp_path, request_, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        fixed_plan(write_dataset(tmp_path / "ds"), tmp_path / "run", **request_)


def test_flux_caps_the_default_batch_and_uses_its_own_network_module(tmp_path):
    ds = write_dataset(tmp_path / "ds", shots={"close": 40, "mid": 50, "far": 30})
    plan = fixed_plan(ds, tmp_path / "run", base_model="flux.1-dev")
    assert plan.batch_size == 2
    assert "capped at 2" in plan.reasons["batch_size"]
    assert plan.preset.network_module == "networks.lora_flux"
    assert plan.preset.kohya_script == "flux_train_network.py"


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("sdxl", "sdxl"),
        ("SD1.5", "sd15"),
        ("runwayml/stable-diffusion-v1-5", "sd15"),
        ("stabilityai/stable-diffusion-xl-base-1.0", "sdxl"),
        ("flux", "flux.1-dev"),
        ("black-forest-labs/FLUX.1-dev", "flux.1-dev"),
    ],
)
def test_presets_are_found_by_key_and_alias(name, key):
    preset, warning = resolve_base_model(name)
    assert preset == PRESETS[key]
    assert warning is None


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("/models/juggernautXL_v9.safetensors", "sdxl"),
        ("my/realistic-vision-v1.5", "sd15"),
        ("someone/flux-finetune", "flux"),
        ("mystery-model", "sdxl"),
    ],
)
def test_unknown_base_models_get_a_custom_preset_and_a_warning(name, family):
    preset, warning = resolve_base_model(name)
    assert preset.key == "custom"
    assert preset.family == family
    assert preset.model == name
    assert warning is not None
    assert "custom preset" in warning
    assert name in warning


def test_a_checkpoint_file_is_the_custom_presets_single_file():
    preset, _ = resolve_base_model("/m/juggernautXL_v9.safetensors")
    assert preset.checkpoint_file == "juggernautXL_v9.safetensors"
    forced, _ = resolve_base_model("/m/anything.safetensors", "sd15")
    assert (forced.family, forced.resolution, forced.bucket_step) == ("sd15", 512, 64)


def test_sample_prompts_use_the_trigger_and_top_concepts(tmp_path):
    plan = fixed_plan(write_dataset(tmp_path / "ds"), tmp_path / "run")
    assert plan.sample_prompts
    assert all(p.startswith("emma, ") for p in plan.sample_prompts)
    joined = " ".join(plan.sample_prompts)
    assert "smiling" in joined
    assert "outdoor" in joined


def test_the_plan_is_frozen_and_round_trips_through_json(tmp_path):
    plan = fixed_plan(write_dataset(tmp_path / "ds"), tmp_path / "run")
    again = type(plan).model_validate_json(plan.model_dump_json())
    assert again == plan
    with pytest.raises(ValueError, match="frozen"):
        plan.epochs = 3


def test_make_plan_uses_the_files_on_disk(tmp_path):
    ds = write_dataset(tmp_path / "ds")
    for extra in sorted((ds / "far").glob("*.jpg"))[:2]:
        extra.unlink()
    data, notes = read_dataset(ds)
    plan = make_plan(data, TrainRequest(), Path(tmp_path / "run"))
    assert plan.dataset.total_images == 45
    assert any("lists 47 images but 45 are on disk" in n for n in notes)
