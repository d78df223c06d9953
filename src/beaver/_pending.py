"""Factories for first-party plugins that are registered but whose work has not landed yet.

They never pretend to work: building one raises, and ``beaver plugins`` shows them as
not ready. Each is replaced by the real factory in the release that implements it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn

from beaver.errors import NotImplementedYetError

NOT_READY = "not implemented yet"


def pending_factory(what: str) -> Callable[[Any], NoReturn]:
    """A factory that raises NotImplementedYetError naming ``what``."""

    def factory(options: Any) -> NoReturn:
        del options
        raise NotImplementedYetError(what)

    return factory


def pending_check() -> str:
    """Readiness check of a pending plugin."""
    return NOT_READY
