"""The CLI's shared machinery: the per-run state and the Typer subclass that renders errors."""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import typer

from beaver.cli import _output
from beaver.errors import BeaverError, DiskFullError
from beaver.plugins import BeaverPluginManager, failure_warning, make_plugin_manager
from beaver.progress import Progress
from beaver.settings import BeaverSettings, ResolvedSettings, load_settings

P = ParamSpec("P")
R = TypeVar("R")

DEBUG_ENV = "BEAVER_DEBUG"


@dataclass
class Runtime:
    """What the global options said, plus lazily built settings and plugins."""

    debug: bool = False
    quiet: bool = False
    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    plugin_manager: BeaverPluginManager | None = None
    _warned: bool = False

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> ResolvedSettings:
        """Settings with the global flags and a command's own ``overrides`` applied."""
        merged = {**self.overrides, **(overrides or {})}
        return load_settings(self.config, merged)

    def settings(self, overrides: Mapping[str, Any] | None = None) -> BeaverSettings:
        """Just the settings."""
        return self.resolve(overrides).settings

    def plugins(self) -> BeaverPluginManager:
        """The plugin manager, built on first use; load failures are warned about once."""
        if self.plugin_manager is None:
            self.plugin_manager = make_plugin_manager()
        manager = self.plugin_manager
        if not self._warned:
            self._warned = True
            manager.all_records()  # collecting records may surface hook failures too
            for info in manager.failures:
                _output.warn(failure_warning(info))
        return manager

    def info(self, message: str) -> None:
        """A status line on stderr unless --quiet."""
        _output.info(message, quiet=self.quiet)

    @contextmanager
    def progress(self) -> Iterator[Progress]:
        """A progress bar on stderr unless --quiet."""
        with _output.progress(quiet=self.quiet) as sink:
            yield sink


# One CLI invocation at a time per process; the root callback replaces it on every run.
runtime = Runtime()


def set_runtime(new: Runtime) -> Runtime:
    """Install the state for this invocation."""
    global runtime  # the one piece of per-invocation state
    runtime = new
    return runtime


def current() -> Runtime:
    """The state of the running invocation."""
    return runtime


def _debug_enabled() -> bool:
    return runtime.debug or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn BeaverErrors (and surprises) into one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except BeaverError as exc:
            if _debug_enabled():
                raise
            _output.render_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            _output.error_line("Interrupted. Work finished so far is saved.")
            raise typer.Exit(130) from None
        except OSError as exc:
            if _debug_enabled():
                raise
            if exc.errno == errno.ENOSPC:
                _output.render_error(DiskFullError(exc.filename or "output"))
                raise typer.Exit(1) from None
            where = f"{exc.filename}: " if exc.filename else ""
            _output.error_line(f"Error: {where}{exc.strerror or exc}.")
            raise typer.Exit(1) from None
        except Exception as exc:
            # Click's own usage errors carry their exit code and know how to show themselves.
            if hasattr(exc, "exit_code") and hasattr(exc, "show"):
                raise
            if _debug_enabled():
                raise
            _output.error_line(
                f"Error: unexpected {type(exc).__name__}: {exc}. "
                "Run again with --debug for the traceback, and please report it."
            )
            raise typer.Exit(1) from None

    return wrapper


class BeaverTyper(typer.Typer):
    """A Typer app whose commands render BeaverErrors in one place (PrefectTyper's idea)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("no_args_is_help", True)
        kwargs.setdefault("pretty_exceptions_enable", False)
        kwargs.setdefault("rich_markup_mode", "rich")
        kwargs.setdefault("context_settings", {"help_option_names": ["-h", "--help"]})
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:  # type: ignore[override]
        """Register a command whose errors are rendered by :func:`handle_errors`."""
        return _rendering_errors(super().command(*args, **kwargs))

    def callback(self, *args: Any, **kwargs: Any) -> Callable[[Callable[P, R]], Callable[P, R]]:  # type: ignore[override]
        """Register a group callback whose errors are rendered like a command's."""
        return _rendering_errors(super().callback(*args, **kwargs))


def _rendering_errors(
    register: Callable[[Callable[..., Any]], Any],
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap Typer's registering decorator so that it registers the error-handling wrapper."""

    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        register(handle_errors(fn))
        return fn

    return decorator


def _default_group_class() -> type[Any]:
    from typer.core import TyperGroup

    class DefaultCommandGroup(TyperGroup):
        """A group that runs its ``run`` command when the first word is not a command.

        So ``beaver train DATASET`` means ``beaver train run DATASET`` while
        ``beaver train list-models`` still reaches its own command.
        """

        default_command = "run"

        def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
            if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
                args = [self.default_command, *args]
            result: list[str] = super().parse_args(ctx, args)
            return result

    return DefaultCommandGroup


DefaultCommandGroup = _default_group_class()
