"""The comfyui backend: workflow checked against ComfyUI's node facts, golden files, and
train.sh run under bash against a local fake ComfyUI server."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import pytest

from beaver.errors import ConfigError
from beaver.interfaces import Trainer
from beaver.plugins import make_plugin_manager
from beaver.testing.trainset import fixed_plan, normalise, write_dataset
from beaver.train.command import train_script
from beaver.train.plan import TrainPlan
from beaver_comfyui import ComfyUIOptions, create_trainer
from beaver_comfyui._workflow import NODE_SOURCES, build_workflow, dataset_folder

DATA = Path(__file__).parent / "data" / "comfyui_nodes.json"
GOLDEN = Path(__file__).parent / "golden" / "comfyui"
FACTS: dict[str, Any] = json.loads(DATA.read_text(encoding="utf-8"))
NODES: dict[str, Any] = FACTS["nodes"]
LINK_ONLY = {"MODEL", "CLIP", "VAE", "IMAGE", "LATENT", "CONDITIONING", "LORA_MODEL", "LOSS_MAP"}
BASES = {"sd15": "sd15", "sdxl": "sdxl", "flux": "flux.1-dev"}
# Read at import: the autouse isolate_env fixture clears BEAVER_* before each test runs.
UPDATE_GOLDEN = bool(os.environ.get("BEAVER_UPDATE_GOLDEN"))
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)


def _check_value(where: str, spec: dict[str, Any], value: Any) -> list[str]:
    kind = spec["type"]
    if kind in LINK_ONLY:
        return [f"{where}: a {kind} must come from a link, not {value!r}"]
    ok = {
        "INT": isinstance(value, int) and not isinstance(value, bool),
        "FLOAT": isinstance(value, int | float) and not isinstance(value, bool),
        "BOOLEAN": isinstance(value, bool),
        "STRING": isinstance(value, str),
        "COMBO": isinstance(value, str),
    }[kind]
    if not ok:
        return [f"{where}: {value!r} is not {kind}"]
    if "choices" in spec and value not in spec["choices"]:
        return [f"{where}: {value!r} is not among {spec['choices']}"]
    if "min" in spec and value < spec["min"]:
        return [f"{where}: {value!r} is below the minimum {spec['min']}"]
    if "max" in spec and value > spec["max"]:
        return [f"{where}: {value!r} is above the maximum {spec['max']}"]
    return []


def check_workflow(workflow: dict[str, Any]) -> list[str]:
    """Every problem ComfyUI's validation would report, judged from the facts file."""
    errors: list[str] = []
    for node_id, node in workflow.items():
        class_type = node.get("class_type")
        if class_type not in NODES:
            errors.append(f"{node_id}: unknown class_type {class_type!r}")
            continue
        facts = NODES[class_type]
        known = {**facts["required"], **facts["optional"]}
        inputs = node.get("inputs", {})
        errors += [
            f"{node_id}: missing required input {name!r}"
            for name in facts["required"]
            if name not in inputs
        ]
        for name, value in inputs.items():
            where = f"{node_id}.{name}"
            if name not in known:
                errors.append(f"{where}: {class_type} has no input {name!r}")
            elif _is_link(value):
                source = workflow.get(value[0])
                if source is None:
                    errors.append(f"{where}: links to missing node {value[0]!r}")
                    continue
                outputs = NODES.get(source["class_type"], {}).get("outputs", [])
                if not 0 <= value[1] < len(outputs):
                    errors.append(f"{where}: {source['class_type']} has no output {value[1]}")
                elif outputs[value[1]]["type"] != known[name]["type"]:
                    errors.append(
                        f"{where}: {outputs[value[1]]['type']} linked to a {known[name]['type']} input"
                    )
            else:
                errors += _check_value(where, known[name], value)
        if not isinstance(node.get("_meta", {}).get("title"), str):
            errors.append(f"{node_id}: no _meta.title")
    if not any(NODES.get(n.get("class_type"), {}).get("output_node") for n in workflow.values()):
        errors.append("no output node: ComfyUI would run nothing")
    return errors


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("comfyui") / "dataset")


def _plan(dataset: Path, tmp_path: Path, family: str = "sdxl", **request: Any) -> TrainPlan:
    return fixed_plan(dataset, tmp_path / "run", base_model=BASES.get(family, family), **request)


def _find(workflow: dict[str, Any], class_type: str) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [n for n in workflow.values() if n["class_type"] == class_type]
    (node,) = nodes
    return node


@pytest.mark.parametrize("family", BASES)
def test_every_node_input_link_and_choice_is_comfyuis(dataset, tmp_path, family):
    workflow = build_workflow(_plan(dataset, tmp_path, family))
    assert check_workflow(workflow) == []


def test_workflow_carries_the_plan(dataset, tmp_path):
    plan = _plan(dataset, tmp_path, "sdxl")
    workflow = build_workflow(plan)
    train = _find(workflow, "TrainLoraNode")["inputs"]
    assert (train["steps"], train["batch_size"], train["rank"]) == (
        plan.total_steps,
        plan.batch_size,
        plan.network_dim,
    )
    assert (train["learning_rate"], train["seed"]) == (plan.learning_rate, plan.seed)
    assert train["training_dtype"] == "bf16"
    assert train["gradient_checkpointing"] is True
    assert train["bucket_mode"] is True
    assert train["algorithm"] == "LoRA"
    assert (
        _find(workflow, "CheckpointLoaderSimple")["inputs"]["ckpt_name"]
        == "sd_xl_base_1.0.safetensors"
    )
    assert (
        _find(workflow, "LoadImageTextDataSetFromFolder")["inputs"]["folder"] == "beaver_emma_run"
    )
    scale = _find(workflow, "ImageScaleToTotalPixels")["inputs"]
    assert (scale["megapixels"], scale["resolution_steps"]) == (1.0, 32)
    save = _find(workflow, "SaveLoRA")["inputs"]
    assert save == {"lora": ["6", 0], "prefix": "loras/emma", "steps": ["6", 2]}


def test_flux_uses_the_separate_loaders_and_guidance_1(dataset, tmp_path):
    workflow = build_workflow(_plan(dataset, tmp_path, "flux"))
    assert _find(workflow, "UNETLoader")["inputs"]["unet_name"] == "flux1-dev.safetensors"
    clip = _find(workflow, "DualCLIPLoader")["inputs"]
    assert (clip["clip_name1"], clip["clip_name2"], clip["type"]) == (
        "clip_l.safetensors",
        "t5xxl_fp16.safetensors",
        "flux",
    )
    assert _find(workflow, "VAELoader")["inputs"]["vae_name"] == "ae.safetensors"
    assert _find(workflow, "FluxGuidance")["inputs"]["guidance"] == 1.0
    assert not [n for n in workflow.values() if n["class_type"] == "CheckpointLoaderSimple"]


def _set(node: str, name: str, value: Any):
    def mutate(wf: dict[str, Any]) -> None:
        wf[node]["inputs"][name] = value

    return mutate


def _drop(node: str, name: str):
    def mutate(wf: dict[str, Any]) -> None:
        del wf[node]["inputs"][name]

    return mutate


def _retype(node: str, class_type: str):
    def mutate(wf: dict[str, Any]) -> None:
        wf[node]["class_type"] = class_type

    return mutate


# sdxl workflow ids: 1 checkpoint, 2 dataset, 3 scale, 4 encode, 5 buckets, 6 train, 7 save, 8 loss
MUTATIONS = {
    "required input missing": (_drop("6", "bucket_mode"), "missing required input 'bucket_mode'"),
    "unknown input": (_set("6", "network_alpha", 16), "has no input 'network_alpha'"),
    "unknown node": (_retype("7", "SaveLoRANode"), "unknown class_type 'SaveLoRANode'"),
    "link to a missing node": (_set("7", "lora", ["99", 0]), "missing node '99'"),
    "output index out of range": (_set("7", "steps", ["6", 3]), "has no output 3"),
    "old layout (model output first)": (
        _set("7", "lora", ["6", 1]),
        "LOSS_MAP linked to a LORA_MODEL",
    ),
    "enum value not offered": (_set("6", "optimizer", "AdamW8bit"), "'AdamW8bit' is not among"),
    "above the maximum": (_set("6", "rank", 256), "above the maximum 128"),
    "wrong literal type": (_set("6", "gradient_checkpointing", "true"), "is not BOOLEAN"),
    "literal for a link": (
        _set("6", "model", "sd_xl_base_1.0.safetensors"),
        "must come from a link",
    ),
}


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_mutated_workflow_is_caught(dataset, tmp_path, name):
    workflow = build_workflow(_plan(dataset, tmp_path, "sdxl"))
    mutate, expected = MUTATIONS[name]
    broken = copy.deepcopy(workflow)
    mutate(broken)
    errors = check_workflow(broken)
    assert any(expected in e for e in errors), errors


def test_a_plan_outside_trainloranodes_limits_is_refused(dataset, tmp_path):
    with pytest.raises(ConfigError, match="rank 1-128, not 256"):
        build_workflow(_plan(dataset, tmp_path, "sdxl", network_dim=256))


def test_a_custom_model_is_never_swapped_for_the_presets(dataset, tmp_path):
    workflow = build_workflow(_plan(dataset, tmp_path, "someone/juggernaut-xl"))
    assert (
        _find(workflow, "CheckpointLoaderSimple")["inputs"]["ckpt_name"]
        == "juggernaut-xl.safetensors"
    )


def test_the_facts_file_names_the_commits_the_plugin_cites():
    files = FACTS["source"]["files"]
    for path, repo, commit in NODE_SOURCES:
        assert files[path].startswith(repo.split()[0]), path
        assert commit in files[path], path


def _write(plan: TrainPlan, **options: Any) -> tuple[list[Path], str]:
    trainer = create_trainer(ComfyUIOptions(**options))
    out = plan.run_dir / "comfyui"
    return trainer.write(plan, out), trainer.script(plan, out)


@pytest.mark.parametrize("family", BASES)
def test_golden_files(dataset, tmp_path, family):
    plan = _plan(dataset, tmp_path, family)
    files, script = _write(plan)
    produced = {p.name: p.read_text(encoding="utf-8") for p in files} | {"train_section.sh": script}
    folder = GOLDEN / family
    if UPDATE_GOLDEN:
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in produced.items():
            (folder / name).write_text(normalise(text, plan), encoding="utf-8")
    for name, text in produced.items():
        assert normalise(text, plan) == (folder / name).read_text(encoding="utf-8"), name
    prompt = json.loads(produced["prompt.json"])
    assert prompt == {
        "prompt": json.loads(produced["workflow_api.json"]),
        "client_id": "beaver_emma_run",
    }


def test_bmp_images_are_left_out_and_named(tmp_path):
    data = write_dataset(tmp_path / "ds", shots={"close": 3})
    (data / "close" / "emma_close_0001.jpg").rename(data / "close" / "emma_close_0001.bmp")
    plan = fixed_plan(data, tmp_path / "run")
    _files, _ = _write(plan)
    manifest = (plan.run_dir / "comfyui" / "dataset.tsv").read_text()
    assert "emma_close_0001.bmp" not in "".join(
        l for l in manifest.splitlines() if not l.startswith("#")
    )
    assert "emma_close_0001.bmp" in (plan.run_dir / "comfyui" / "README.md").read_text()


def test_registered_with_the_settings_names():
    spec = make_plugin_manager().trainers().get("comfyui")
    assert set(spec.options.model_fields) == {"comfyui_url", "comfyui_dir"}
    assert isinstance(spec.create({"comfyui_dir": "/nowhere"}), Trainer)


class FakeComfyUI:
    """A local stand-in for ComfyUI's HTTP API (server.py): enough for train.sh."""

    def __init__(self, comfy: Path, models: dict[str, list[str]], outcome: str = "success"):
        self.comfy, self.models, self.outcome = comfy, models, outcome
        self.posted: list[dict[str, Any]] = []
        self.polls = 0
        self.prompt_id = str(uuid.uuid4())
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, body: Any, status: int = 200) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._send(*fake.get(self.path))

            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                self._send(*fake.post(self.path, json.loads(self.rfile.read(length))))

        return Handler

    def get(self, path: str) -> tuple[Any, int]:
        parts = urlsplit(path)
        if parts.path == "/system_stats":
            return {"system": {"comfyui_version": "0.38.1"}, "devices": []}, 200
        if parts.path.startswith("/object_info/"):
            node = parts.path.rsplit("/", 1)[1]
            files = self.models.get(node, [])
            return {node: {"input": {"required": {"name": [files, {}]}}}}, 200
        if parts.path == "/queue":
            running = [[0, self.prompt_id, {}, {}, []]] if self.posted and self.polls < 2 else []
            return {"queue_running": running, "queue_pending": []}, 200
        if parts.path == f"/history/{self.prompt_id}":
            self.polls += 1
            return (self._finish() if self.polls >= 2 else {}), 200
        if parts.path == "/view":
            query = parse_qs(parts.query)
            assert query == {"filename": ["ComfyUI_temp_loss_00001_.png"], "type": ["temp"]}
            return b"\x89PNG fake", 200
        return {}, 404

    def post(self, path: str, body: dict[str, Any]) -> tuple[Any, int]:
        assert path == "/prompt"
        self.posted.append(body)
        folder = _find(body["prompt"], "LoadImageTextDataSetFromFolder")["inputs"]["folder"]
        if self.outcome == "reject" or not (self.comfy / "input" / folder).is_dir():
            # What validate_prompt answers for a combo value it does not list.
            error = {
                "type": "prompt_outputs_failed_validation",
                "message": "Prompt outputs failed validation",
            }
            return {
                "error": error,
                "node_errors": {"2": {"errors": [{"type": "value_not_in_list"}]}},
            }, 400
        return {"prompt_id": self.prompt_id, "number": 0, "node_errors": {}}, 200

    def _finish(self) -> dict[str, Any]:
        prompt = self.posted[-1]["prompt"]
        if self.outcome == "error":
            message = {"node_type": "TrainLoraNode", "exception_message": "CUDA out of memory"}
            status = {
                "status_str": "error",
                "completed": False,
                "messages": [["execution_error", message]],
            }
            return {
                self.prompt_id: {
                    "prompt": [0, self.prompt_id, prompt],
                    "outputs": {},
                    "status": status,
                }
            }
        prefix = _find(prompt, "SaveLoRA")["inputs"]["prefix"]
        steps = _find(prompt, "TrainLoraNode")["inputs"]["steps"]
        lora = self.comfy / "output" / f"{prefix}_{steps}_steps_00001_.safetensors"
        if not lora.exists():
            lora.parent.mkdir(parents=True, exist_ok=True)
            lora.write_bytes(b"lora weights")
        images = [{"filename": "ComfyUI_temp_loss_00001_.png", "subfolder": "", "type": "temp"}]
        status = {"status_str": "success", "completed": True, "messages": []}
        record = {
            "prompt": [0, self.prompt_id, prompt],
            "outputs": {"8": {"images": images}},
            "status": status,
        }
        return {self.prompt_id: record}

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


SDXL_MODELS = {"CheckpointLoaderSimple": ["sd_xl_base_1.0.safetensors"]}


@pytest.fixture
def comfy(tmp_path: Path) -> Path:
    for sub in ("input", "models/checkpoints", "output"):
        (tmp_path / "ComfyUI" / sub).mkdir(parents=True)
    return tmp_path / "ComfyUI"


def _run(plan: TrainPlan, env: dict[str, str], **options: Any) -> subprocess.CompletedProcess[str]:
    _, body = _write(plan, **options)
    script = plan.run_dir / "train.sh"
    script.write_text(train_script(plan, [("comfyui", body)]), encoding="utf-8")
    base = {
        k: v
        for k, v in os.environ.items()
        if "proxy" not in k.lower() and not k.startswith("COMFYUI_")
    }
    return subprocess.run(
        ["bash", str(script), "comfyui"],
        env={**base, "COMFYUI_POLL_SECONDS": "0.05", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@needs_curl
def test_train_sh_copies_queues_waits_and_collects(dataset, tmp_path, comfy):
    plan = _plan(dataset, tmp_path, "sdxl")
    caption = dataset / "close" / "emma_close_0002.txt"
    with FakeComfyUI(comfy, SDXL_MODELS) as server:
        result = _run(plan, {"COMFYUI_URL": server.url}, comfyui_dir=comfy)
    assert result.returncode == 0, result.stderr
    assert f"queued prompt {server.prompt_id}" in result.stdout
    assert re.search(r"comfyui: running, 0m0\ds since queued", result.stdout)
    (body,) = server.posted
    assert body == json.loads((plan.run_dir / "comfyui" / "prompt.json").read_text())
    folder = comfy / "input" / dataset_folder(plan)
    for subset, shot in zip(plan.subsets, plan.dataset.folders, strict=True):
        sub = folder / f"{subset.repeats}_{subset.shot}"
        images = sorted(p.name for p in sub.glob("*.jpg"))
        assert images == sorted(Path(i.file).name for i in shot.images)
        assert len(list(sub.glob("*.txt"))) == subset.images
    copied = folder / f"{plan.subsets[0].repeats}_close" / caption.name
    assert copied.read_text() == caption.read_text()
    name = f"emma_{plan.total_steps}_steps_00001_.safetensors"
    assert (plan.model_dir / name).read_bytes() == b"lora weights"
    assert (plan.logging_dir / "loss_graph.png").read_bytes() == b"\x89PNG fake"
    assert '"status_str": "success"' in (plan.run_dir / "comfyui" / "history.json").read_text()


@needs_curl
def test_links_become_files_and_missing_captions_get_the_class_tokens(tmp_path, comfy):
    data = write_dataset(tmp_path / "ds", shots={"close": 2, "far": 2})
    real = tmp_path / "elsewhere.jpg"
    (data / "far" / "emma_far_0001.jpg").rename(real)
    (data / "far" / "emma_far_0001.jpg").symlink_to(real)
    (data / "far" / "emma_far_0002.txt").unlink()
    plan = fixed_plan(data, tmp_path / "run")
    with FakeComfyUI(comfy, SDXL_MODELS) as server:
        result = _run(plan, {"COMFYUI_URL": server.url, "COMFYUI_DIR": str(comfy)})
    assert result.returncode == 0, result.stderr
    far = comfy / "input" / dataset_folder(plan) / f"{plan.subsets[1].repeats}_far"
    assert not (far / "emma_far_0001.jpg").is_symlink()
    assert (far / "emma_far_0001.jpg").read_bytes() == real.read_bytes()
    assert (far / "emma_far_0002.txt").read_text() == "emma, person\n"


@needs_curl
def test_a_rerun_replaces_its_own_folder_but_never_a_foreign_one(dataset, tmp_path, comfy):
    plan = _plan(dataset, tmp_path, "sdxl")
    folder = comfy / "input" / dataset_folder(plan)
    folder.mkdir()
    (folder / "mine.png").write_bytes(b"user data")
    with FakeComfyUI(comfy, SDXL_MODELS) as server:
        refused = _run(plan, {"COMFYUI_URL": server.url}, comfyui_dir=comfy)
        assert refused.returncode == 1
        assert "was not written by this run" in refused.stderr
        assert (folder / "mine.png").read_bytes() == b"user data"
        assert not server.posted
        (folder / "mine.png").unlink()
        folder.rmdir()
        first = _run(plan, {"COMFYUI_URL": server.url}, comfyui_dir=comfy)
        stale = folder / "0_stale"
        stale.mkdir()
        second = _run(plan, {"COMFYUI_URL": server.url}, comfyui_dir=comfy)
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    assert not stale.exists()
    assert "reused its result" in second.stdout


@needs_curl
@pytest.mark.parametrize("outcome", ["error", "reject"])
def test_comfyui_errors_end_the_script_non_zero(dataset, tmp_path, comfy, outcome):
    plan = _plan(dataset, tmp_path, "sdxl")
    with FakeComfyUI(comfy, SDXL_MODELS, outcome=outcome) as server:
        result = _run(plan, {"COMFYUI_URL": server.url}, comfyui_dir=comfy)
    assert result.returncode == 1
    expected = (
        "error: CUDA out of memory" if outcome == "error" else "refused the workflow (HTTP 400)"
    )
    assert expected in result.stderr
    assert not list(plan.model_dir.glob("*.safetensors"))


@needs_curl
def test_without_comfyui_the_script_says_how_to_install_it(dataset, tmp_path):
    result = _run(_plan(dataset, tmp_path, "sdxl"), {})
    assert result.returncode == 3
    assert "git clone https://github.com/Comfy-Org/ComfyUI" in result.stderr
    assert "venv/bin/pip install -r requirements.txt" in result.stderr


@needs_curl
def test_without_a_server_the_script_says_how_to_start_it(dataset, tmp_path, comfy):
    with FakeComfyUI(comfy, {}) as server:
        closed = server.url  # the port is free again once the server is shut
    result = _run(_plan(dataset, tmp_path, "sdxl"), {"COMFYUI_URL": closed}, comfyui_dir=comfy)
    assert result.returncode == 3
    assert f"no ComfyUI server answers at {closed}" in result.stderr
    assert "main.py --listen 127.0.0.1 --port" in result.stderr


@needs_curl
def test_missing_model_files_print_the_downloads(dataset, tmp_path, comfy):
    plan = _plan(dataset, tmp_path, "flux")
    with FakeComfyUI(comfy, {"DualCLIPLoader": ["clip_l.safetensors"]}) as server:
        result = _run(plan, {"COMFYUI_URL": server.url}, comfyui_dir=comfy)
    assert result.returncode == 3, result.stderr
    models = comfy / "models"
    assert (
        f"hf download black-forest-labs/FLUX.1-dev flux1-dev.safetensors --local-dir {models}/diffusion_models"
        in result.stderr
    )
    assert (
        f"hf download comfyanonymous/flux_text_encoders t5xxl_fp16.safetensors --local-dir {models}/text_encoders"
        in result.stderr
    )
    assert "clip_l" not in result.stderr
    assert "is gated" in result.stderr
    assert not server.posted
    assert not (comfy / "input" / dataset_folder(plan)).exists()


def test_launch_problem(dataset, tmp_path, comfy, monkeypatch):
    monkeypatch.delenv("COMFYUI_DIR", raising=False)
    monkeypatch.delenv("COMFYUI_URL", raising=False)
    for key in [k for k in os.environ if "proxy" in k.lower()]:
        monkeypatch.delenv(key)
    plan = _plan(dataset, tmp_path, "sdxl")
    problem = create_trainer(ComfyUIOptions()).launch_problem(plan)
    assert problem
    assert "git clone https://github.com/Comfy-Org/ComfyUI" in problem
    with FakeComfyUI(comfy, {}) as server:
        trainer = create_trainer(ComfyUIOptions(comfyui_dir=comfy, comfyui_url=server.url))
        assert trainer.launch_problem(plan) is None
        closed = server.url
    problem = create_trainer(ComfyUIOptions(comfyui_dir=comfy, comfyui_url=closed)).launch_problem(
        plan
    )
    assert problem
    assert f"no ComfyUI server answers at {closed}" in problem
    monkeypatch.setenv("COMFYUI_DIR", str(tmp_path / "nothing"))
    assert "no ComfyUI folder at" in (
        create_trainer(ComfyUIOptions(comfyui_dir=comfy)).launch_problem(plan) or ""
    )


@pytest.fixture(autouse=True)
def _no_stray_threads() -> Iterator[None]:
    before = threading.active_count()
    yield
    assert threading.active_count() <= before
