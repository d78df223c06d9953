"""The JSON Schemas in docs/schemas/ are the ones the code writes (no drift)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from beaver.captions.schema import captions_schema
from beaver.faces.cache import cache_schema
from beaver.faces.export import manifest_schema
from beaver.prep.dataset import schemas as dataset_schemas
from beaver.train.runs import run_schemas

DOCS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("face_cache.schema.json", cache_schema),
        ("export_manifest.schema.json", manifest_schema),
        ("captions.schema.json", captions_schema),
        *(
            (f"{name}.schema.json", lambda name=name: dataset_schemas()[name])
            for name in ("metadata", "shots", "concepts", "preview_manifest")
        ),
        *(
            (f"{name}.schema.json", lambda name=name: run_schemas()[name])
            for name in ("training_config", "training_info")
        ),
    ],
)
def test_committed_schema_matches_code(name: str, make: Callable[[], dict[str, Any]]) -> None:
    committed = json.loads((DOCS / name).read_text(encoding="utf-8"))
    assert committed == make(), f"regenerate docs/schemas/{name} (see docs/faces.md)"
