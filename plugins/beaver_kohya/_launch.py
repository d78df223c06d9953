"""The train.sh lines that run sd-scripts, and the same checks in Python for ``--run``.

Both look in the same places: ``$SD_SCRIPTS_DIR``, else the ``sd_scripts_dir`` option;
accelerate from sd-scripts' own venv, else from PATH; and, for FLUX, the four model files.
A missing piece ends with exit status 3 and the exact commands that install it.
"""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from beaver_kohya._files import ModelFile, download_command

__all__ = [
    "AFTER_CLONE",
    "ENV_VAR",
    "INSTALL_EXIT",
    "REPO_URL",
    "install_steps",
    "launch_problem",
    "script_body",
]

ENV_VAR = "SD_SCRIPTS_DIR"
INSTALL_EXIT = 3
REPO_URL = "https://github.com/kohya-ss/sd-scripts"
TORCH_INSTALL = (
    "venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cu124"
)
"""sd-scripts' README: PyTorch first, for the machine's CUDA (cu124 is its tested build)."""
GATED_REPOS = frozenset({"black-forest-labs/FLUX.1-dev"})
GATED = (
    "black-forest-labs/FLUX.1-dev is gated: accept its licence on huggingface.co, then run "
    "`hf auth login` before downloading."
)


AFTER_CLONE = (
    "python3 -m venv venv",
    TORCH_INSTALL,
    "venv/bin/pip install -r requirements.txt",
    "venv/bin/accelerate config",
)
"""Run inside the checkout: its own venv, which train.sh prefers to anything on PATH."""


def install_steps(target: str) -> list[str]:
    """The commands that install sd-scripts into ``target`` (already shell-quoted)."""
    return [f"git clone {REPO_URL} {target}", f"cd {target}", *AFTER_CLONE]


def _echo(text: str) -> str:
    return f"echo {shlex.quote(text)} >&2"


def _gated(files: list[ModelFile]) -> bool:
    return any(f.repo in GATED_REPOS for f in files)


def _install_check(script: str) -> list[str]:
    """Stop with the install commands unless ``$sd_scripts/<script>`` exists."""
    not_installed = (
        f'echo "kohya: sd-scripts ({REPO_URL}) is not installed'
        '${sd_scripts:+ at $sd_scripts}. Install it:" >&2'
    )
    then_set = (
        f"printf 'then set {ENV_VAR}=%q (or train.sd_scripts_dir) and run this again.\\n' "
        '"$target" >&2'
    )
    hint = [
        not_installed,
        'target="${sd_scripts:-$HOME/sd-scripts}"',
        f"printf '  git clone {REPO_URL} %q\\n' \"$target\" >&2",
        "printf '  cd %q\\n' \"$target\" >&2",
        *(_echo(f"  {step}") for step in AFTER_CLONE),
        then_set,
        f"exit {INSTALL_EXIT}",
    ]
    return [
        f'if [ -z "$sd_scripts" ] || [ ! -f "$sd_scripts/{script}" ]; then',
        *(f"    {line}" for line in hint),
        "fi",
        # Absolute from here on: the launch runs inside the folder.
        'sd_scripts=$(cd "$sd_scripts" && pwd)',
    ]


def _accelerate_check() -> list[str]:
    """sd-scripts' own venv first: accelerate there runs the Python that has its packages."""
    reinstall = (
        f"printf '  cd %q && {TORCH_INSTALL} && venv/bin/pip install -r requirements.txt\\n' "
        '"$sd_scripts" >&2'
    )
    return [
        'if [ -x "$sd_scripts/venv/bin/accelerate" ]; then',
        '    accelerate="$sd_scripts/venv/bin/accelerate"',
        "elif command -v accelerate >/dev/null 2>&1; then",
        "    accelerate=accelerate",
        "else",
        '    echo "kohya: accelerate is not installed in $sd_scripts/venv nor on PATH." >&2',
        f"    {reinstall}",
        f"    exit {INSTALL_EXIT}",
        "fi",
    ]


def _files_check(files: list[ModelFile]) -> list[str]:
    """Report every missing model file (not only the first) with its download command."""
    if not files:
        return []
    lines = ["missing=0"]
    for file in files:
        lines += [
            f"if [ ! -f {shlex.quote(str(file.path))} ]; then",
            "    " + _echo(f"kohya: {file.role} not found: {file.path}"),
            "    " + _echo(f"  {download_command(file)}"),
            "    missing=1",
            "fi",
        ]
    lines.append('if [ "$missing" = 1 ]; then')
    if _gated(files):
        lines.append("    " + _echo(GATED))
    lines += [f"    exit {INSTALL_EXIT}", "fi"]
    return lines


def script_body(
    *,
    script: str,
    config: Path,
    dataset: Path,
    default_dir: Path | None,
    files: list[ModelFile],
) -> str:
    """Bash lines (no here-documents: train.sh indents them) that check, then launch."""
    lines = [
        f"# kohya sd-scripts {script}: {config.name} + {dataset.name}",
        f"# ${ENV_VAR} overrides the sd-scripts folder.",
        f"sd_scripts=${{{ENV_VAR}:-}}",
    ]
    if default_dir is not None:
        lines.append(f'[ -n "$sd_scripts" ] || sd_scripts={shlex.quote(str(default_dir))}')
    lines += _install_check(script) + _accelerate_check() + _files_check(files)
    launch = (
        f'"$accelerate" launch --num_cpu_threads_per_process 1 "$sd_scripts/{script}" '
        f"--config_file={shlex.quote(str(config))} --dataset_config={shlex.quote(str(dataset))}"
    )
    # sd-scripts finds library/ and networks/ beside the script; cd as well, so that nothing
    # it resolves against the working directory lands elsewhere.
    lines.append(f'(cd "$sd_scripts" && {launch})')
    return "\n".join(lines) + "\n"


def _sd_scripts_dir(default_dir: Path | None) -> Path | None:
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return default_dir.expanduser() if default_dir is not None else None


def launch_problem(*, script: str, default_dir: Path | None, files: list[ModelFile]) -> str | None:
    """Why train.sh would stop with exit 3 now, as one line; None when it would launch."""
    folder = _sd_scripts_dir(default_dir)
    if folder is None or not (folder / script).is_file():
        where = f" at {folder}" if folder is not None else ""
        target = shlex.quote(str(folder)) if folder is not None else "~/sd-scripts"
        steps = "; ".join(install_steps(target))
        return (
            f"kohya sd-scripts is not installed{where}: {steps}; then set train.sd_scripts_dir "
            f"or {ENV_VAR}."
        )
    venv_accelerate = folder / "venv" / "bin" / "accelerate"
    if not os.access(venv_accelerate, os.X_OK) and shutil.which("accelerate") is None:
        return (
            f"accelerate is not installed in {folder}/venv nor on PATH: cd "
            f"{shlex.quote(str(folder))} && {TORCH_INSTALL} && venv/bin/pip install -r "
            "requirements.txt."
        )
    missing = [f for f in files if not f.path.is_file()]
    if missing:
        names = ", ".join(str(f.path) for f in missing)
        commands = "; ".join(download_command(f) for f in missing)
        gated = (
            f" ({GATED})" if any(f.repo == "black-forest-labs/FLUX.1-dev" for f in missing) else ""
        )
        return f"missing model files {names}: {commands}{gated}"
    return None
