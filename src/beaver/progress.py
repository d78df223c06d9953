"""How long-running core work reports progress without knowing who is watching.

The core calls a :class:`Progress`; the CLI passes a rich progress bar (or nothing with
``--quiet``), tests pass a recorder.
"""

from __future__ import annotations

from typing import Literal, Protocol

Unit = Literal["items", "bytes"]


class Progress(Protocol):
    """A sink for progress of one task at a time."""

    def start(self, description: str, total: float | None = None, unit: Unit = "items") -> None:
        """Begin a task; ``total`` None means unknown."""
        ...

    def update(self, completed: float) -> None:
        """Set how much of the current task is done (absolute)."""
        ...

    def finish(self) -> None:
        """End the current task."""
        ...


class NullProgress:
    """Progress that goes nowhere."""

    def start(self, description: str, total: float | None = None, unit: Unit = "items") -> None:
        """Ignore."""

    def update(self, completed: float) -> None:
        """Ignore."""

    def finish(self) -> None:
        """Ignore."""
