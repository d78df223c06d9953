"""Edits made in ``beaver preview``, remembered per photo so that ``beaver prep`` keeps them.

``.beaver-edits.json`` in the dataset maps each photo's content key (the one in
``.beaver-prep.json``) to what the user decided: a shot type, a caption, excluded, emphasis.
A re-run of prep applies them instead of its own classification and captions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["EDITS", "EXCLUDED_DIR", "USER_EXCLUDED", "read_edits"]

EDITS = ".beaver-edits.json"
EXCLUDED_DIR = "excluded"
"""Images left out in preview live here: in the dataset, but not where trainers look."""
USER_EXCLUDED = "excluded_in_preview"
"""metadata.json's ``excluded`` reason for them."""
SHOTS = ("close", "mid", "far", "unknown")


def read_edits(dataset: Path) -> dict[str, dict[str, Any]]:
    """Per-photo edits by content key (``{}`` when none or unreadable), checked for shape."""
    try:
        data = json.loads((dataset / EDITS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, dict):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for key, record in images.items():
        if not isinstance(record, dict):
            continue
        clean: dict[str, Any] = {}
        if record.get("shot") in SHOTS:
            clean["shot"] = record["shot"]
        if isinstance(record.get("caption"), str) and record["caption"].strip():
            clean["caption"] = " ".join(record["caption"].split())
        if record.get("excluded") is True:
            clean["excluded"] = True
        if record.get("emphasis") is True:
            clean["emphasis"] = True
        if clean:
            out[str(key)] = clean
    return out
