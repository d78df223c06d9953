"""Model packs: the catalog of downloadable packs, where packs live, and the downloader."""

from __future__ import annotations

from beaver.models.catalog import Artifact, ModelPack, get_pack, known_packs
from beaver.models.download import PullResult, pull_pack
from beaver.models.store import (
    InstalledPack,
    PackListing,
    RemoveResult,
    find_pack,
    installed_packs,
    list_packs,
    register_pack,
    remove_pack,
    resolve_pack,
)

__all__ = [
    "Artifact",
    "InstalledPack",
    "ModelPack",
    "PackListing",
    "PullResult",
    "RemoveResult",
    "find_pack",
    "get_pack",
    "installed_packs",
    "known_packs",
    "list_packs",
    "pull_pack",
    "register_pack",
    "remove_pack",
    "resolve_pack",
]
