"""``beaver train`` and ``beaver train list-models`` through the CLI, with a test backend."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from beaver.cli import build_app
from beaver.plugins import make_plugin_manager
from beaver.testing.trainset import EchoPlugin, write_dataset
from beaver.train.command import new_run_dir

runner = CliRunner()


def _train(tmp_path: Path, *args: str, plugin: EchoPlugin | None = None, **kw):
    app = build_app(make_plugin_manager(extra_plugins=[(plugin or EchoPlugin(), "echo")]))
    root = ["--output-dir", str(tmp_path / "outputs")]
    return runner.invoke(app, [*root, *args], **kw)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "ds")


def _runs(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "outputs" / "lora_models" / "emma").iterdir())


def test_train_writes_the_run_folder(tmp_path, dataset):
    result = _train(tmp_path, "train", str(dataset), "--backend", "echo", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    (run,) = _runs(tmp_path)
    assert out["run_dir"] == str(run)
    assert out["plan"]["epochs"] == 15
    assert out["plan"]["batch_size"] == 2
    assert (run / "echo" / "plan.txt").read_text().startswith("epochs=15 batch=2")
    script = run / "train.sh"
    assert os.access(script, os.X_OK)
    config = json.loads((run / "training_config.json").read_text())
    assert config["total_images"] == 47
    assert config["backends"] == ["echo"]
    assert config["repeats"] == {"close": 4, "mid": 4, "far": 4}
    info = json.loads((run / "training_info.json").read_text())
    assert info["plan"]["epochs"] == 15
    assert info["defaults"]["batch_size"] == "47 images → batch 2"
    assert info["backends"]["echo"]["files"] == ["echo/plan.txt"]
    assert info["command"][0] == "beaver"
    assert (run / "model").is_dir()
    assert (run / "logs").is_dir()


def test_train_sh_runs_the_backend_and_refuses_unknown_ones(tmp_path, dataset):
    assert _train(tmp_path, "train", str(dataset), "--backend", "echo").exit_code == 0
    (run,) = _runs(tmp_path)
    done = subprocess.run(
        ["bash", str(run / "train.sh")], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "echo trainer: epochs=15 batch=2" in done.stdout
    assert "epoch 15" in done.stdout
    bad = subprocess.run(
        ["bash", str(run / "train.sh"), "nope"], check=False, capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert "unknown backend 'nope'; choose one of: echo" in bad.stderr


def test_run_streams_the_trainers_output(tmp_path, dataset):
    result = _train(tmp_path, "train", str(dataset), "--backend", "echo", "--epochs", "3", "--run")
    assert result.exit_code == 0, result.output
    assert "echo trainer: epochs=3" in result.stdout
    assert "epoch 3" in result.stdout


def test_a_failing_trainer_exits_non_zero_with_one_line(tmp_path, dataset, monkeypatch):
    monkeypatch.setenv("ECHO_FAIL", "1")
    result = _train(tmp_path, "train", str(dataset), "--backend", "echo", "--run")
    assert result.exit_code == 1
    assert "echo stopped with exit status 7" in result.stderr
    assert "Traceback" not in result.output


def test_run_without_the_trainer_installed_says_so_and_keeps_the_configs(tmp_path, dataset):
    config = tmp_path / "beaver.toml"
    config.write_text("[plugins.echo]\ninstalled = false\n")
    result = _train(
        tmp_path, "--config", str(config), "train", str(dataset), "--backend", "echo", "--run"
    )
    assert result.exit_code == 1
    assert "Cannot start echo: echo is not installed" in result.stderr
    (run,) = _runs(tmp_path)
    assert (run / "training_info.json").is_file()


def test_settings_reach_the_backend_options(tmp_path, dataset):
    plugin = EchoPlugin()
    config = tmp_path / "beaver.toml"
    config.write_text(f'[train]\nsd_scripts_dir = "{tmp_path / "sd"}"\n')
    args = ["--config", str(config), "train", str(dataset), "--backend", "echo"]
    assert _train(tmp_path, *args, plugin=plugin).exit_code == 0
    assert plugin.made[0].options.sd_scripts_dir == tmp_path / "sd"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "nope"], "Unknown trainer 'nope'. Choose one of:"),
        (["--network-dim", "8", "--network-alpha", "16"], "larger than --network-dim 8"),
        (["--batch-size", "100"], "larger than the dataset (47 images)"),
        (["--model-family", "sd3"], "Unknown --model-family 'sd3'"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(tmp_path, dataset, args, message):
    result = _train(tmp_path, "train", str(dataset), *args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "outputs" / "lora_models").exists()


def test_not_a_dataset_is_one_line(tmp_path):
    (tmp_path / "photos").mkdir()
    result = _train(tmp_path, "train", str(tmp_path / "photos"), "--backend", "echo")
    assert result.exit_code == 1
    assert "not a beaver prep dataset (metadata.json is missing)" in result.stderr


def test_unknown_base_model_warns_and_uses_a_custom_preset(tmp_path, dataset):
    result = _train(
        tmp_path, "train", str(dataset), "--backend", "echo", "-m", "someone/realvis-xl", "--json"
    )
    assert result.exit_code == 0, result.output
    assert "is not a preset" in result.stderr
    assert json.loads(result.stdout)["plan"]["base_model"] == "someone/realvis-xl"


def test_output_refuses_a_folder_that_is_not_a_run(tmp_path, dataset):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"x")
    result = _train(tmp_path, "train", str(dataset), "--backend", "echo", "-o", str(target))
    assert result.exit_code == 1
    assert "is not empty and is not a beaver training run" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["holiday.jpg"]
    fresh = tmp_path / "fresh"
    again = _train(tmp_path, "train", str(dataset), "--backend", "echo", "-o", str(fresh))
    assert again.exit_code == 0
    assert (fresh / "train.sh").is_file()
    rerun = _train(tmp_path, "train", str(dataset), "--backend", "echo", "-o", str(fresh))
    assert rerun.exit_code == 0, "a run folder can be rewritten"


def test_interactive_asks_for_each_value(tmp_path, dataset):
    answers = "sd15\n512\n12\n1\n0.0002\n16\n8\n2" + "\n"
    result = _train(
        tmp_path, "train", str(dataset), "--backend", "echo", "-i", "--json", input=answers
    )
    assert result.exit_code == 0, result.output
    # CliRunner echoes the typed answers to stdout; a terminal shows them as typed.
    plan = json.loads(result.stdout[result.stdout.index("{\n") :])["plan"]
    assert "Epochs [15]" in result.stderr
    assert plan["epochs"] == 12
    assert plan["batch_size"] == 1
    assert plan["network_dim"] == 16
    assert plan["network_alpha"] == 8
    assert plan["repeats"] == {"close": 2, "mid": 2, "far": 2}
    assert plan["resolution"] == 512


def test_list_models_lists_runs_as_table_and_json(tmp_path, dataset):
    for epochs in ("5", "9"):
        assert (
            _train(
                tmp_path, "train", str(dataset), "--backend", "echo", "--epochs", epochs
            ).exit_code
            == 0
        )
    result = _train(tmp_path, "train", "list-models", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)
    assert [r["epochs"] for r in runs] == [5, 9]
    assert runs[0]["person"] == "Emma"
    assert runs[0]["trigger_word"] == "emma"
    assert runs[0]["images"] == 47
    assert runs[0]["trained"] == []
    (Path(runs[1]["path"]) / "model" / "emma.safetensors").write_bytes(b"x")
    (Path(runs[0]["path"]) / "training_info.json").write_text("{broken")
    table = _train(tmp_path, "train", "list-models")
    assert table.exit_code == 0
    assert "emma" in table.stdout
    assert "unreadable" in table.stderr
    assert json.loads(_train(tmp_path, "train", "list-models", "--json").stdout)[0]["trained"] == [
        "emma.safetensors"
    ]


def test_runs_of_the_same_second_get_their_own_folder(tmp_path):
    base = tmp_path / "20260101_000000"
    base.mkdir()
    assert new_run_dir(base).name == "20260101_000000_2"
    assert new_run_dir(tmp_path / "other") == tmp_path / "other"


def test_every_installed_backend_by_default_kohya_first(tmp_path, dataset, monkeypatch):
    monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no accelerate, no sd-scripts
    app = build_app(make_plugin_manager())
    result = runner.invoke(app, ["--output-dir", str(tmp_path / "out"), "train", str(dataset)])
    assert result.exit_code == 0, result.output
    (run,) = (tmp_path / "out" / "lora_models" / "emma").iterdir()
    info = json.loads((run / "training_info.json").read_text())
    assert list(info["backends"]) == ["kohya", "diffusers", "comfyui"]
    script = (run / "train.sh").read_text()
    assert 'backend="${1:-kohya}"' in script
    done = subprocess.run(
        ["bash", str(run / "train.sh")], check=False, capture_output=True, text=True
    )
    assert done.returncode == 3, done.stderr
    assert "git clone https://github.com/kohya-ss/sd-scripts" in done.stderr
    launch = runner.invoke(
        app, ["--output-dir", str(tmp_path / "out"), "train", str(dataset), "--run"]
    )
    assert launch.exit_code == 1
    assert "Cannot start kohya:" in launch.stderr
    assert len(list((tmp_path / "out" / "lora_models" / "emma").iterdir())) == 2


def test_images_tagged_in_preview_are_repeated_more_by_every_backend(tmp_path, monkeypatch):
    import tomllib

    from beaver.preview.editor import DatasetEditor
    from beaver.testing.trainset import write_prepared

    ds = write_prepared(tmp_path / "ds")
    editor = DatasetEditor(ds)
    for name in ("close/emma_close_0001.jpg", "close/emma_close_0002.jpg", "far/emma_far_0003.jpg"):
        editor.set_emphasis(name, True)
    app = build_app(make_plugin_manager())
    result = runner.invoke(app, ["--output-dir", str(tmp_path / "out"), "train", str(ds), "--json"])
    assert result.exit_code == 0, result.output
    run = Path(json.loads(result.stdout)["run_dir"])
    info = json.loads((run / "training_info.json").read_text())
    subsets = {s["shot"]: s for s in info["plan"]["subsets"]}
    assert subsets["close_emphasis"]["images"] == 2
    assert subsets["close_emphasis"]["repeats"] == subsets["close"]["repeats"]
    assert subsets["far_emphasis"]["images"] == 1
    assert info["config"]["total_images"] == 47  # each image counted once
    assert "3 image(s) tagged for emphasis" in info["defaults"]["repeats"]
    linked = run / "emphasis" / "close"
    assert sorted(p.name for p in linked.iterdir()) == [
        "emma_close_0001.jpg", "emma_close_0001.txt", "emma_close_0002.jpg", "emma_close_0002.txt",
    ]  # fmt: skip
    assert (linked / "emma_close_0001.jpg").resolve() == (ds / "close" / "emma_close_0001.jpg")
    kohya = tomllib.loads((run / "kohya" / "dataset.toml").read_text())
    dirs = [s["image_dir"] for s in kohya["datasets"][0]["subsets"]]
    assert str(linked) in dirs
    rows = (run / "diffusers" / "data" / "metadata.jsonl").read_text().splitlines()
    close_repeats = subsets["close"]["repeats"]
    first = [r for r in rows if "emma_close_0001" in json.loads(r)["file_name"]]
    assert len(first) == 2 * close_repeats
    tsv = (run / "comfyui" / "dataset.tsv").read_text()
    assert f"{close_repeats}_close_emphasis" in tsv


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        ([], {"epochs": 15, "batch_size": 2, "learning_rate": 1e-4, "network_dim": 32}),
        (
            ["--epochs", "15", "--batch-size", "2", "--learning-rate", "1e-4"],
            {"epochs": 15, "batch_size": 2, "learning_rate": 1e-4},
        ),
        (["-lr", "2e-4", "--network-dim", "64", "--network-alpha", "32"], {"network_dim": 64}),
        (
            ["--base-model", "runwayml/stable-diffusion-v1-5", "--resolution", "512"],
            {"resolution": 512, "base_model": "stable-diffusion-v1-5/stable-diffusion-v1-5"},
        ),
        (["-m", "sdxl", "-o", "{tmp}/custom-run"], {"resolution": 1024}),
    ],
    ids=["basic", "custom", "short-lr", "sd15", "output"],
)
def test_the_workflow_documents_train_examples(tmp_path, dataset, args, expect):
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = _train(tmp_path, "train", str(dataset), "--backend", "echo", "--json", *args)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    for key, value in expect.items():
        assert plan[key] == value
    if "-o" in args:
        assert json.loads(result.stdout)["run_dir"] == str(tmp_path / "custom-run")


def test_what_a_backend_cannot_apply_is_said_and_recorded(tmp_path, dataset):
    app = build_app(make_plugin_manager())
    result = runner.invoke(
        app, ["--output-dir", str(tmp_path / "out"), "train", str(dataset), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert "diffusers: network_alpha 16 is not applied" in result.stderr
    assert "comfyui: network_alpha 16 is not applied: TrainLoraNode fixes alpha" in result.stderr
    notes = json.loads(result.stdout)["notes"]
    assert "kohya" not in notes  # sd-scripts applies the whole plan
    run = Path(json.loads(result.stdout)["run_dir"])
    assert json.loads((run / "training_info.json").read_text())["notes"] == notes
