"""``beaver models``: list, pull and add model packs."""

from __future__ import annotations

from beaver.cli._app import BeaverTyper

app = BeaverTyper(help="Manage face model packs (insightface layout).")
