"""Plugin records and the plugin manager: discovery through the ``beaver`` entry-point group.

Every plugin, first-party or third-party, is a module named by an entry point in the
``beaver`` group. Loading a plugin imports only that module; each record's factory does
the heavy imports when the user actually picks it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

import pluggy
from pydantic import BaseModel, ConfigDict, ValidationError

from beaver import hookspecs
from beaver.errors import ConfigError, PluginConflictError, PluginLoadError, UnknownPluginError
from beaver.interfaces import Captioner, FaceDetector, Trainer

ENTRY_POINT_GROUP = "beaver"
DISABLE_ENV = "BEAVER_DISABLE_PLUGINS"
TRACE_ENV = "BEAVER_TRACE_PLUGINS"

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")

T = TypeVar("T")
Kind = Literal["face detector", "captioner", "trainer"]
Status = Literal["active", "disabled", "failed"]


class NoOptions(BaseModel):
    """Options model for a plugin that takes none."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, kw_only=True)
class PluginSpec(Generic[T]):
    """A named, lazily built thing a plugin provides. Subclassed once per kind."""

    kind: ClassVar[Kind]
    hook: ClassVar[str]

    name: str
    """Unique within its kind; lowercase letters, digits, ``-``, ``_`` and ``.``."""
    factory: Callable[[Any], T]
    """Called with a validated ``options`` instance; does the heavy imports."""
    options: type[BaseModel] = NoOptions
    """Pydantic model of the plugin's options (settings ``[plugins.<name>]`` and CLI)."""
    description: str = ""
    licence: str = ""
    """Licence of the code *and* of any weights it uses, e.g. "MIT; weights non-commercial"."""
    requires: tuple[str, ...] = ()
    """Top-level modules the factory imports; missing ones are reported, not imported."""
    install: str | None = None
    """A pip requirement that installs ``requires`` (``eager-beaver[blip]``), for the hint."""
    check: Callable[[], str | None] | None = None
    """Optional cheap readiness check: returns why the plugin cannot run, or None."""

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            msg = (
                f"Invalid {self.kind} name {self.name!r}: use lowercase letters, digits, "
                "'-', '_' and '.'."
            )
            raise ValueError(msg)
        options: Any = self.options  # checked at run time: plugins are not type-checked
        if not (isinstance(options, type) and issubclass(options, BaseModel)):
            msg = f"{self.kind} {self.name!r}: options must be a pydantic BaseModel subclass."
            raise TypeError(msg)

    def missing_modules(self) -> list[str]:
        """The ``requires`` modules that are not installed (found without importing them)."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]

    def readiness(self) -> str | None:
        """Why this plugin cannot run right now, or None when it looks ready."""
        missing = self.missing_modules()
        if missing:
            needs = f"needs {', '.join(missing)}"
            return f"{needs}: pip install '{self.install}'" if self.install else needs
        if self.check is None:
            return None
        try:
            return self.check()
        except Exception as exc:  # noqa: BLE001 - a listing must survive a plugin's bug
            return f"check failed: {type(exc).__name__}: {exc}"

    def with_settings(
        self, values: Mapping[str, Any], settings: Mapping[str, Any]
    ) -> dict[str, Any]:
        """``values`` plus those of ``settings`` the options model declares (None: left out).

        Beaver's own settings (``--model``, ``--device``…) reach a plugin only under the names
        it declares, so a plugin without such an option is never handed one.
        """
        fields = self.options.model_fields
        out = dict(values)
        out.update({k: v for k, v in settings.items() if k in fields and v is not None})
        return out

    def parse_options(self, values: Mapping[str, Any] | None = None) -> BaseModel:
        """Validate raw option values against the plugin's options model."""
        try:
            return self.options.model_validate(dict(values or {}))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigError(
                f"Invalid options for {self.kind} {self.name!r}: {problems}.",
                hint=f"See `beaver plugins show {self.name}` for its options.",
            ) from None

    def create(self, values: Mapping[str, Any] | None = None) -> T:
        """Validate options and build the plugin object."""
        return self.factory(self.parse_options(values))


@dataclass(frozen=True, kw_only=True)
class FaceDetectorSpec(PluginSpec[FaceDetector]):
    """A face detector + embedder, picked with ``--detector NAME``."""

    kind: ClassVar[Kind] = "face detector"
    hook: ClassVar[str] = "beaver_face_detectors"


@dataclass(frozen=True, kw_only=True)
class CaptionerSpec(PluginSpec[Captioner]):
    """A captioner or tagger, picked with ``--captioner NAME``."""

    kind: ClassVar[Kind] = "captioner"
    hook: ClassVar[str] = "beaver_captioners"


@dataclass(frozen=True, kw_only=True)
class TrainerSpec(PluginSpec[Trainer]):
    """A training backend, picked with ``--backend NAME``."""

    kind: ClassVar[Kind] = "trainer"
    hook: ClassVar[str] = "beaver_trainers"


SPEC_TYPES: tuple[type[PluginSpec[Any]], ...] = (FaceDetectorSpec, CaptionerSpec, TrainerSpec)
S = TypeVar("S", bound=PluginSpec[Any])


@dataclass(frozen=True)
class PluginInfo:
    """One entry point of the ``beaver`` group and what became of it."""

    name: str
    """The entry point's name, which is also the name pluggy registers it under."""
    value: str
    """The entry point's target, ``module`` or ``module:attr``."""
    distribution: str
    version: str
    status: Status
    error: str | None = None


@dataclass(frozen=True)
class Provided(Generic[S]):
    """A record together with the plugin that yielded it."""

    spec: S
    plugin: PluginInfo


@dataclass
class Registry(Generic[S]):
    """All records of one kind, by name; picks one or says "Choose one of: …"."""

    kind: Kind
    entries: list[Provided[S]] = field(default_factory=list)

    def __iter__(self) -> Iterator[Provided[S]]:
        return iter(sorted(self.entries, key=lambda p: (p.spec.name, p.plugin.distribution)))

    def names(self) -> list[str]:
        """Sorted unique names."""
        return sorted({p.spec.name for p in self.entries})

    def conflicts(self) -> dict[str, list[Provided[S]]]:
        """Names that more than one plugin provides."""
        by_name: dict[str, list[Provided[S]]] = {}
        for p in self.entries:
            by_name.setdefault(p.spec.name, []).append(p)
        return {n: ps for n, ps in by_name.items() if len(ps) > 1}

    def get(self, name: str) -> S:
        """The record named ``name``; raises on unknown or ambiguous names."""
        found = [p for p in self.entries if p.spec.name == name]
        if not found:
            raise UnknownPluginError(self.kind, name, self.names())
        if len(found) > 1:
            raise PluginConflictError(
                self.kind, name, (f"{p.plugin.distribution} ({p.plugin.name})" for p in found)
            )
        return found[0].spec

    def validate(self) -> None:
        """Raise PluginConflictError for the first duplicated name, if any."""
        for name in sorted(self.conflicts()):
            self.get(name)


def _disabled_names(env: Mapping[str, str]) -> set[str]:
    raw = env.get(DISABLE_ENV, "")
    return {_canonical(part.strip()) for part in raw.split(",") if part.strip()}


def _canonical(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def iter_entry_points(
    distributions: Iterable[importlib.metadata.Distribution] | None = None,
) -> Iterator[tuple[importlib.metadata.EntryPoint, str, str]]:
    """Each ``beaver`` entry point with its distribution's name and version.

    A distribution found twice on ``sys.path`` (an editable install next to a copy) is
    read once: the first one wins, as for imports.
    """
    seen: set[str] = set()
    dists = importlib.metadata.distributions() if distributions is None else distributions
    for dist in dists:
        dist_name = dist.metadata["Name"] or "unknown"
        key = _canonical(dist_name)
        if key in seen:
            continue
        seen.add(key)
        for ep in dist.entry_points:
            if ep.group == ENTRY_POINT_GROUP:
                yield ep, dist_name, dist.version or "unknown"


class BeaverPluginManager:
    """A typed facade over a pluggy manager holding the loaded ``beaver`` plugins."""

    def __init__(
        self, pm: pluggy.PluginManager, plugins: Sequence[PluginInfo], *, trace: bool = False
    ) -> None:
        self.pm = pm
        self.plugins: list[PluginInfo] = list(plugins)
        self.trace = trace
        self._registries: dict[Kind, Registry[Any]] = {}

    @property
    def failures(self) -> list[PluginInfo]:
        """Plugins that failed to import or whose hook raised."""
        return [p for p in self.plugins if p.status == "failed"]

    def _info(self, plugin_name: str) -> PluginInfo:
        for p in self.plugins:
            if p.name == plugin_name:
                return p
        return PluginInfo(plugin_name, plugin_name, "unknown", "unknown", "active")

    def _mark_failed(self, plugin_name: str, error: str) -> None:
        self.plugins = [
            PluginInfo(p.name, p.value, p.distribution, p.version, "failed", error)
            if p.name == plugin_name
            else p
            for p in self.plugins
        ]
        plugin = self.pm.get_plugin(plugin_name)
        if plugin is not None:
            self.pm.unregister(plugin)
        # a plugin that fails for one kind is gone for all: drop what it already gave
        for registry in self._registries.values():
            registry.entries = [p for p in registry.entries if p.plugin.name != plugin_name]

    def _collect(self, spec_type: type[S]) -> Registry[S]:
        registry: Registry[S] = Registry(spec_type.kind)
        hook = getattr(self.pm.hook, spec_type.hook)
        # Called one implementation at a time so that a hook that raises or yields
        # garbage disables its own plugin instead of the whole kind.
        for impl in list(hook.get_hookimpls()):
            try:
                records = list(impl.function() or ())
                for record in records:
                    if not isinstance(record, spec_type):
                        msg = (
                            f"{spec_type.hook} yielded {type(record).__name__}, "
                            f"expected {spec_type.__name__}"
                        )
                        raise TypeError(msg)
            except Exception as exc:  # noqa: BLE001 - a plugin's bug must not break beaver
                self._mark_failed(impl.plugin_name, f"{type(exc).__name__}: {exc}")
                if self.trace:
                    sys.stderr.write(f"{spec_type.hook} [{impl.plugin_name}] raised {exc!r}\n")
                continue
            if self.trace:
                names = ", ".join(r.name for r in records) or "(nothing)"
                sys.stderr.write(f"{spec_type.hook} [{impl.plugin_name}] -> {names}\n")
            info = self._info(impl.plugin_name)
            registry.entries.extend(Provided(record, info) for record in records)
        return registry

    def registry(self, spec_type: type[S]) -> Registry[S]:
        """All records of one kind (computed once per manager)."""
        if spec_type.kind not in self._registries:
            self._registries[spec_type.kind] = self._collect(spec_type)
        registry: Registry[S] = self._registries[spec_type.kind]
        return registry

    def face_detectors(self) -> Registry[FaceDetectorSpec]:
        """Every installed face detector."""
        return self.registry(FaceDetectorSpec)

    def captioners(self) -> Registry[CaptionerSpec]:
        """Every installed captioner."""
        return self.registry(CaptionerSpec)

    def trainers(self) -> Registry[TrainerSpec]:
        """Every installed training backend."""
        return self.registry(TrainerSpec)

    def all_records(self) -> list[Provided[PluginSpec[Any]]]:
        """Every record of every kind (collecting them may mark broken plugins failed)."""
        out: list[Provided[PluginSpec[Any]]] = []
        for spec_type in SPEC_TYPES:
            out.extend(self.registry(spec_type))
        return out


def make_plugin_manager(
    *,
    entry_points: Iterable[tuple[importlib.metadata.EntryPoint, str, str]] | None = None,
    extra_plugins: Iterable[tuple[object, str]] = (),
    env: Mapping[str, str] | None = None,
) -> BeaverPluginManager:
    """Build a fresh plugin manager: load every ``beaver`` entry point, guarding each.

    ``entry_points`` defaults to every installed distribution's; ``extra_plugins`` are
    ``(object, name)`` pairs registered directly (tests). ``env`` defaults to
    ``os.environ`` and is read here, never at import time.
    """
    environ = os.environ if env is None else env
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    tracing = bool(environ.get(TRACE_ENV))
    if tracing:
        # stderr, so that traces never corrupt --json output on stdout
        pm.trace.root.setwriter(sys.stderr.write)
        pm.enable_tracing()
    disabled = _disabled_names(environ)
    infos: list[PluginInfo] = []
    eps = iter_entry_points() if entry_points is None else entry_points
    for ep, dist_name, version in eps:
        base = PluginInfo(ep.name, ep.value, dist_name, version, "active")
        if _canonical(ep.name) in disabled or _canonical(dist_name) in disabled:
            infos.append(PluginInfo(ep.name, ep.value, dist_name, version, "disabled"))
            continue
        if pm.has_plugin(ep.name):
            other = next(i for i in infos if i.name == ep.name)
            error = (
                f"entry point name {ep.name!r} is also used by {other.distribution}; "
                "rename one of them"
            )
            infos.append(PluginInfo(ep.name, ep.value, dist_name, version, "failed", error))
            continue
        try:
            _register_checked(pm, ep.load(), ep.name)
        except Exception as exc:  # noqa: BLE001 - a broken plugin never bricks the CLI
            error = f"{type(exc).__name__}: {exc}"
            infos.append(PluginInfo(ep.name, ep.value, dist_name, version, "failed", error))
            continue
        infos.append(base)
    for plugin, name in extra_plugins:
        _register_checked(pm, plugin, name)
        infos.append(PluginInfo(name, repr(plugin), "(registered directly)", "", "active"))
    return BeaverPluginManager(pm, infos, trace=tracing)


def _register_checked(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Register ``plugin``; undo it and raise if it implements a hook beaver does not have."""
    pm.register(plugin, name=name)
    unknown = [hc.name for hc in pm.get_hookcallers(plugin) or [] if not hc.has_spec()]
    if unknown:
        pm.unregister(plugin)
        msg = f"implements unknown hook(s) {', '.join(sorted(unknown))}"
        raise PluginLoadError(msg)


def failure_warning(info: PluginInfo) -> str:
    """The one-line warning shown once when a plugin fails to load."""
    error = (info.error or "unknown error").rstrip(".")
    return (
        f"Warning: plugin {info.name!r} ({info.distribution} {info.version}) failed to load: "
        f"{error}. It is skipped; disable it with {DISABLE_ENV}={info.name}."
    )
