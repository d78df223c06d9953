"""Atomic file writes: readers see the old file or the new one, never half of either."""

from __future__ import annotations

import errno
import hashlib
import os
import tempfile
from pathlib import Path

from beaver.errors import DiskFullError, InputError


def write_atomic(path: Path, data: bytes | str, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a same-folder temp file and ``os.replace``.

    ``durable`` also flushes the data to the disk before the rename (an fsync); files that
    are cheap to make again (a dataset's thousands of caption files) may skip it.

    ``os.replace`` swaps a symlink itself, never the file it points to, so an existing link
    to a user's photo is never written through.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    except PermissionError as exc:
        raise InputError(path.parent, f"cannot write here ({exc.strerror})") from None
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; outputs are ordinary files
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
