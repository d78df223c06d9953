"""face_cache.json's view of exported copies: read from the export manifests."""

from __future__ import annotations

from pathlib import Path

from beaver.faces.export import ExportFace, ExportPerson, ExportPhoto, export_people
from beaver.faces.vault import export_aliases
from beaver.testing.tinymodels import draw_faces


def test_aliases_map_organized_copies_to_originals_and_skip_broken_manifests(
    tmp_path: Path,
) -> None:
    photo = tmp_path / "lib" / "IMG_1.png"
    photo.parent.mkdir()
    draw_faces((200, 200), [(100, 100, 80, (200, 30, 30))]).save(photo)
    vault = tmp_path / "vault"
    person = ExportPerson(
        key="person_001",
        name="Emma",
        photos=(ExportPhoto(photo, "h", (ExportFace(1, (60, 60, 140, 140), 0.9),)),),
    )
    export_people([person], vault / "organized", fmt="organized")
    broken = vault / "organized" / "Leo"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    assert export_aliases(vault) == {str(vault / "organized" / "Emma" / "IMG_1.png"): str(photo)}
    assert export_aliases(tmp_path / "nothing") == {}
