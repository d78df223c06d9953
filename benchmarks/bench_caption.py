"""`beaver caption`: batch 1 against batched, on the same model, through the real caption loop.

No captioning weights can be downloaded here, so the models have the real architectures
and sizes with random weights: the work per image (and what batching saves) is the real
one, the words are not. Each model captions the same photos twice, through
``caption_folder`` with ``--batch-size 1`` and with a batch, and the script prints
images/s and the ratio. Photos: ../shared/faces when present, else generated ones.

* ``wd14``: a CNN tagger in the SmilingWolf format (448x448 BGR input, 4 stride-2
  convolution stages, sigmoid over the tags), built with onnx, run by the wd14 plugin.
* ``blip``: BLIP-base's architecture (ViT-B/16 at 384 px, BERT-base text decoder), random
  weights, run by the blip plugin with greedy decoding of a fixed 20 tokens.

    python benchmarks/bench_caption.py [--images 24] [--batch 8] [--only wd14|blip] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


def photos(folder: Path, count: int) -> Path:
    """``count`` real photos (or generated ones) copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    real = sorted((SHARED / "faces").rglob("*.jpg")) if (SHARED / "faces").is_dir() else []
    rng = np.random.default_rng(0)
    for k in range(count):
        target = folder / f"p{k:03d}.jpg"
        if real:
            target.write_bytes(real[k % len(real)].read_bytes())
        else:
            pixels = rng.integers(0, 255, (768, 1024, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(target, quality=90)
    return folder


def wd14_model(folder: Path) -> Path:
    """A SmilingWolf-format tagger folder: a 448 px CNN with random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from beaver.testing.tinytagger import DEFAULT_TAGS, MODEL_FILE, TAGS_FILE, tags_csv

    rng = np.random.default_rng(1)
    nodes, inits = [], []
    x = "input_1"
    nodes.append(helper.make_node("Transpose", [x], ["nchw"], perm=[0, 3, 1, 2]))
    prev, channels = "nchw", 3
    for stage, width in enumerate((32, 64, 128, 256)):
        for rep in range(2):
            name = f"s{stage}r{rep}"
            stride = 2 if rep == 0 else 1
            w = rng.normal(0, (2 / (9 * channels)) ** 0.5, (width, channels, 3, 3)) / 255
            inits.append(numpy_helper.from_array(w.astype(np.float32), f"{name}_w"))
            inits.append(numpy_helper.from_array(np.zeros(width, np.float32), f"{name}_b"))
            nodes.append(
                helper.make_node(
                    "Conv",
                    [prev, f"{name}_w", f"{name}_b"],
                    [f"{name}_c"],
                    kernel_shape=[3, 3],
                    strides=[stride, stride],
                    pads=[1, 1, 1, 1],
                )
            )
            nodes.append(helper.make_node("Relu", [f"{name}_c"], [f"{name}_y"]))
            prev, channels = f"{name}_y", width
    nodes.append(helper.make_node("GlobalAveragePool", [prev], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    tags = len(DEFAULT_TAGS)
    head = rng.normal(0, 0.05, (channels, tags)).astype(np.float32)
    inits.append(numpy_helper.from_array(head, "head"))
    nodes.append(helper.make_node("MatMul", ["flat", "head"], ["logits"]))
    nodes.append(helper.make_node("Sigmoid", ["logits"], ["predictions_sigmoid"]))
    graph = helper.make_graph(
        nodes,
        "bench_tagger",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 448, 448, 3])],
        [helper.make_tensor_value_info("predictions_sigmoid", TensorProto.FLOAT, ["N", tags])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / MODEL_FILE)
    (folder / TAGS_FILE).write_text(tags_csv(DEFAULT_TAGS), encoding="utf-8")
    return folder


def blip_model(folder: Path) -> Path:
    """BLIP-base's architecture with random weights, and a BERT-sized WordPiece vocab."""
    import torch
    from transformers import (
        BertTokenizerFast,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    config = BlipConfig()  # defaults: ViT-B/16 at 384 px, BERT-base text decoder
    # BERT's 30522 WordPiece entries, then [DEC] (BLIP's bos, 30522) and [ENC], as in
    # Salesforce's tokenizer: 30524 in all, BLIP's default vocab size.
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"w{k}" for k in range(30522 - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tokenizer.add_special_tokens({"bos_token": "[DEC]", "additional_special_tokens": ["[ENC]"]})
    text = config.text_config
    text.vocab_size = len(tokenizer)
    text.bos_token_id = tokenizer.convert_tokens_to_ids("[DEC]")
    text.pad_token_id = tokenizer.pad_token_id
    text.sep_token_id = text.eos_token_id = tokenizer.sep_token_id
    torch.manual_seed(0)
    model = BlipForConditionalGeneration(config)
    model.save_pretrained(folder)
    image = BlipImageProcessor(size={"height": 384, "width": 384})
    BlipProcessor(image_processor=image, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def timed_run(
    images: Path, out: Path, name: str, options: dict[str, Any], batch: int
) -> tuple[float, int]:
    """Images/s of one caption run of the whole folder through the real caption loop."""
    from beaver.captions.run import CaptionPlan, caption_folder
    from beaver.plugins import make_plugin_manager

    spec = make_plugin_manager().captioners().get(name)
    captioner = spec.create(options)  # loaded before timing: we compare batching, not loading
    plan = CaptionPlan(
        input_dir=images, output_dir=out, captioner=name, options=options, batch_size=batch
    )
    start = time.perf_counter()
    report = caption_folder(plan, lambda: captioner)
    seconds = time.perf_counter() - start
    return report.captioned / seconds, report.batch_size


MODELS: dict[str, tuple[Callable[[Path], Path], Callable[[Path], dict[str, Any]]]] = {
    "wd14": (wd14_model, lambda folder: {"model": str(folder), "device": "cpu"}),
    "blip": (
        blip_model,
        lambda folder: {
            "model": str(folder),
            "device": "cpu",
            "num_beams": 1,
            "max_new_tokens": 20,
            "min_new_tokens": 20,
        },
    ),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--only", choices=sorted(MODELS))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="beaver-bench-caption-") as tmp:
        work = Path(tmp)
        folder = photos(work / "photos", args.images)
        for name, (build, options_for) in MODELS.items():
            if args.only and name != args.only:
                continue
            try:
                options = options_for(build(work / f"{name}-model"))
            except ImportError as exc:
                print(f"skipped {name}: {exc}", file=sys.stderr)
                continue
            one, _ = timed_run(folder, work / f"{name}-1", name, options, 1)
            many, used = timed_run(folder, work / f"{name}-n", name, options, args.batch)
            results.append(
                {
                    "captioner": name,
                    "images": args.images,
                    "batch_1_images_per_s": round(one, 2),
                    "batched_images_per_s": round(many, 2),
                    "batch": used,
                    "ratio": round(many / one, 2),
                }
            )
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    import torch

    device = "CPU" if not torch.cuda.is_available() else torch.cuda.get_device_name()
    print(f"caption throughput, batch 1 vs batched, same model, {args.images} photos ({device})")
    for r in results:
        print(
            f"  {r['captioner']:5s}  batch 1: {r['batch_1_images_per_s']:7.2f} img/s   "
            f"batch {r['batch']}: {r['batched_images_per_s']:7.2f} img/s   "
            f"ratio {r['ratio']:.2f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
