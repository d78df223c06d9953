"""The diffusers backend: imagefolder data, the accelerate command, and the bash that runs it.

Every generated argument is checked against ``data/diffusers_args.json`` (what each
example script's ``parse_args`` accepts, read from diffusers' source); the bash lines run
against a fake checkout with a stub ``accelerate`` that records its argv.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import beaver_diffusers
from beaver.errors import ConfigError
from beaver.interfaces import Trainer
from beaver.testing.trainset import fixed_plan, normalise, write_dataset
from beaver.train.dataset import TRAINER_EXTENSIONS
from beaver.train.plan import TrainPlan
from beaver_diffusers._data import _names
from beaver_diffusers._trainer import DiffusersTrainer

HERE = Path(__file__).parent
FACTS: dict[str, Any] = json.loads((HERE / "data" / "diffusers_args.json").read_text("utf-8"))
GOLDEN = HERE / "golden" / "diffusers"
MODELS = {"sd15": "sd15", "sdxl": "sdxl", "flux": "flux.1-dev"}
# Read at import: the isolate_env fixture removes BEAVER_* variables before each test.
UPDATE_GOLDEN = os.environ.get("BEAVER_UPDATE_GOLDEN") == "1"


# --- the checker: generated arguments against the scripts' parse_args -----------------


def arg_problems(script: str, args: list[str]) -> list[str]:
    """Why ``args`` would not parse for ``script`` (by the recorded facts), or []."""
    spec = FACTS["scripts"].get(script)
    if spec is None:
        return [f"{script}: no facts recorded for this script"]
    known: dict[str, Any] = spec["arguments"]
    problems: list[str] = []
    seen: list[str] = []
    for word in args:
        name, eq, value = word.removeprefix("--").partition("=")
        if not word.startswith("--"):
            problems.append(f"{word!r} is not an --option")
            continue
        seen.append(name)
        kind = known.get(name)
        if kind is None:
            problems.append(f"--{name} is not an argument of {script}")
        elif kind == "flag":
            if eq:
                problems.append(f"--{name} is a flag and takes no value")
        elif not eq:
            problems.append(f"--{name} needs a value")
        elif isinstance(kind, list):
            if value not in kind:
                problems.append(f"--{name}={value}: not one of {kind}")
        elif kind in ("int", "float"):
            try:
                int(value) if kind == "int" else float(value)
            except ValueError:
                problems.append(f"--{name}={value}: not an {kind}")
        if name == "lr_scheduler" and value not in FACTS["lr_scheduler"]["values"]:
            problems.append(f"--lr_scheduler={value}: unknown scheduler")
    problems += [f"--{n} given twice" for n, c in Counter(seen).items() if c > 1]
    problems += [f"--{n} is required" for n in spec["required"] if n not in seen]
    for group in spec["one_of"]:
        given = [n for n in group if n in seen]
        if not given or (spec["exactly_one"] and len(given) > 1):
            problems.append(
                f"give {'exactly' if spec['exactly_one'] else 'at least'} one of {group}"
            )
    return problems


def values(args: list[str]) -> dict[str, str | None]:
    """``--name=value`` words as a dict (flags map to None)."""
    out: dict[str, str | None] = {}
    for word in args:
        name, eq, value = word.removeprefix("--").partition("=")
        out[name] = value if eq else None
    return out


# --- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("ds") / "emma")


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def written(
    plan: TrainPlan, trainer: DiffusersTrainer | None = None
) -> tuple[Path, dict[str, Any]]:
    out = plan.run_dir / "diffusers"
    (trainer or DiffusersTrainer()).write(plan, out)
    return out, json.loads((out / "command.json").read_text("utf-8"))


def metadata_rows(data_dir: Path) -> list[dict[str, Any]]:
    lines = (data_dir / "metadata.jsonl").read_text("utf-8").splitlines()
    return [json.loads(line) for line in lines]


# --- the plugin record ---------------------------------------------------------------------


def test_the_record_builds_a_trainer_and_forbids_unknown_options(tmp_path: Path):
    (spec,) = beaver_diffusers.beaver_trainers()
    trainer = spec.create({"diffusers_dir": str(tmp_path)})
    assert isinstance(trainer, Trainer)
    assert isinstance(trainer, DiffusersTrainer)
    assert trainer.diffusers_dir == tmp_path
    with pytest.raises(ConfigError, match="mixed_precision"):
        spec.create({"mixed_precision": "fp16"})  # the plan decides precision


# --- the command --------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(MODELS))
def test_every_argument_is_one_the_script_accepts(dataset: Path, tmp_path: Path, family: str):
    plan = fixed_plan(dataset, tmp_path / "run", base_model=MODELS[family])
    _, command = written(plan)
    assert command["script"] == plan.preset.diffusers_script
    assert command["script"] in FACTS["scripts"]
    assert arg_problems(command["script"], command["args"]) == []


@pytest.mark.parametrize("family", sorted(MODELS))
def test_the_command_carries_the_plan(dataset: Path, tmp_path: Path, family: str):
    plan = fixed_plan(dataset, tmp_path / "run", base_model=MODELS[family])
    out, command = written(plan)
    got = values(command["args"])
    rows = len(metadata_rows(out / "data"))
    # One pass over data/ is one plan epoch, so the scripts' own step arithmetic
    # (epochs x ceil(rows / batch)) lands on the plan's step count.
    assert int(got["num_train_epochs"] or 0) * math.ceil(rows / plan.batch_size) == plan.total_steps
    assert got["max_train_steps"] == str(plan.total_steps)
    assert got["train_batch_size"] == str(plan.batch_size)
    assert got["resolution"] == str(plan.resolution)
    assert float(got["learning_rate"] or 0) == plan.learning_rate
    assert got["lr_scheduler"] == plan.lr_scheduler
    assert got["lr_warmup_steps"] == str(plan.lr_warmup_steps)
    assert got["rank"] == str(plan.network_dim)
    assert got["mixed_precision"] == plan.mixed_precision
    assert got["seed"] == str(plan.seed)
    assert "center_crop" in got
    assert "use_8bit_adam" in got  # the plan's AdamW8bit; all three scripts take it
    assert "gradient_checkpointing" in got
    assert got["output_dir"] == str(plan.model_dir)
    assert got["report_to"] == "tensorboard"
    assert got["logging_dir"] == str(plan.logging_dir)
    assert got["validation_prompt"] == plan.sample_prompts[0]
    assert got["validation_epochs"] == str(plan.save_every_n_epochs)
    assert got["checkpointing_steps"] == str(plan.save_every_n_epochs * plan.steps_per_epoch)
    assert got["pretrained_model_name_or_path"] == plan.preset.hub_id
    assert command["rows"] == plan.samples_per_epoch
    if family == "flux":
        assert got["dataset_name"] == str(out / "data")
        assert got["caption_column"] == "text"
        assert got["instance_prompt"] == plan.dataset.class_tokens
        assert got["lora_alpha"] == str(round(plan.network_alpha))
        assert got["guidance_scale"] == "1"
    else:
        assert got["train_data_dir"] == str(out / "data")
        assert got["snr_gamma"] == repr(plan.preset.min_snr_gamma)
        assert "lora_alpha" not in got
        # alpha cannot be set in the text-to-image scripts: said, not dropped silently.
        assert any("network_alpha" in w and "not applied" in w for w in command["warnings"])
    if family == "sdxl":
        assert got["noise_offset"] == repr(plan.preset.noise_offset)


MUTATIONS = [
    ("sdxl", lambda a: [*a, "--lora_alpha=16"], "not an argument"),
    ("sd15", lambda a: [*a, "--network_alpha=16"], "not an argument"),
    ("sd15", lambda a: [*a, "--train_text_encoder"], "not an argument"),
    ("flux", lambda a: [*a, "--snr_gamma=5.0"], "not an argument"),
    ("flux", lambda a: [w.replace("--lora_alpha=16", "--lora_alpha=16.0") for w in a], "int"),
    ("flux", lambda a: [w for w in a if not w.startswith("--instance_prompt")], "required"),
    (
        "flux",
        lambda a: [w.replace("--dataset_name=", "--train_data_dir=") for w in a],
        "not an argument",
    ),
    ("flux", lambda a: [*a, "--instance_data_dir=/x"], "exactly one"),
    ("sdxl", lambda a: [w.replace("--center_crop", "--center_crop=true") for w in a], "flag"),
    ("sdxl", lambda a: [w.replace("=bf16", "=fp32") for w in a], "not one of"),
    ("sd15", lambda a: [w.replace("=cosine", "=cosine_annealing") for w in a], "scheduler"),
    ("sd15", lambda a: [*a, "--rank=8"], "twice"),
    ("sd15", lambda a: [w for w in a if not w.startswith("--train_data_dir")], "at least one"),
]


@pytest.mark.parametrize(("family", "mutate", "expected"), MUTATIONS)
def test_the_checker_catches_a_mutated_command(
    dataset: Path, tmp_path: Path, family: str, mutate: Any, expected: str
):
    plan = fixed_plan(dataset, tmp_path / "run", base_model=MODELS[family])
    _, command = written(plan)
    problems = arg_problems(command["script"], mutate(command["args"]))
    assert any(expected in p for p in problems), problems


def test_sd15_says_the_text_encoder_is_not_trained(dataset: Path, tmp_path: Path):
    plan = fixed_plan(dataset, tmp_path / "run", base_model="sd15")
    assert plan.text_encoder_lr is not None
    out, command = written(plan)
    assert any("text_encoder_lr" in w for w in command["warnings"])
    script = DiffusersTrainer().script(plan, out)
    assert "# WARNING: network_alpha 16 is not applied" in script


def test_a_single_file_checkpoint_is_refused_before_launch(dataset: Path, tmp_path: Path):
    plan = fixed_plan(dataset, tmp_path / "run", base_model="/models/juggernaut_xl.safetensors")
    trainer = DiffusersTrainer(tmp_path)
    problem = trainer.launch_problem(plan)
    assert problem is not None
    assert "diffusers-format" in problem
    assert "juggernaut_xl.safetensors" in problem
    out, _ = written(plan)  # the files are still written
    run = run_script(trainer.script(plan, out), env={})
    assert run.returncode == 3
    assert "diffusers-format" in run.stderr


# --- data/ ------------------------------------------------------------------------------


def check_data_dir(plan: TrainPlan, data_dir: Path) -> list[dict[str, Any]]:
    rows = metadata_rows(data_dir)
    assert len(rows) == plan.samples_per_epoch
    for row in rows:
        assert set(row) == {"file_name", "text"}
        assert isinstance(row["text"], str)
        assert row["text"]
        assert (data_dir / row["file_name"]).is_file()
    names = {row["file_name"] for row in rows}
    assert len(names) == len(rows)
    on_disk = {p.name for p in data_dir.iterdir()}
    assert on_disk == names | {"metadata.jsonl"}
    assert all(Path(n).suffix in TRAINER_EXTENSIONS for n in names)
    assert not any(p.is_dir() for p in data_dir.iterdir())
    # Rows per source image = that shot's repeats; captions are the dataset's.
    shot_repeats = {s.shot: s.repeats for s in plan.subsets}
    captions: dict[Path, str] = {}
    repeats: dict[Path, int] = {}
    for folder in plan.dataset.folders:
        for image in folder.images:
            captions[plan.dataset.path / image.file] = image.caption
            repeats[plan.dataset.path / image.file] = shot_repeats[folder.shot]
    per_source = Counter((data_dir / row["file_name"]).resolve() for row in rows)
    assert per_source == repeats
    for row in rows:
        assert row["text"] == captions[(data_dir / row["file_name"]).resolve()]
    return rows


def test_data_holds_one_plan_epoch_of_links(dataset: Path, tmp_path: Path):
    before = tree_digest(dataset)
    plan = fixed_plan(dataset, tmp_path / "run", base_model="sdxl")
    out, _ = written(plan)
    rows = check_data_dir(plan, out / "data")
    assert all((out / "data" / r["file_name"]).is_symlink() for r in rows)
    assert tree_digest(dataset) == before  # the dataset is never modified


def test_uneven_repeats_become_repeated_rows(tmp_path: Path):
    ds = write_dataset(tmp_path / "ds", shots={"close": 4, "mid": 12, "far": 2})
    plan = fixed_plan(ds, tmp_path / "run", base_model="sd15")
    repeats = {s.shot: s.repeats for s in plan.subsets}
    assert len(set(repeats.values())) > 1, repeats
    out, _ = written(plan)
    rows = check_data_dir(plan, out / "data")
    far = [r["file_name"] for r in rows if r["file_name"].startswith("emma_far_0001")]
    assert far == ["emma_far_0001.jpg"] + [
        f"emma_far_0001.r{k}.jpg" for k in range(2, repeats["far"] + 1)
    ]


def test_rewriting_replaces_the_previous_data(dataset: Path, tmp_path: Path):
    out, _ = written(fixed_plan(dataset, tmp_path / "run", base_model="sd15", repeats=3))
    plan = fixed_plan(dataset, tmp_path / "run", base_model="sd15", repeats=1)
    out, command = written(plan)
    check_data_dir(plan, out / "data")
    assert command["rows"] == plan.samples_per_epoch == 47


def test_copies_when_links_are_refused(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def refuse(self: Path, target: Path) -> None:
        raise OSError("symbolic links are not supported here")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    plan = fixed_plan(dataset, tmp_path / "run", base_model="sd15", repeats=1)
    out, command = written(plan)
    rows = metadata_rows(out / "data")
    first = out / "data" / rows[0]["file_name"]
    assert not first.is_symlink()
    assert first.read_bytes() == (dataset / plan.dataset.folders[0].images[0].file).read_bytes()
    assert any("copied" in w for w in command["warnings"])


def test_link_names_stay_unique_and_visible():
    taken: set[str] = set()
    first = _names("close", "close/a.JPG", 2, taken)
    second = _names("mid", "mid/a.jpg", 2, taken)
    hidden = _names("far", "far/.b.png", 1, taken)
    assert first == ["a.jpg", "a.r2.jpg"]
    assert second == ["mid-a.jpg", "mid-a.r2.jpg"]
    assert hidden == ["b.png"]


# --- golden files --------------------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(MODELS))
def test_golden(dataset: Path, tmp_path: Path, family: str):
    plan = fixed_plan(dataset, tmp_path / "run", base_model=MODELS[family])
    trainer = DiffusersTrainer()
    out, _ = written(plan, trainer)
    produced = {
        "command.json": (out / "command.json").read_text("utf-8"),
        "metadata.jsonl": (out / "data" / "metadata.jsonl").read_text("utf-8"),
        "train_body.sh": trainer.script(plan, out),
    }
    folder = GOLDEN / family
    if UPDATE_GOLDEN:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in produced.items():
            (folder / name).write_text(normalise(text, plan), encoding="utf-8")
    for name, text in produced.items():
        assert normalise(text, plan) == (folder / name).read_text("utf-8"), name


# --- the bash lines ------------------------------------------------------------------------


STUB = """#!{python}
import json, os, sys
with open(os.environ["ARGV_FILE"], "w", encoding="utf-8") as f:
    json.dump(sys.argv[1:], f)
"""


def run_script(
    body: str, env: dict[str, str], path: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``body`` as the core runs it: a function in a ``set -euo pipefail`` script."""
    script = f"set -euo pipefail\nrun_diffusers() {{\n{body}}}\nrun_diffusers\n"
    full = {"HOME": env.get("HOME", "/nonexistent"), "PATH": path or os.devnull, **env}
    return subprocess.run(
        ["/bin/bash", "-c", script],
        env=full,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )


@pytest.fixture
def stub_path(tmp_path: Path) -> tuple[str, Path]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "accelerate"
    stub.write_text(STUB.format(python=sys.executable), encoding="utf-8")
    stub.chmod(0o755)
    return f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", tmp_path / "argv.json"


def fake_checkout(root: Path, script: str) -> Path:
    target = root / "examples" / script
    target.parent.mkdir(parents=True)
    target.write_text("raise SystemExit('never run by the tests')\n", encoding="utf-8")
    return root


@pytest.mark.parametrize("family", sorted(MODELS))
def test_the_script_launches_accelerate_with_every_argument(
    dataset: Path, tmp_path: Path, stub_path: tuple[str, Path], family: str
):
    path, argv_file = stub_path
    # Spaces and a quote in the run folder: every path must reach argv intact.
    plan = fixed_plan(dataset, tmp_path / "emma's run", base_model=MODELS[family])
    checkout = fake_checkout(tmp_path / "diffusers checkout", plan.preset.diffusers_script)
    trainer = DiffusersTrainer(checkout)
    out, command = written(plan, trainer)
    run = run_script(trainer.script(plan, out), {"ARGV_FILE": str(argv_file)}, path)
    assert run.returncode == 0, run.stderr
    argv = json.loads(argv_file.read_text("utf-8"))
    assert argv == ["launch", f"{checkout}/examples/{command['script']}", *command["args"]]


def test_the_environment_overrides_the_option(
    dataset: Path, tmp_path: Path, stub_path: tuple[str, Path]
):
    path, argv_file = stub_path
    plan = fixed_plan(dataset, tmp_path / "run", base_model="sd15")
    checkout = fake_checkout(tmp_path / "real", plan.preset.diffusers_script)
    trainer = DiffusersTrainer(tmp_path / "stale")
    out, _ = written(plan, trainer)
    env = {"ARGV_FILE": str(argv_file), "DIFFUSERS_DIR": str(checkout)}
    run = run_script(trainer.script(plan, out), env, path)
    assert run.returncode == 0, run.stderr
    assert (
        json.loads(argv_file.read_text("utf-8"))[1]
        == f"{checkout}/examples/{plan.preset.diffusers_script}"
    )


@pytest.mark.parametrize("configured", [True, False])
def test_without_a_checkout_it_exits_3_with_the_install_steps(
    dataset: Path, tmp_path: Path, stub_path: tuple[str, Path], configured: bool
):
    path, argv_file = stub_path
    plan = fixed_plan(dataset, tmp_path / "run", base_model="flux.1-dev")
    empty = tmp_path / "empty"
    empty.mkdir()
    trainer = DiffusersTrainer(empty if configured else None)
    out, _ = written(plan, trainer)
    run = run_script(
        trainer.script(plan, out), {"ARGV_FILE": str(argv_file), "HOME": "/home/u"}, path
    )
    assert run.returncode == 3
    where = str(empty) if configured else "/home/u/diffusers"
    reason = "does not exist" if configured else "no diffusers checkout is set"
    assert reason in run.stderr
    for step in (
        f"git clone https://github.com/huggingface/diffusers {where}",
        f"pip install -e {where}",
        f"pip install -r {where}/examples/dreambooth/requirements_flux.txt",
        "pip install peft datasets tensorboard bitsandbytes",
        "accelerate config default",
    ):
        assert step in run.stderr
    assert not argv_file.exists()
    problem = trainer.launch_problem(plan)
    assert problem is not None
    assert reason in problem
    assert "git clone https://github.com/huggingface/diffusers" in problem


def test_without_accelerate_it_exits_3(
    dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    plan = fixed_plan(dataset, tmp_path / "run", base_model="sd15")
    checkout = fake_checkout(tmp_path / "diffusers", plan.preset.diffusers_script)
    trainer = DiffusersTrainer(checkout)
    out, _ = written(plan, trainer)
    empty_bin = tmp_path / "nobin"
    empty_bin.mkdir()
    run = run_script(trainer.script(plan, out), {}, str(empty_bin))
    assert run.returncode == 3
    assert "accelerate is not on PATH" in run.stderr
    monkeypatch.setenv("PATH", str(empty_bin))
    monkeypatch.delenv("DIFFUSERS_DIR", raising=False)
    assert "accelerate is not on PATH" in (trainer.launch_problem(plan) or "")


def test_launch_problem_is_none_when_ready(
    dataset: Path, tmp_path: Path, stub_path: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
):
    path, _ = stub_path
    plan = fixed_plan(dataset, tmp_path / "run", base_model="sdxl")
    checkout = fake_checkout(tmp_path / "diffusers", plan.preset.diffusers_script)
    monkeypatch.setenv("PATH", path)
    monkeypatch.delenv("DIFFUSERS_DIR", raising=False)
    assert DiffusersTrainer(checkout).launch_problem(plan) is None
    monkeypatch.setenv("DIFFUSERS_DIR", str(tmp_path / "elsewhere"))
    assert "does not exist" in (DiffusersTrainer(checkout).launch_problem(plan) or "")
