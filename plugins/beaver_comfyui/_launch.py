"""The train.sh lines that run the workflow on ComfyUI, and the same checks in Python.

The script finds ComfyUI through ``$COMFYUI_DIR`` / ``$COMFYUI_URL`` (else the options),
checks the server answers and lists the model files, copies the dataset into
``input/<folder>/<repeats>_<shot>/``, POSTs prompt.json to ``/prompt``, polls
``/history/<id>`` until ComfyUI reports success or an error, then copies the LoRA from
ComfyUI's output/ into the run's model/ folder. A missing piece ends with exit status 3 and
the exact commands that install or start it.
"""

from __future__ import annotations

import os
import shlex
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from beaver_comfyui._workflow import COMFYUI_VERSION, ModelFile

__all__ = [
    "DIR_ENV",
    "INSTALL_EXIT",
    "REPO_URL",
    "URL_ENV",
    "ScriptValues",
    "download_command",
    "install_steps",
    "launch_problem",
    "script_body",
    "start_command",
]

DIR_ENV = "COMFYUI_DIR"
URL_ENV = "COMFYUI_URL"
POLL_ENV = "COMFYUI_POLL_SECONDS"
INSTALL_EXIT = 3
REPO_URL = "https://github.com/Comfy-Org/ComfyUI"
TORCH_INSTALL = (
    "venv/bin/pip install torch torchvision torchaudio "
    "--extra-index-url https://download.pytorch.org/whl/cu130"
)
"""ComfyUI's README (manual install, NVIDIA): PyTorch first, then requirements.txt."""
AFTER_CLONE = (
    "python3 -m venv venv",
    TORCH_INSTALL,
    "venv/bin/pip install -r requirements.txt",
)
GATED_REPO = "black-forest-labs/FLUX.1-dev"
GATED = (
    f"{GATED_REPO} is gated: accept its licence on huggingface.co, then run "
    "`hf auth login` before downloading."
)
LOST_POLLS = 12
"""Failed polls in a row (about a minute) before the server counts as gone."""
UNKNOWN_POLLS = 3
"""Polls in a row that find the prompt neither queued nor in the history."""


def install_steps(target: str) -> list[str]:
    """The commands that install ComfyUI into ``target`` (already shell-quoted)."""
    return [f"git clone {REPO_URL} {target}", f"cd {target}", *AFTER_CLONE]


def start_command(folder: str, port: int) -> str:
    """How to start the server ComfyUI's README documents (``python main.py``)."""
    return f"cd {folder} && venv/bin/python main.py --listen 127.0.0.1 --port {port}"


def download_command(file: ModelFile, models: str) -> str:
    """The command that puts ``file`` into ``models``/<folder> (``models`` already quoted)."""
    target = f"{models}/{file.folder}"
    if file.source is not None:
        return f"ln -s {shlex.quote(str(file.source))} {target}/{shlex.quote(file.name)}"
    if file.repo is None:
        return f"cp /path/to/{shlex.quote(file.name)} {target}/"
    return f"hf download {file.repo} {shlex.quote(file.name)} --local-dir {target}"


def _fix_line(file: ModelFile) -> str:
    """A printf of ``download_command`` with the run-time models folder shell-quoted."""
    before, after = download_command(file, "\0").split("\0", 1)

    def literal(text: str) -> str:
        return text.replace("\\", "\\\\").replace("%", "%%")

    fmt = f"  {literal(before)}%q{literal(after)}\\n"
    return f'printf {_q(fmt)} "$comfy/models" >&2'


def _port(url: str) -> int:
    try:
        return urllib.parse.urlsplit(url).port or 8188
    except ValueError:
        return 8188


@dataclass(frozen=True)
class ScriptValues:
    """What the script needs from the plan and the options."""

    default_url: str
    default_dir: Path | None
    out_dir: Path
    prompt: Path
    manifest: Path
    folder: str
    run_id: str
    class_tokens: str
    files: tuple[ModelFile, ...]
    lora_name: str
    """The saved file's name up to its counter: ``<prefix name>_<steps>_steps_``."""
    steps: int
    model_dir: Path
    logging_dir: Path


def _q(value: object) -> str:
    return shlex.quote(str(value))


def _say(text: str) -> str:
    """An echo to stderr of fixed text."""
    return f"echo {_q(text)} >&2"


def _checks(v: ScriptValues) -> list[str]:
    lines = [
        f"url=${{{URL_ENV}:-{_q(v.default_url)}}}",
        'url="${url%/}"',
        f"comfy=${{{DIR_ENV}:-}}",
    ]
    if v.default_dir is not None:
        lines.append(f'[ -n "$comfy" ] || comfy={_q(v.default_dir)}')
    lines += [
        "if ! command -v curl >/dev/null 2>&1; then",
        "    " + _say("comfyui: curl is needed to talk to ComfyUI; install it (apt install curl)."),
        f"    exit {INSTALL_EXIT}",
        "fi",
        'if [ -z "$comfy" ] || [ ! -d "$comfy/input" ] || [ ! -d "$comfy/models" ]; then',
        (
            '    echo "comfyui: no ComfyUI folder${comfy:+ at $comfy} (one with input/ and models/).'
            ' Install ComfyUI:" >&2'
        ),
        '    target="${comfy:-${HOME:-.}/ComfyUI}"',
        f"    printf '  git clone {REPO_URL} %q\\n' \"$target\" >&2",
        "    printf '  cd %q\\n' \"$target\" >&2",
        *(f"    {_say('  ' + step)}" for step in AFTER_CLONE),
        "    " + _say("  venv/bin/python main.py --listen 127.0.0.1 --port 8188"),
        (
            f"    printf 'then set {DIR_ENV}=%q (or train.comfyui_dir) and run this again.\\n' "
            '"$target" >&2'
        ),
        f"    exit {INSTALL_EXIT}",
        "fi",
        'port="${url##*:}"',
        'port="${port%%/*}"',
        'case "$port" in ""|*[!0-9]*) port=8188 ;; esac',
        'if ! curl -fsS --max-time 5 -o /dev/null "$url/system_stats" 2>/dev/null; then',
        '    echo "comfyui: no ComfyUI server answers at $url. Start it:" >&2',
        (
            "    printf '  cd %q && venv/bin/python main.py --listen 127.0.0.1 --port %s\\n' "
            '"$comfy" "$port" >&2'
        ),
        (
            f'    echo "(or set {URL_ENV} / train.comfyui_url to where it runs), then run this'
            ' again." >&2'
        ),
        f"    exit {INSTALL_EXIT}",
        "fi",
        "missing=0",
    ]
    for loader in dict.fromkeys(f.loader for f in v.files):
        lines.append(f'info=$(curl -fsS --max-time 30 "$url/object_info/{loader}" || true)')
        for file in (f for f in v.files if f.loader == loader):
            # ComfyUI lists every file under models/<folder> (and extra_model_paths.yaml).
            needle = _q(f'"{file.name}"')
            lines += [
                f'if ! grep -qF -- {needle} <<<"$info"; then',
                "    " + _say(f"comfyui: ComfyUI lists no {file.name} (models/{file.folder}/)."),
                "    " + _fix_line(file),
                "    missing=1",
                "fi",
            ]
    lines.append('if [ "$missing" = 1 ]; then')
    if any(f.repo == GATED_REPO for f in v.files):
        lines.append("    " + _say(GATED))
    lines += [
        "    " + _say("ComfyUI rescans its model folders when asked: no restart is needed."),
        f"    exit {INSTALL_EXIT}",
        "fi",
    ]
    return lines


def _copy(v: ScriptValues) -> list[str]:
    dest = f'"$comfy/input/"{_q(v.folder)}'
    return [
        f"dest={dest}",
        'mark="$dest/.beaver-run"',
        (
            'if [ -e "$dest" ] && { [ ! -f "$mark" ] || [ "$(cat "$mark")" != '
            f"{_q(v.run_id)} ]; }}; then"
        ),
        (
            '    echo "comfyui: $dest exists and was not written by this run; move it away'
            ' (or rename it) first." >&2'
        ),
        "    exit 1",
        "fi",
        'rm -rf -- "$dest"',
        'mkdir -p -- "$dest"',
        f'printf "%s\\n" {_q(v.run_id)} >"$mark"',
        "copied=0",
        "while IFS=$'\\t' read -r sub image caption; do",
        '    case "$sub" in ""|"#"*) continue ;; esac',
        '    mkdir -p -- "$dest/$sub"',
        '    stem="${image##*/}"',
        '    stem="${stem%.*}"',
        '    if ! cp -L -- "$image" "$dest/$sub/"; then',
        '        echo "comfyui: cannot copy $image: moved or deleted since beaver train ran?" >&2',
        "        exit 1",
        "    fi",
        '    if [ -n "$caption" ]; then',
        '        cp -L -- "$caption" "$dest/$sub/$stem.txt"',
        "    else",
        f'        printf "%s\\n" {_q(v.class_tokens)} >"$dest/$sub/$stem.txt"',
        "    fi",
        "    copied=$((copied + 1))",
        f"done <{_q(v.manifest)}",
        'echo "comfyui: copied $copied images and captions into $dest"',
    ]


def _queue(v: ScriptValues) -> list[str]:
    out = _q(v.out_dir)
    return [
        f"touch {out}/.queued",
        (
            f'code=$(curl -sS --max-time 60 -o {out}/queue_response.json -w "%{{http_code}}" '
            f"-H 'Content-Type: application/json' --data-binary @{_q(v.prompt)} "
            '"$url/prompt") || code=000'
        ),
        'if [ "$code" != 200 ]; then',
        '    echo "comfyui: ComfyUI refused the workflow (HTTP $code):" >&2',
        f"    cat {out}/queue_response.json >&2 2>/dev/null || true",
        "    echo >&2",
        "    "
        + _say(
            f"This workflow follows the training nodes of ComfyUI {COMFYUI_VERSION}: if "
            "ComfyUI names an unknown node or input, or a type mismatch, update it (git "
            "pull, then pip install -r requirements.txt) and run this again."
        ),
        "    exit 1",
        "fi",
        f'id=$(sed -nE \'s/.*"prompt_id": *"([^"]+)".*/\\1/p\' {out}/queue_response.json)',
        'if [ -z "$id" ]; then',
        (
            "    printf 'comfyui: no prompt_id in the answer of ComfyUI (%s).\\n' "
            f"{out}/queue_response.json >&2"
        ),
        "    exit 1",
        "fi",
        (
            'echo "comfyui: queued prompt $id on $url:'
            f' {v.steps} training steps (watch it in the ComfyUI window)"'
        ),
    ]


def _wait(v: ScriptValues) -> list[str]:
    return [
        f'poll="${{{POLL_ENV}:-5}}"',
        'started=$SECONDS state="" lost=0 unknown=0 said=$SECONDS',
        "while :; do",
        '    sleep "$poll"',
        '    if ! hist=$(curl -fsS --max-time 30 "$url/history/$id" 2>/dev/null); then',
        "        lost=$((lost + 1))",
        f'        if [ "$lost" -ge {LOST_POLLS} ]; then',
        '            echo "comfyui: lost contact with ComfyUI at $url while prompt $id ran." >&2',
        "            exit 1",
        "        fi",
        "        continue",
        "    fi",
        "    lost=0",
        '    if grep -Eq \'"status_str": *"(success|error)"\' <<<"$hist"; then break; fi',
        '    queue=$(curl -fsS --max-time 30 "$url/queue" 2>/dev/null || true)',
        "    now=unknown",
        '    if grep -qF "\\"$id\\"" <<<"${queue%%\\"queue_pending\\"*}"; then now=running',
        '    elif grep -qF "\\"$id\\"" <<<"$queue"; then now=waiting; fi',
        '    if [ "$now" = unknown ]; then',
        "        unknown=$((unknown + 1))",
        f'        if [ "$unknown" -ge {UNKNOWN_POLLS} ]; then',
        (
            '            echo "comfyui: ComfyUI has prompt $id neither queued nor finished'
            ' (was it restarted?)." >&2'
        ),
        "            exit 1",
        "        fi",
        "        continue",
        "    fi",
        "    unknown=0",
        "    elapsed=$((SECONDS - started))",
        '    if [ "$now" != "$state" ] || [ $((SECONDS - said)) -ge 60 ]; then',
        (
            '        printf "comfyui: %s, %dm%02ds since queued\\n" "$now" $((elapsed / 60))'
            " $((elapsed % 60))"
        ),
        '        state="$now"',
        "        said=$SECONDS",
        "    fi",
        "done",
        f'printf "%s\\n" "$hist" >{_q(v.out_dir)}/history.json',
        'if grep -Eq \'"status_str": *"error"\' <<<"$hist"; then',
        '    why=$(sed -nE \'s/.*"exception_message": *"(([^"\\\\]|\\\\.)*)".*/\\1/p\' <<<"$hist")',
        '    echo "comfyui: ComfyUI stopped prompt $id with an error${why:+: $why}" >&2',
        f"    printf 'The full record is in %s.\\n' {_q(v.out_dir)}/history.json >&2",
        "    exit 1",
        "fi",
    ]


def _collect(v: ScriptValues) -> list[str]:
    model_dir, logs = _q(v.model_dir), _q(v.logging_dir)
    pattern = f'"$comfy/output/loras/"{_q(v.lora_name)}*_.safetensors'
    return [
        f"lora=$(ls -1t -- {pattern} 2>/dev/null | head -n 1 || true)",
        'if [ -z "$lora" ]; then',
        (
            "    printf 'comfyui: training finished but %s holds no %s file (does ComfyUI"
            " run with --output-directory?); copy the LoRA into %s yourself.\\n'"
            f' "$comfy/output/loras/" {_q(v.lora_name + "*")} {model_dir} >&2'
        ),
        "    exit 1",
        "fi",
        f'if [ ! "$lora" -nt {_q(v.out_dir)}/.queued ]; then',
        (
            '    echo "comfyui: ComfyUI reused its result of this same workflow from an earlier run'
            ' (it caches finished nodes); copying that LoRA."'
        ),
        "fi",
        f"mkdir -p -- {model_dir} {logs}",
        f'cp -L -- "$lora" {model_dir}/',
        f'printf "comfyui: LoRA saved as %s\\n" {model_dir}/"${{lora##*/}}"',
        # The loss graph is a preview image in ComfyUI's temp/: keep a copy with the logs.
        (
            'graph=$(grep -oE \'"filename": *"[^"]+"\' <<<"$hist" | head -n 1 '
            '| sed -E \'s/.*"([^"]+)"$/\\1/\' || true)'
        ),
        (
            'if [ -n "$graph" ] && curl -fsS --max-time 30 -G -o '
            f'{logs}/loss_graph.png --data-urlencode "filename=$graph" '
            '--data-urlencode "type=temp" "$url/view" 2>/dev/null; then'
        ),
        f'    printf "comfyui: loss graph saved as %s\\n" {logs}/loss_graph.png',
        "fi",
    ]


def script_body(v: ScriptValues) -> str:
    """Bash lines (no here-documents: train.sh indents them) that check, copy, queue, wait."""
    head = [
        "# ComfyUI native LoRA training: workflow_api.json, queued on a running ComfyUI.",
        f"# ${URL_ENV} and ${DIR_ENV} override train.comfyui_url and train.comfyui_dir.",
    ]
    body = head + _checks(v) + _copy(v) + _queue(v) + _wait(v) + _collect(v)
    return "\n".join(body) + "\n"


def _comfy_dir(default_dir: Path | None) -> Path | None:
    env = os.environ.get(DIR_ENV)
    if env:
        return Path(env).expanduser()
    return default_dir.expanduser() if default_dir is not None else None


def launch_problem(default_dir: Path | None, default_url: str) -> str | None:
    """Why train.sh would stop with exit 3 now, as one line; None when it would queue."""
    folder = _comfy_dir(default_dir)
    if folder is None or not (folder / "input").is_dir() or not (folder / "models").is_dir():
        where = f" at {folder}" if folder is not None else ""
        target = shlex.quote(str(folder)) if folder is not None else "~/ComfyUI"
        steps = "; ".join(install_steps(target))
        return (
            f"no ComfyUI folder{where} (one with input/ and models/): {steps}; then set "
            f"train.comfyui_dir or {DIR_ENV}."
        )
    url = (os.environ.get(URL_ENV) or default_url).rstrip("/")
    start = start_command(shlex.quote(str(folder)), _port(url))
    try:
        with urllib.request.urlopen(f"{url}/system_stats", timeout=2) as answer:
            answer.read(1)
    except urllib.error.HTTPError as exc:
        return f"{url} answered HTTP {exc.code} to /system_stats: is it a ComfyUI server?"
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return (
            f"no ComfyUI server answers at {url} ({reason}): start it with `{start}`, or set "
            f"train.comfyui_url or {URL_ENV} to where it runs."
        )
    return None
