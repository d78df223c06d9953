"""Where model packs live on disk, the registry of user folders, and pack lookup.

Lookup order for a pack name: a folder registered with ``beaver models add`` (kept in
``<models_dir>/packs.json``), then ``<models_dir>/<name>/``, then insightface's own
``~/.insightface/models/<name>/``. The first that exists wins and shadows the rest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from beaver.errors import ConfigError, InputError, ModelError
from beaver.fsutil import write_atomic
from beaver.models import catalog

Source = Literal["registered", "models_dir", "insightface"]
Status = Literal["installed", "missing", "not installed"]

REGISTRY_FILE = "packs.json"
DOWNLOADS_DIR = ".downloads"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class PackRegistry(BaseModel):
    """``<models_dir>/packs.json``: pack names registered to folders beaver does not own."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    packs: dict[str, Path] = Field(default_factory=dict)


@dataclass(frozen=True)
class InstalledPack:
    """A pack folder found on disk, and which lookup place it came from."""

    name: str
    path: Path
    source: Source


@dataclass(frozen=True)
class PackListing:
    """One row of ``beaver models list``: an installed pack or a known one to pull."""

    name: str
    status: Status
    source: Source | None
    path: Path | None
    size_bytes: int
    """On disk when installed; the catalog's approximate size otherwise."""
    licence: str
    description: str


def insightface_models_dir() -> Path:
    """insightface's own pack folder, ``~/.insightface/models``."""
    return Path.home() / ".insightface" / "models"


def check_pack_name(name: str) -> str:
    """``name`` if it is a plain folder name; ModelError otherwise."""
    # Names become folder names under models_dir, so nothing that could climb out of it.
    if not _NAME.fullmatch(name) or name in {".", ".."}:
        msg = f"Invalid model pack name {name!r}."
        raise ModelError(
            msg,
            hint="Use letters, digits, '.', '_' and '-' only, e.g. buffalo_l.",
        )
    return name


def onnx_folder(path: Path) -> Path | None:
    """The folder under ``path`` that holds the .onnx files, or None when there are none."""
    if not path.is_dir():
        return None
    if any(path.glob("*.onnx")):
        return path
    # A pack unzipped by hand often sits one level down (antelopev2.zip does this).
    subdirs = [p for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]
    if len(subdirs) == 1 and any(subdirs[0].glob("*.onnx")):
        return subdirs[0]
    return None


def folder_size(path: Path) -> int:
    """Total bytes of the regular files under ``path``."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            full = Path(root) / name
            if not full.is_symlink():
                total += full.stat().st_size
    return total


def registry_path(models_dir: Path) -> Path:
    """``<models_dir>/packs.json``."""
    return models_dir / REGISTRY_FILE


def load_registry(models_dir: Path) -> PackRegistry:
    """The registered folders; empty when ``packs.json`` does not exist yet."""
    path = registry_path(models_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return PackRegistry()
    try:
        return PackRegistry.model_validate_json(text)
    except ValidationError as exc:
        msg = f"{path}: not a valid model pack registry ({exc.error_count()} problem(s))."
        raise ConfigError(
            msg,
            hint="Fix or delete the file, then register folders again with `beaver models add`.",
        ) from None


def _save_registry(models_dir: Path, registry: PackRegistry) -> None:
    text = json.dumps(registry.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    write_atomic(registry_path(models_dir), text)


def register_pack(path: Path, name: str, models_dir: Path) -> Path:
    """Register the existing folder ``path`` as pack ``name``; returns the stored path."""
    check_pack_name(name)
    folder = path.expanduser().resolve()
    if not folder.is_dir():
        raise InputError(
            folder,
            "folder not found.",
            hint="Pass the folder that holds the pack's .onnx files.",
        )
    if onnx_folder(folder) is None:
        raise InputError(
            folder,
            "no .onnx files in this folder.",
            hint="Pass the folder that holds the pack's .onnx files "
            f"(for example ~/.insightface/models/{name}).",
        )
    registry = load_registry(models_dir)
    packs = {**registry.packs, name: folder}
    _save_registry(models_dir, PackRegistry(packs=packs))
    return folder


def unregister_pack(name: str, models_dir: Path) -> Path | None:
    """Forget a registered name (the folder itself is kept); returns its folder, or None."""
    registry = load_registry(models_dir)
    if name not in registry.packs:
        return None
    packs = {k: v for k, v in registry.packs.items() if k != name}
    _save_registry(models_dir, PackRegistry(packs=packs))
    return registry.packs[name]


def _candidates(name: str, models_dir: Path, registry: PackRegistry) -> list[InstalledPack]:
    found = []
    if name in registry.packs:
        found.append(InstalledPack(name, registry.packs[name], "registered"))
    found.append(InstalledPack(name, models_dir / name, "models_dir"))
    found.append(InstalledPack(name, insightface_models_dir() / name, "insightface"))
    return found


def find_pack(name: str, models_dir: Path) -> InstalledPack | None:
    """The first installed copy of ``name`` in lookup order, or None."""
    registry = load_registry(models_dir)
    for candidate in _candidates(name, models_dir, registry):
        folder = onnx_folder(candidate.path)
        if folder is not None:
            return InstalledPack(name, folder, candidate.source)
    return None


def installed_packs(models_dir: Path) -> list[InstalledPack]:
    """Every installed pack, one per name (the one lookup would pick), sorted by name."""
    registry = load_registry(models_dir)
    names = set(registry.packs)
    for root in (models_dir, insightface_models_dir()):
        if root.is_dir():
            names.update(p.name for p in root.iterdir() if p.is_dir() and _NAME.fullmatch(p.name))
    found = (find_pack(name, models_dir) for name in sorted(names))
    return [pack for pack in found if pack is not None]


def list_packs(models_dir: Path) -> list[PackListing]:
    """Installed packs, then registered folders that vanished, then known packs to pull."""
    known = catalog.known_packs()
    rows: list[PackListing] = []
    installed = installed_packs(models_dir)
    for pack in installed:
        entry = known.get(pack.name)
        rows.append(
            PackListing(
                name=pack.name,
                status="installed",
                source=pack.source,
                path=pack.path,
                size_bytes=folder_size(pack.path),
                licence=entry.licence if entry else "",
                description=entry.description if entry else "",
            )
        )
    names = {p.name for p in installed}
    for name, folder in sorted(load_registry(models_dir).packs.items()):
        if name not in names:
            names.add(name)
            rows.append(PackListing(name, "missing", "registered", folder, 0, "", ""))
    for name in sorted(set(known) - names):
        entry = known[name]
        rows.append(
            PackListing(
                name=name,
                status="not installed",
                source=None,
                path=None,
                size_bytes=entry.approx_size,
                licence=entry.licence,
                description=entry.description,
            )
        )
    return rows


def resolve_pack(name_or_path: str, models_dir: Path) -> Path:
    """The folder holding a pack's .onnx files, from a pack name or a folder path."""
    if _looks_like_path(name_or_path):
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise InputError(
                folder,
                "model pack folder not found.",
                hint="Pass an existing folder, or a pack name from `beaver models list`.",
            )
        return onnx_folder(folder) or folder
    name = name_or_path
    registry = load_registry(models_dir)
    if name in registry.packs and not registry.packs[name].is_dir():
        msg = (
            f"Model pack {name!r} is registered to {registry.packs[name]}, which no longer exists."
        )
        raise ModelError(
            msg,
            hint=f"Register it again with `beaver models add PATH --name {name}` "
            f"or forget it with `beaver models remove {name}`.",
        )
    found = find_pack(name, models_dir)
    if found is not None:
        return found.path
    if Path(name).is_dir():
        return onnx_folder(Path(name)) or Path(name)
    raise _missing(name, models_dir)


def _looks_like_path(text: str) -> bool:
    return (
        os.sep in text
        or "/" in text
        or text.startswith(("~", "."))
        or Path(text).is_absolute()
        or not _NAME.fullmatch(text)
    )


def _missing(name: str, models_dir: Path) -> ModelError:
    known = catalog.known_packs()
    if name in known:
        return ModelError(
            f"Model pack {name!r} is not installed (looked in {models_dir / name} and "
            f"{insightface_models_dir() / name}).",
            hint=f"Run `beaver models pull {name}`. Offline: "
            + catalog.manual_download_hint(known[name], models_dir),
        )
    have = ", ".join(p.name for p in installed_packs(models_dir)) or "none"
    return ModelError(
        f"Unknown model pack {name!r} (installed: {have}; known: {', '.join(sorted(known))}).",
        hint=f"Register its folder with `beaver models add PATH --name {name}`, "
        "or pass the folder path itself.",
    )


@dataclass(frozen=True)
class RemoveResult:
    """What ``remove_pack`` did."""

    unregistered: Path | None
    deleted: Path | None


def remove_pack(name: str, models_dir: Path, *, delete: bool = False) -> RemoveResult:
    """Unregister ``name``; with ``delete`` also delete ``<models_dir>/<name>/``, nothing else."""
    check_pack_name(name)
    unregistered = unregister_pack(name, models_dir)
    owned = models_dir / name
    deleted: Path | None = None
    if delete and owned.is_dir() and not owned.is_symlink():
        # Rename first so an interrupted delete never leaves a half pack under the real name.
        trash = Path(tempfile.mkdtemp(prefix=f".{name}-deleting-", dir=models_dir))
        owned.replace(trash / name)
        shutil.rmtree(trash)
        deleted = owned
    if unregistered is None and deleted is None:
        if owned.is_dir():
            msg = f"{owned} was downloaded by beaver and is not registered."
            raise ModelError(
                msg,
                hint=f"Pass --delete to delete it: `beaver models remove {name} --delete`.",
            )
        elsewhere = find_pack(name, models_dir)
        where = f" It is at {elsewhere.path}; delete that folder yourself." if elsewhere else ""
        msg = f"No registered or downloaded model pack {name!r} in {models_dir}.{where}"
        raise ModelError(
            msg,
            hint="`beaver models list` shows what is installed.",
        )
    return RemoveResult(unregistered, deleted)
