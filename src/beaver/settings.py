"""Settings: defaults ← beaver.toml files ← ``BEAVER_*`` environment ← command-line flags.

One entry point, :func:`load_settings`, resolves them and remembers where every value
came from, for ``beaver config show``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from beaver.errors import ConfigError

APP_NAME = "beaver"
CONFIG_FILE_NAME = "beaver.toml"
CONFIG_ENV = "BEAVER_CONFIG"
ENV_PREFIX = "BEAVER_"
ENV_NESTED_DELIMITER = "__"

Device = Literal["auto", "cpu", "cuda", "mps"]


def default_models_dir() -> Path:
    """Where model packs live unless ``BEAVER_MODELS_DIR`` says otherwise."""
    return Path(platformdirs.user_cache_dir(APP_NAME)) / "models"


def user_config_file() -> Path:
    """The per-user config file (lowest-priority file)."""
    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILE_NAME


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FaceSettings(_Section):
    """``beaver face …``."""

    detector: str = Field("insightface", description="Face detector plugin.")
    model_pack: str | None = Field(
        None, description="Model pack name or folder; None: the detector's own default."
    )
    min_score: float = Field(0.6, ge=0, le=1, description="Minimum detection score.")
    min_size: int = Field(40, ge=0, description="Minimum face size in pixels (short side).")
    threshold: float = Field(0.35, gt=0, lt=2, description="Cluster cosine-distance threshold.")
    min_cluster: int = Field(5, ge=2, description="Smallest group of faces that makes a person.")
    workers: int = Field(0, ge=0, description="Photos scanned at once; 0 picks from the CPU count.")
    decode_size: int = Field(
        1000, ge=320, description="Photos are decoded with at least this long side for detection."
    )


class CaptionSettings(_Section):
    """``beaver caption``."""

    captioner: str = Field("blip", description="Captioner plugin.")
    model: str | None = Field(None, description="Hub id or local folder; None: plugin default.")
    batch_size: int = Field(8, ge=1, description="Images per batch.")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="Model precision; auto: half on CUDA, float32 elsewhere."
    )
    workers: int = Field(0, ge=0, description="Image-decoding threads; 0 picks from the CPU count.")


class PrepSettings(_Section):
    """``beaver prep``."""

    min_per_shot: int = Field(3, ge=0, description="Warn when a shot type has fewer images.")
    close_threshold: float = Field(
        0.37, gt=0, le=1, description="Close when face height / image height is at least this."
    )
    far_threshold: float = Field(
        0.148, gt=0, le=1, description="Far when face height / image height is below this."
    )
    min_side: int = Field(
        512, ge=0, description="Photos whose short side is smaller are left out (0: keep all)."
    )
    class_word: str = Field(
        "person", min_length=1, description="Caption of a photo without one: '<trigger>, <this>'."
    )


class TrainSettings(_Section):
    """``beaver train``."""

    base_model: str = Field("sdxl", description="Base model preset or hub id.")
    backends: list[str] = Field(
        default_factory=list, description="Backends to write; empty: every installed one."
    )
    sd_scripts_dir: Path | None = Field(None, description="kohya sd-scripts checkout for --run.")
    diffusers_dir: Path | None = Field(
        None, description="diffusers git checkout (with examples/) for --run."
    )
    comfyui_url: str = Field("http://127.0.0.1:8188", description="ComfyUI server for --run.")
    comfyui_dir: Path | None = Field(
        None, description="ComfyUI folder; its input/ receives the dataset for --run."
    )
    flux_dir: Path | None = Field(
        None,
        description="Folder of the FLUX.1-dev files for kohya (default: <models_dir>/flux).",
    )


class BeaverSettings(BaseSettings):
    """Every setting beaver reads. See docs/configuration.md."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    output_dir: Path = Field(Path("outputs"), description="Root of everything beaver writes.")
    models_dir: Path = Field(default_factory=default_models_dir, description="Model packs.")
    device: Device = Field("auto", description="auto, cpu, cuda or mps.")
    face: FaceSettings = Field(default_factory=FaceSettings)
    caption: CaptionSettings = Field(default_factory=CaptionSettings)
    prep: PrepSettings = Field(default_factory=PrepSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    plugins: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per-plugin options, [plugins.<name>]."
    )

    # The seed's output layout, derived from output_dir.
    @property
    def facevault_dir(self) -> Path:
        """``outputs/facevault/``: the face store, face_cache.json, exports."""
        return self.output_dir / "facevault"

    def processed_dir(self, name: str) -> Path:
        """``outputs/processed/<name>/``: captions.json."""
        return self.output_dir / "processed" / name

    def dataset_dir(self, name: str) -> Path:
        """``outputs/lora_datasets/<name>/``: a prepared dataset."""
        return self.output_dir / "lora_datasets" / name

    def training_run_dir(self, name: str, when: datetime | None = None) -> Path:
        """``outputs/lora_models/<name>/<YYYYmmdd_HHMMSS>/``: one configured run."""
        stamp = (when or datetime.now()).strftime("%Y%m%d_%H%M%S")
        return self.output_dir / "lora_models" / name / stamp

    def plugin_options(self, name: str) -> dict[str, Any]:
        """The ``[plugins.<name>]`` table (empty when absent)."""
        return dict(self.plugins.get(name, {}))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first; no .env or secrets files. TOML files come from
        # load_settings() through a context variable: pydantic-settings has no per-call
        # file argument.
        del dotenv_settings, file_secret_settings
        files = [TomlConfigSettingsSource(settings_cls, toml_file=p) for p in _TOML_FILES.get()]
        return (init_settings, env_settings, *reversed(files))


_TOML_FILES: ContextVar[tuple[Path, ...]] = ContextVar("beaver_toml_files", default=())


@dataclass(frozen=True)
class ResolvedSettings:
    """Settings plus where each value came from."""

    settings: BeaverSettings
    origins: dict[str, str]
    """Dotted key → "default", a config file path, "env BEAVER_…" or "command line"."""
    files: tuple[Path, ...] = field(default=())
    """Config files read, lowest priority first."""


def config_candidates(explicit: Path | None = None, *, cwd: Path | None = None) -> tuple[Path, ...]:
    """Where config files are looked for, lowest priority first (existing or not).

    ``--config PATH`` (or ``BEAVER_CONFIG``) replaces the search; otherwise the user
    config file and then ``./beaver.toml``.
    """
    if explicit is None and os.environ.get(CONFIG_ENV):
        explicit = Path(os.environ[CONFIG_ENV])
    if explicit is not None:
        return (explicit,)
    return (user_config_file(), (cwd or Path.cwd()) / CONFIG_FILE_NAME)


def config_files(explicit: Path | None = None, *, cwd: Path | None = None) -> tuple[Path, ...]:
    """The config files to read: the candidates that exist; a named one must exist."""
    candidates = config_candidates(explicit, cwd=cwd)
    if explicit is not None or os.environ.get(CONFIG_ENV):
        (named,) = candidates
        if not named.is_file():
            raise ConfigError(
                f"{named}: config file not found.",
                hint="Check the --config path (or BEAVER_CONFIG), or leave it out.",
            )
    return tuple(p for p in candidates if p.is_file())


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{path}: not valid TOML ({exc}).", hint="Fix the file or remove it."
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror}).") from None


def _leaves(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and key != "plugins":
            yield from _leaves(value, f"{dotted}.")
        elif isinstance(value, Mapping) and key == "plugins":
            for name, options in value.items():
                if isinstance(options, Mapping) and options:
                    yield from _leaves(options, f"plugins.{name}.")
                else:
                    yield f"plugins.{name}"
        else:
            yield dotted


def _env_layer() -> dict[str, Any]:
    source = EnvSettingsSource(
        BeaverSettings,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
    )
    return source()


def _env_name(dotted: str) -> str:
    return ENV_PREFIX + dotted.replace(".", ENV_NESTED_DELIMITER).upper()


def load_settings(
    config: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    *,
    cwd: Path | None = None,
) -> ResolvedSettings:
    """Resolve settings from defaults, config files, environment and CLI ``overrides``.

    ``overrides`` may be nested (``{"face": {"min_score": 0.7}}``) or dotted
    (``{"face.min_score": 0.7}``); ``None`` values mean "flag not given" and are dropped.
    """
    files = config_files(config, cwd=cwd)
    layers: list[tuple[str, dict[str, Any]]] = [(str(p), _read_toml(p)) for p in files]
    layers.append(("env", _env_layer()))
    cli = _nest(overrides or {})
    layers.append(("command line", cli))

    token = _TOML_FILES.set(files)
    try:
        settings = BeaverSettings(**cli)
    except ValidationError as exc:
        raise ConfigError(
            _describe(exc, layers),
            hint="`beaver config show` lists every setting; docs/configuration.md explains them.",
        ) from None
    finally:
        _TOML_FILES.reset(token)

    origins: dict[str, str] = {}
    for origin, data in layers:
        for key in _leaves(data):
            if origin == "env":
                origins[key] = f"env {_env_name(key)}"
            else:
                origins[key] = origin
    return ResolvedSettings(settings, origins, files)


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            inner = _nest(value)
            if inner:
                out.setdefault(key, {}).update(inner)
            continue
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _origin_of(loc: tuple[int | str, ...], layers: list[tuple[str, dict[str, Any]]]) -> str:
    dotted = ".".join(str(p) for p in loc)
    for origin, data in reversed(layers):
        if dotted in set(_leaves(data)) or any(k.startswith(dotted + ".") for k in _leaves(data)):
            return _env_name(dotted) if origin == "env" else origin
    return "default"


def _describe(exc: ValidationError, layers: list[tuple[str, dict[str, Any]]]) -> str:
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(settings)"
        problems.append(f"{_origin_of(loc, layers)}: {key}: {err['msg']}")
    return "Invalid settings: " + "; ".join(problems) + "."


def settings_table(resolved: ResolvedSettings) -> list[tuple[str, Any, str]]:
    """``(dotted key, value, origin)`` for every setting, for ``beaver config show``."""
    data = resolved.settings.model_dump(mode="json")
    rows = []
    for key in _leaves(data):
        node: Any = data
        for part in key.split("."):
            node = node[part]
        rows.append((key, node, resolved.origins.get(key, "default")))
    return rows
