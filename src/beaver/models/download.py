"""Download a model pack: resumable, checksum-verified, installed by one atomic rename."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from beaver import __version__
from beaver.errors import DownloadError, ModelError
from beaver.models import store
from beaver.models.catalog import Artifact, ModelPack, manual_download_hint
from beaver.progress import NullProgress, Progress

DEFAULT_TIMEOUT = 60.0
"""Seconds a connect or a single read may stall; generous for slow links."""
CHUNK_SIZE = 1 << 20
_NETWORK_ERRORS = (URLError, OSError, http.client.HTTPException)


@dataclass(frozen=True)
class PullResult:
    """Where the pack is, and whether this call downloaded it."""

    name: str
    path: Path
    downloaded: bool
    source: store.Source


def pull_pack(
    pack: ModelPack,
    models_dir: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> PullResult:
    """Download ``pack`` into ``<models_dir>/<name>/`` unless it is already installed."""
    store.check_pack_name(pack.name)
    if not force:
        existing = store.find_pack(pack.name, models_dir)
        if existing is not None:
            return PullResult(pack.name, existing.path, False, existing.source)
    sink = progress if progress is not None else NullProgress()
    downloads = models_dir / store.DOWNLOADS_DIR
    downloads.mkdir(parents=True, exist_ok=True)
    hint = manual_download_hint(pack, models_dir)
    try:
        parts = [
            fetch_artifact(a, downloads, sink, timeout=timeout, hint=hint) for a in pack.artifacts
        ]
        target = _install(pack, list(zip(pack.artifacts, parts, strict=True)), models_dir)
        for part in parts:
            part.unlink(missing_ok=True)
    finally:
        _remove_if_empty(downloads)
    return PullResult(pack.name, target, True, "models_dir")


def fetch_artifact(
    artifact: Artifact,
    downloads: Path,
    progress: Progress,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    hint: str | None = None,
) -> Path:
    """Download (or resume) ``artifact`` into ``downloads/<filename>.part`` and verify it.

    ``hint`` is added to network errors: how to get the file by hand.
    """
    part = downloads / f"{artifact.filename}.part"
    if artifact.size is not None and part.exists() and part.stat().st_size >= artifact.size:
        # Finished earlier but not installed (say the unpack failed): no need to ask again.
        if _sha256(part, progress, artifact.filename) == artifact.sha256:
            return part
        part.unlink()
    offset = part.stat().st_size if part.exists() else 0
    request = Request(artifact.url, headers={"User-Agent": f"eager-beaver/{__version__}"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urlopen(request, timeout=timeout)
    except HTTPError as exc:
        exc.close()
        if exc.code == 416 and offset:
            # Nothing left to send: the .part is complete (or wrong, which verify catches).
            _verify(artifact, part, progress)
            return part
        msg = f"{artifact.url}: the server answered HTTP {exc.code} {exc.reason}."
        raise DownloadError(msg, hint=hint) from None
    except _NETWORK_ERRORS as exc:
        msg = f"Cannot reach {artifact.host} ({_reason(exc)})."
        raise DownloadError(msg, hint=hint) from None
    with response:
        if response.status == 206:
            if _range_start(response) != offset:
                part.unlink(missing_ok=True)
                msg = (
                    f"{artifact.url}: the server sent a different byte range than asked for; "
                    "the partial download was deleted."
                )
                raise DownloadError(
                    msg,
                    hint="Run the same command again to download it from the start.",
                )
            mode = "ab"
        else:
            offset, mode = 0, "wb"  # the server ignored Range: start over from zero
        length = response.length
        total = offset + length if length is not None else artifact.size
        progress.start(f"Downloading {artifact.filename}", total=total, unit="bytes")
        try:
            progress.update(offset)
            with part.open(mode) as out:
                received = _copy(response, out, offset, progress, artifact)
        finally:
            progress.finish()
    if total is not None and received < total:
        msg = (
            f"{artifact.url}: the connection closed after {received} of {total} bytes "
            f"(kept in {part})."
        )
        raise DownloadError(
            msg,
            hint="Run the same command again to resume the download.",
        )
    _verify(artifact, part, progress)
    return part


def _copy(
    response: http.client.HTTPResponse,
    out: IO[bytes],
    done: int,
    progress: Progress,
    artifact: Artifact,
) -> int:
    while True:
        try:
            chunk = response.read(CHUNK_SIZE)
        except _NETWORK_ERRORS as exc:
            out.flush()
            msg = (
                f"{artifact.url}: the download was interrupted after {done} bytes ({_reason(exc)})."
            )
            raise DownloadError(
                msg,
                hint="Run the same command again to resume it.",
            ) from None
        if not chunk:
            return done
        out.write(chunk)
        done += len(chunk)
        progress.update(done)


def _range_start(response: http.client.HTTPResponse) -> int | None:
    # Content-Range: bytes 100-199/200
    value = response.headers.get("Content-Range", "")
    unit, _, spec = value.partition(" ")
    start, _, _rest = spec.partition("-")
    if unit != "bytes" or not start.isdigit():
        return None
    return int(start)


def _reason(exc: BaseException) -> str:
    reason = exc.reason if isinstance(exc, URLError) else exc
    if isinstance(reason, TimeoutError):
        return "timed out"
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _sha256(path: Path, progress: Progress, label: str) -> str:
    digest = hashlib.sha256()
    progress.start(f"Verifying {label}", total=path.stat().st_size, unit="bytes")
    done = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK_SIZE):
            digest.update(chunk)
            done += len(chunk)
            progress.update(done)
    progress.finish()
    return digest.hexdigest()


def _verify(artifact: Artifact, part: Path, progress: Progress) -> None:
    got = _sha256(part, progress, artifact.filename)
    if got != artifact.sha256:
        part.unlink(missing_ok=True)
        msg = (
            f"{artifact.url}: checksum mismatch (expected sha256 {artifact.sha256}, "
            f"got {got}); the download was deleted."
        )
        raise DownloadError(
            msg,
            hint="Run the same command again to retry; if it fails again, the file on the "
            "server has changed, so please report it.",
        )


def _install(pack: ModelPack, parts: list[tuple[Artifact, Path]], models_dir: Path) -> Path:
    target = models_dir / pack.name
    # Build the whole pack beside its final place, then rename it in: a pack folder
    # is either complete or absent, whatever interrupts us.
    staging = Path(tempfile.mkdtemp(prefix=f".{pack.name}-", dir=models_dir))
    try:
        for artifact, part in parts:
            if artifact.kind == "zip":
                _unzip(artifact, part, staging)
        for artifact, part in parts:
            if artifact.kind == "file":
                shutil.copyfile(part, staging / artifact.filename)
        missing = [f for f in pack.expected_files if not (staging / f).is_file()]
        if missing or store.onnx_folder(staging) != staging:
            listed = ", ".join(missing) or "any .onnx file"
            msg = f"{pack.name}: the download lacks {listed}."
            raise ModelError(
                msg,
                hint="The pack's contents changed upstream; please report it.",
            )
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{pack.name}-old-", dir=models_dir))
            target.replace(old / pack.name)
            try:
                staging.replace(target)
            except OSError:
                (old / pack.name).replace(target)
                raise
            finally:
                shutil.rmtree(old)
        else:
            staging.replace(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return target


def _unzip(artifact: Artifact, part: Path, staging: Path) -> None:
    unpacked = Path(tempfile.mkdtemp(prefix=".unzip-", dir=staging))
    try:
        # extractall drops absolute paths and '..' parts, so nothing lands outside.
        with zipfile.ZipFile(part) as archive:
            archive.extractall(unpacked)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(unpacked)
        part.unlink(missing_ok=True)
        msg = f"{artifact.url}: not a valid zip file ({exc}); the download was deleted."
        raise DownloadError(
            msg,
            hint="Run the same command again to retry.",
        ) from None
    root = store.onnx_folder(unpacked) or unpacked
    for entry in root.iterdir():
        if entry.name == "__MACOSX":
            continue
        entry.replace(staging / entry.name)
    shutil.rmtree(unpacked)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):  # it still holds another pack's partial download
        folder.rmdir()
