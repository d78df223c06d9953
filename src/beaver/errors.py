"""The errors beaver raises on purpose: each renders as one line plus a next step."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar


class BeaverError(Exception):
    """An expected failure: shown to the user as one line, never as a traceback.

    ``message`` says what is wrong and names the file or value at fault;
    ``hint`` says what to do next. ``exit_code`` is the process exit status.
    """

    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class UsageError(BeaverError):
    """The command line itself is wrong (exit 2, like Click's usage errors)."""

    exit_code: ClassVar[int] = 2


class NotImplementedYetError(UsageError):
    """A command or plugin that is registered but whose work has not landed yet."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what} is not implemented yet in this version of beaver.",
            hint="See `beaver --help` and docs/ for what works today.",
        )


class ConfigError(BeaverError):
    """Settings, a config file or plugin options are invalid."""


class PluginError(BeaverError):
    """Something about a plugin: unknown, conflicting or failing."""


class UnknownPluginError(PluginError):
    """A plugin name that no installed plugin provides."""

    def __init__(self, kind: str, name: str, available: Iterable[str]) -> None:
        choices = sorted(available)
        self.kind = kind
        self.name = name
        self.available = choices
        listed = ", ".join(choices) if choices else "(none installed)"
        super().__init__(
            f"Unknown {kind} {name!r}. Choose one of: {listed}.",
            hint="`beaver plugins` lists installed plugins.",
        )


class PluginConflictError(PluginError):
    """Two distributions provide a plugin of the same kind under the same name."""

    def __init__(self, kind: str, name: str, providers: Iterable[str]) -> None:
        names = sorted(set(providers))
        self.kind = kind
        self.name = name
        self.providers = names
        super().__init__(
            f"The {kind} name {name!r} is provided by more than one distribution: "
            f"{' and '.join(names)}.",
            hint="Uninstall one of them, or disable one with BEAVER_DISABLE_PLUGINS=<plugin>.",
        )


class PluginLoadError(PluginError):
    """A plugin failed to import, or its hook raised."""


class BackendError(BeaverError):
    """A plugin failed while doing its work; names the plugin and the cause."""


class InputError(BeaverError):
    """A user-supplied file or folder is missing, unreadable or malformed."""

    def __init__(self, path: Path | str, problem: str, *, hint: str | None = None) -> None:
        self.path = Path(path)
        super().__init__(f"{path}: {problem}", hint=hint)


class DatasetError(InputError):
    """A dataset folder is missing, empty or inconsistent."""


class ModelError(BeaverError):
    """A model pack is missing, unknown, or failed verification."""


class DownloadError(ModelError):
    """A download failed: no network, a server error, or a checksum mismatch."""


class DiskFullError(BeaverError):
    """The disk filled up while writing; nothing half-written was left behind."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(
            f"{path}: no space left on the device.",
            hint="Free some space (or point the output elsewhere) and run the command again.",
        )
