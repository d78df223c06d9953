"""One writer at a time per face vault: a second scan refuses clearly instead of racing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from beaver.errors import InputError

LOCK_NAME = ".lock"


@contextmanager
def vault_lock(folder: Path, what: str) -> Iterator[None]:
    """Hold ``folder/.lock`` while ``what`` runs; refuse when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows: SQLite's own locking still keeps the database consistent.
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise InputError(
                folder,
                f"in use by {holder}",
                hint=f"Wait for it to finish, then run {what} again.",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} (pid {os.getpid()})".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
