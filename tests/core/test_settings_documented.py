"""Every setting is documented in docs/configuration.md."""

from __future__ import annotations

from pathlib import Path

from beaver.settings import load_settings, settings_table

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_has_a_row():
    text = DOC.read_text(encoding="utf-8")
    keys = [key for key, _, _ in settings_table(load_settings())]
    assert len(keys) > 10
    missing = [key for key in keys if f"| `{key}` |" not in text]
    assert missing == []
