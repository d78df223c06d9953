"""The coca captioner end to end through the plugin manager, on tiny random CoCa models.

The models are built here from a tiny open_clip CoCa config (the CLIP tokenizer's 49,408
tokens, everything else a few dozen wide) and saved as open_clip's hub format
(``open_clip_config.json`` + weights), in folders and in a private Hugging Face cache. Their
decoder is nudged towards the end token so that captions end at different lengths, and the
batched decoding has sequences to pad.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from beaver.errors import ConfigError, ModelError
from beaver.images import open_image
from beaver.interfaces import Caption, Captioner
from beaver.plugins import make_plugin_manager

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")
hub_constants = pytest.importorskip("huggingface_hub.constants")

import beaver_coca
from beaver_coca import _generate
from beaver_coca._captioner import clean_caption
from beaver_coca._sources import known_repos

TINY: dict[str, Any] = {
    "embed_dim": 16,
    "vision_cfg": {
        "image_size": 64,
        "layers": 1,
        "width": 16,
        "head_width": 8,
        "patch_size": 16,
        "attentional_pool": True,
        "attn_pooler_heads": 2,
        "attn_pooler_queries": 8,
        "output_tokens": True,
    },
    "text_cfg": {
        "context_length": 32,
        "vocab_size": 49408,
        "width": 16,
        "heads": 2,
        "layers": 1,
        "embed_cls": True,
        "output_tokens": True,
    },
    "multimodal_cfg": {
        "context_length": 32,
        "vocab_size": 49408,
        "width": 16,
        "heads": 2,
        "layers": 1,
        "attn_pooler_heads": 2,
    },
    "custom_text": True,
}
PREPROCESS = {
    "mean": list(open_clip.OPENAI_DATASET_MEAN),
    "std": list(open_clip.OPENAI_DATASET_STD),
}
SIZES = [(640, 480), (10, 10), (2000, 100), (123, 457)]
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def tiny_state(seed: int = 2, end_bias: float = 12.0) -> dict[str, Any]:
    """Weights of a tiny CoCa whose captions end at a few different lengths."""
    torch.manual_seed(seed)
    config = copy.deepcopy(TINY)
    del config["custom_text"]
    model = open_clip.CoCa(**config)
    with torch.no_grad():
        # open_clip leaves the decoder's projection uninitialised (torch.empty).
        projection = model.text_decoder.text_projection
        torch.nn.init.normal_(projection)
        norm = model.text_decoder.ln_final
        norm.bias.fill_(0.5)
        projection[:, _generate.END] += end_bias * norm.bias / norm.bias.square().sum()
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def save_folder(
    folder: Path,
    state: dict[str, Any] | None,
    *,
    config: dict[str, Any] | None = None,
    weights: str = "open_clip_pytorch_model.bin",
) -> Path:
    folder.mkdir(parents=True)
    if config is not None:
        text = json.dumps({"model_cfg": config, "preprocess_cfg": PREPROCESS})
        (folder / "open_clip_config.json").write_text(text, encoding="utf-8")
    if state is not None:
        if weights.endswith(".safetensors"):
            from safetensors.torch import save_file

            save_file(state, str(folder / weights))
        else:
            torch.save(state, folder / weights)
    return folder


def create(**options: Any) -> Any:
    return make_plugin_manager().captioners().get("coca").create(options)


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """On tensors this small torch's thread pool costs more than it saves (10x on a busy box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("coca")
    state = tiny_state()
    save_folder(root / "tiny", state, config=TINY)
    save_folder(root / "tiny_st", state, config=TINY, weights="open_clip_model.safetensors")
    save_folder(root / "weights_only", state)
    clip = {k: v for k, v in TINY.items() if k != "multimodal_cfg"}
    save_folder(root / "clip", state, config=clip)
    hf_text = copy.deepcopy(TINY)
    hf_text["text_cfg"]["hf_tokenizer_name"] = "roberta-base"
    save_folder(root / "hf_text", state, config=hf_text)
    save_folder(root / "corrupt", None, config=TINY)
    (root / "corrupt" / "open_clip_pytorch_model.bin").write_bytes(b"not a checkpoint" * 64)
    deeper = copy.deepcopy(TINY)
    deeper["multimodal_cfg"]["layers"] = 2
    save_folder(root / "deeper", state, config=deeper)
    return root


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in SIZES]


@pytest.fixture(scope="module")
def tiny(models: Path) -> Any:
    return create(model=str(models / "tiny"), seq_len=12)


@pytest.fixture(scope="module")
def expected(tiny: Any, images: list[Image.Image]) -> list[Caption]:
    """The folder model's captions of ``images``, which every other way to load it must give."""
    captions: list[Caption] = tiny.caption(images)
    return captions


@pytest.fixture(scope="module")
def greedy(models: Path) -> Any:
    return create(model=str(models / "tiny"), seq_len=12, generation_type="top_k")


@pytest.fixture
def hub_cache(monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test's private, empty HF cache, also where an already imported huggingface_hub looks."""
    cache = Path(os.environ["HF_HUB_CACHE"])
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_repo(cache: Path, repo: str, source: Path) -> Path:
    """``source``'s files as the hub cache holds a downloaded repo."""
    base = cache / f"models--{repo.replace('/', '--')}"
    snapshot = base / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (base / "refs").mkdir()
    (base / "refs" / "main").write_text(COMMIT, encoding="utf-8")
    for path in source.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    return snapshot


def test_one_caption_per_image_in_order(tiny, images, expected):
    captions = expected

    assert isinstance(tiny, Captioner)
    assert len(captions) == len(images)
    assert all(isinstance(c, Caption) and c.text and c.tags == () for c in captions)
    assert not any("<" in c.text or c.text.endswith((" ", ".")) for c in captions)
    assert len({c.text for c in captions}) > 1, "the tiny model captions every image alike"
    assert tiny.caption(images[::-1]) == captions[::-1]
    assert tiny.caption([]) == []


def test_what_the_core_reads(tiny, models):
    assert tiny.model_id == f"{models / 'tiny'} (seq_len: 12)"
    assert tiny.image_size == 64
    assert tiny.max_batch is None
    default = create(model=str(models / "tiny"))
    assert default.model_id == str(models / "tiny")
    sampled = create(model=str(models / "tiny"), generation_type="top_p", top_p=0.5, seed=3)
    assert sampled.model_id == f"{models / 'tiny'} (top_p: 0.5, seed: 3)"


@pytest.mark.parametrize("fixture", ["tiny", "greedy"])
def test_a_batch_gives_what_one_by_one_gives(fixture, images, request):
    captioner = request.getfixturevalue(fixture)

    batched = captioner.generate(images)

    assert batched == [captioner.generate([image])[0] for image in images]
    lengths = {len(tokens) for tokens in batched}
    assert len(lengths) > 1, "no caption ended early: the padding path went untested"
    assert all(tokens[0] == _generate.START and _generate.END not in tokens for tokens in batched)


def test_seq_len_bounds_the_tokens(models, images, greedy):
    longer = greedy.generate(images)
    short = create(model=str(models / "tiny"), seq_len=7, generation_type="top_k")
    shorter = short.generate(images)

    # Greedy decoding: the short captions are the long ones cut at 7 tokens (start + 5
    # words + the forced end token), or the same when they ended before.
    assert all(len(tokens) <= 6 for tokens in shorter)
    assert any(len(tokens) == 6 for tokens in shorter)
    assert shorter == [tokens[: len(cut)] for tokens, cut in zip(longer, shorter, strict=True)]
    assert all(len(tokens) <= 11 for tokens in longer)
    beams = create(model=str(models / "tiny"), seq_len=7).generate(images)
    assert all(len(tokens) <= 7 for tokens in beams)
    assert any(len(tokens) == 7 for tokens in beams)


def test_seq_len_longer_than_the_model_can_read(models):
    assert create(model=str(models / "tiny"), seq_len=33).model_id.endswith("(seq_len: 33)")
    with pytest.raises(ConfigError, match=r"seq_len 34 is longer than this CoCa model's text"):
        create(model=str(models / "tiny"), seq_len=34)


def test_sampling_is_seeded_and_narrow_top_p_is_greedy(models, images, greedy):
    folder = str(models / "tiny")
    narrow = create(model=folder, seq_len=12, generation_type="top_p", top_p=1e-6)
    assert narrow.generate(images) == greedy.generate(images)
    wide = create(model=folder, seq_len=12, generation_type="top_k", top_k=50, seed=7)
    first = wide.generate(images)
    assert wide.generate(images) == first
    assert first != greedy.generate(images)


def test_safetensors_and_the_local_dir_prefix(models, expected, images):
    captioner = create(model=f"local-dir:{models / 'tiny_st'}", seq_len=12)

    assert captioner.model_id == f"{models / 'tiny_st'} (seq_len: 12)"
    assert captioner.caption(images) == expected


def test_odd_images(tiny):
    odd = [
        Image.new("RGBA", (50, 30), (255, 0, 0, 128)),
        Image.new("L", (30, 50), 200),
        Image.new("RGB", (1, 1), (0, 0, 255)),
    ]
    assert [c.text != "" for c in tiny.caption(odd)] == [True] * 3


@pytest.mark.shared_data
def test_real_photos(shared_faces: Path, tiny):
    paths = sorted(shared_faces.glob("deepface/*/*.jpg"))[:4]
    photos = [open_image(path, max_side=tiny.image_size) for path in paths]

    captions = tiny.caption(photos)

    assert len(paths) == 4
    assert [bool(c.text) for c in captions] == [True] * 4
    assert captions == [tiny.caption([photo])[0] for photo in photos]


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_on_cuda(models, images, dtype):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    folder = str(models / "tiny")
    for generation_type in ("beam_search", "top_k", "top_p"):
        captioner = create(
            model=folder, seq_len=12, device="cuda", dtype=dtype, generation_type=generation_type
        )
        captions = captioner.caption(images)
        assert len(captions) == len(images)
        assert all(c.text for c in captions)


def test_a_hub_repo_in_the_cache(hub_cache, models, expected, images):
    cache_repo(hub_cache, "beaver-test/tiny-coca", models / "tiny")

    for model in ("beaver-test/tiny-coca", "hf-hub:beaver-test/tiny-coca"):
        captioner = create(model=model, seq_len=12)
        assert captioner.model_id == "beaver-test/tiny-coca (seq_len: 12)"
        assert captioner.caption(images) == expected


def test_pretrained_tags_files_and_weights_only_repos(
    hub_cache, models, expected, images, monkeypatch
):
    # A tiny architecture with a pretrained tag, registered as open_clip's own are.
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "coca_tiny", copy.deepcopy(TINY))
    tags = {"tiny_tag": {"hf_hub": "beaver-test/tiny-coca-weights/", "quick_gelu": False}}
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, "coca_tiny", tags)
    cache_repo(hub_cache, "beaver-test/tiny-coca-weights", models / "weights_only")
    assert known_repos()["beaver-test/tiny-coca-weights"] == ("coca_tiny", "tiny_tag")
    weights = models / "weights_only" / "open_clip_pytorch_model.bin"

    by_tag = create(model="coca_tiny", pretrained="tiny_tag", seq_len=12)
    by_file = create(model="coca_tiny", pretrained=str(weights), seq_len=12)
    by_repo = create(model="beaver-test/tiny-coca-weights", seq_len=12)

    assert by_tag.model_id == "coca_tiny (pretrained: tiny_tag, seq_len: 12)"
    assert by_file.model_id == f"coca_tiny (pretrained: {weights}, seq_len: 12)"
    assert by_repo.model_id == "beaver-test/tiny-coca-weights (seq_len: 12)"
    for captioner in (by_tag, by_file, by_repo):
        assert captioner.caption(images) == expected


def test_open_clips_coca_repos_are_known():
    repos = known_repos()

    assert repos["laion/CoCa-ViT-L-14-laion2B-s13B-b90k"] == ("coca_ViT-L-14", "laion2b_s13b_b90k")
    assert repos["laion/mscoco_finetuned_CoCa-ViT-B-32-laion2B-s13B-b90k"][0] == "coca_ViT-B-32"


def test_missing_weights_offline_name_the_fetch_command(hub_cache):
    repo = "laion/mscoco_finetuned_CoCa-ViT-L-14-laion2B-s13B-b90k"
    with pytest.raises(
        ModelError, match=rf"{repo}: not in the Hugging Face cache.*hf download {repo}"
    ):
        create()
    with pytest.raises(ModelError, match="hf download someone/absent-coca"):
        create(model="someone/absent-coca")
    with pytest.raises(ModelError, match="hf download someone/absent-coca"):
        create(model="hf-hub:someone/absent-coca")


@pytest.mark.parametrize(
    ("folder", "error"),
    [
        (
            "clip",
            (
                r"clip/open_clip_config\.json: this open_clip model has no text decoder .*"
                "not a CoCa model"
            ),
        ),
        ("weights_only", r"weights_only: open_clip weights without the open_clip_config\.json"),
        ("hf_text", "uses the Hugging Face tokenizer roberta-base"),
        ("corrupt", r"corrupt: could not load this CoCa model"),
        ("deeper", r"deeper: could not load this CoCa model \(.*Missing key"),
    ],
)
def test_folders_that_are_not_coca_models(models, folder, error):
    with pytest.raises(ModelError, match=error) as caught:
        create(model=str(models / folder))
    hint = caught.value.hint or ""
    assert "CoCa" in hint or "pretrained" in hint


def test_wrong_architectures_tags_and_options(models):
    with pytest.raises(ConfigError, match=r"coca_ViT-Z-99: not an open_clip architecture"):
        create(model="coca_ViT-Z-99")
    with pytest.raises(ModelError, match=r"ViT-B-32: this open_clip model has no text decoder"):
        create(model="ViT-B-32")
    with pytest.raises(ConfigError, match="no pretrained weights tagged 'nope'") as caught:
        create(model="coca_ViT-B-32", pretrained="nope")
    assert "mscoco_finetuned_laion2b_s13b_b90k" in str(caught.value.hint)
    with pytest.raises(ModelError, match=r"nope\.bin: no such checkpoint file"):
        create(model="coca_ViT-B-32", pretrained="/no/such/nope.bin")
    with pytest.raises(ConfigError, match=r"pretrained .* applies to architecture names"):
        create(model=str(models / "tiny"), pretrained="laion2b_s13b_b90k")
    with pytest.raises(ConfigError, match="half precision on CUDA only"):
        create(model=str(models / "tiny"), device="cpu", dtype="bfloat16")


def test_clean_caption():
    raw = "<start_of_text>a man 's dog , on a beach . <end_of_text>!!!!"
    assert clean_caption(raw) == "a man's dog, on a beach"
    assert clean_caption("a cat sitting on a table .  ") == "a cat sitting on a table"


def test_check_wants_open_clip_3(monkeypatch):
    assert beaver_coca.check() is None
    monkeypatch.setattr(beaver_coca.importlib.metadata, "version", lambda _name: "2.24.0")
    assert "open_clip_torch>=3.0" in (beaver_coca.check() or "")


@pytest.mark.shared_data
def test_beaver_caption_end_to_end_on_real_photos(models, shared_faces: Path, tmp_path: Path):
    from beaver.testing.captioncli import caption_photos

    photos = sorted(shared_faces.rglob("*.jpg"))[:4]
    data = caption_photos(photos, tmp_path, "coca", model=str(models / "tiny"))
    assert data["captioner"] == "coca"


@pytest.mark.parametrize(
    ("torch_version", "vision_version", "broken"),
    [
        ("2.13.0+cpu", "0.28.0", True),  # PyPI's torchvision beside a CPU-only torch
        ("2.13.0+cpu", "0.28.0+cpu", False),
        ("2.13.0", "0.28.0", False),
    ],
)
def test_a_torchvision_that_cannot_load_is_reported_without_importing(
    monkeypatch, torch_version, vision_version, broken
):
    import importlib.metadata

    import beaver_coca
    from beaver.errors import ConfigError

    versions = {"torch": torch_version, "torchvision": vision_version}
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: versions.get(name) or real(name)
    )
    problem = beaver_coca.torch_pair_problem()
    assert (problem is not None) == broken
    if broken:
        assert beaver_coca.check() == problem
        with pytest.raises(ConfigError, match="CPU-only build"):
            beaver_coca.create_captioner(beaver_coca.CocaOptions())
