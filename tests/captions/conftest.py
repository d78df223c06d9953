"""Fixtures of the caption tests (the fake captioner lives in colour_captioner.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from beaver.testing.colourcaptioner import write_image


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Five images: red, green, blue at the top, two in a sub-folder."""
    root = tmp_path / "photos"
    write_image(root / "a.jpg", "red")
    write_image(root / "b.png", "green")
    write_image(root / "c.jpg", "blue")
    write_image(root / "sub" / "d.jpg", "green")
    write_image(root / "sub" / "e.webp", "red")
    return root
