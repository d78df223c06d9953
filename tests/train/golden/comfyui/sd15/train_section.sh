# ComfyUI native LoRA training: workflow_api.json, queued on a running ComfyUI.
# $COMFYUI_URL and $COMFYUI_DIR override train.comfyui_url and train.comfyui_dir.
url=${COMFYUI_URL:-http://127.0.0.1:8188}
url="${url%/}"
comfy=${COMFYUI_DIR:-}
if ! command -v curl >/dev/null 2>&1; then
    echo 'comfyui: curl is needed to talk to ComfyUI; install it (apt install curl).' >&2
    exit 3
fi
if [ -z "$comfy" ] || [ ! -d "$comfy/input" ] || [ ! -d "$comfy/models" ]; then
    echo "comfyui: no ComfyUI folder${comfy:+ at $comfy} (one with input/ and models/). Install ComfyUI:" >&2
    target="${comfy:-${HOME:-.}/ComfyUI}"
    printf '  git clone https://github.com/Comfy-Org/ComfyUI %q\n' "$target" >&2
    printf '  cd %q\n' "$target" >&2
    echo '  python3 -m venv venv' >&2
    echo '  venv/bin/pip install torch torchvision torchaudio --extra-index-url https://download.pytorch.org/whl/cu130' >&2
    echo '  venv/bin/pip install -r requirements.txt' >&2
    echo '  venv/bin/python main.py --listen 127.0.0.1 --port 8188' >&2
    printf 'then set COMFYUI_DIR=%q (or train.comfyui_dir) and run this again.\n' "$target" >&2
    exit 3
fi
port="${url##*:}"
port="${port%%/*}"
case "$port" in ""|*[!0-9]*) port=8188 ;; esac
if ! curl -fsS --max-time 5 -o /dev/null "$url/system_stats" 2>/dev/null; then
    echo "comfyui: no ComfyUI server answers at $url. Start it:" >&2
    printf '  cd %q && venv/bin/python main.py --listen 127.0.0.1 --port %s\n' "$comfy" "$port" >&2
    echo "(or set COMFYUI_URL / train.comfyui_url to where it runs), then run this again." >&2
    exit 3
fi
missing=0
info=$(curl -fsS --max-time 30 "$url/object_info/CheckpointLoaderSimple" || true)
if ! grep -qF -- '"v1-5-pruned-emaonly.safetensors"' <<<"$info"; then
    echo 'comfyui: ComfyUI lists no v1-5-pruned-emaonly.safetensors (models/checkpoints/).' >&2
    printf '  hf download stable-diffusion-v1-5/stable-diffusion-v1-5 v1-5-pruned-emaonly.safetensors --local-dir %q/checkpoints\n' "$comfy/models" >&2
    missing=1
fi
if [ "$missing" = 1 ]; then
    echo 'ComfyUI rescans its model folders when asked: no restart is needed.' >&2
    exit 3
fi
dest="$comfy/input/"beaver_emma_run
mark="$dest/.beaver-run"
if [ -e "$dest" ] && { [ ! -f "$mark" ] || [ "$(cat "$mark")" != $RUN ]; }; then
    echo "comfyui: $dest exists and was not written by this run; move it away (or rename it) first." >&2
    exit 1
fi
rm -rf -- "$dest"
mkdir -p -- "$dest"
printf "%s\n" $RUN >"$mark"
copied=0
while IFS=$'\t' read -r sub image caption; do
    case "$sub" in ""|"#"*) continue ;; esac
    mkdir -p -- "$dest/$sub"
    stem="${image##*/}"
    stem="${stem%.*}"
    if ! cp -L -- "$image" "$dest/$sub/"; then
        echo "comfyui: cannot copy $image: moved or deleted since beaver train ran?" >&2
        exit 1
    fi
    if [ -n "$caption" ]; then
        cp -L -- "$caption" "$dest/$sub/$stem.txt"
    else
        printf "%s\n" 'emma, person' >"$dest/$sub/$stem.txt"
    fi
    copied=$((copied + 1))
done <$RUN/comfyui/dataset.tsv
echo "comfyui: copied $copied images and captions into $dest"
touch $RUN/comfyui/.queued
code=$(curl -sS --max-time 60 -o $RUN/comfyui/queue_response.json -w "%{http_code}" -H 'Content-Type: application/json' --data-binary @$RUN/comfyui/prompt.json "$url/prompt") || code=000
if [ "$code" != 200 ]; then
    echo "comfyui: ComfyUI refused the workflow (HTTP $code):" >&2
    cat $RUN/comfyui/queue_response.json >&2 2>/dev/null || true
    echo >&2
    echo 'This workflow follows the training nodes of ComfyUI 0.38.1: if ComfyUI names an unknown node or input, or a type mismatch, update it (git pull, then pip install -r requirements.txt) and run this again.' >&2
    exit 1
fi
id=$(sed -nE 's/.*"prompt_id": *"([^"]+)".*/\1/p' $RUN/comfyui/queue_response.json)
if [ -z "$id" ]; then
    printf 'comfyui: no prompt_id in the answer of ComfyUI (%s).\n' $RUN/comfyui/queue_response.json >&2
    exit 1
fi
echo "comfyui: queued prompt $id on $url: 1065 training steps (watch it in the ComfyUI window)"
poll="${COMFYUI_POLL_SECONDS:-5}"
started=$SECONDS state="" lost=0 unknown=0 said=$SECONDS
while :; do
    sleep "$poll"
    if ! hist=$(curl -fsS --max-time 30 "$url/history/$id" 2>/dev/null); then
        lost=$((lost + 1))
        if [ "$lost" -ge 12 ]; then
            echo "comfyui: lost contact with ComfyUI at $url while prompt $id ran." >&2
            exit 1
        fi
        continue
    fi
    lost=0
    if grep -Eq '"status_str": *"(success|error)"' <<<"$hist"; then break; fi
    queue=$(curl -fsS --max-time 30 "$url/queue" 2>/dev/null || true)
    now=unknown
    if grep -qF "\"$id\"" <<<"${queue%%\"queue_pending\"*}"; then now=running
    elif grep -qF "\"$id\"" <<<"$queue"; then now=waiting; fi
    if [ "$now" = unknown ]; then
        unknown=$((unknown + 1))
        if [ "$unknown" -ge 3 ]; then
            echo "comfyui: ComfyUI has prompt $id neither queued nor finished (was it restarted?)." >&2
            exit 1
        fi
        continue
    fi
    unknown=0
    elapsed=$((SECONDS - started))
    if [ "$now" != "$state" ] || [ $((SECONDS - said)) -ge 60 ]; then
        printf "comfyui: %s, %dm%02ds since queued\n" "$now" $((elapsed / 60)) $((elapsed % 60))
        state="$now"
        said=$SECONDS
    fi
done
printf "%s\n" "$hist" >$RUN/comfyui/history.json
if grep -Eq '"status_str": *"error"' <<<"$hist"; then
    why=$(sed -nE 's/.*"exception_message": *"(([^"\\]|\\.)*)".*/\1/p' <<<"$hist")
    echo "comfyui: ComfyUI stopped prompt $id with an error${why:+: $why}" >&2
    printf 'The full record is in %s.\n' $RUN/comfyui/history.json >&2
    exit 1
fi
lora=$(ls -1t -- "$comfy/output/loras/"emma_1065_steps_*_.safetensors 2>/dev/null | head -n 1 || true)
if [ -z "$lora" ]; then
    printf 'comfyui: training finished but %s holds no %s file (does ComfyUI run with --output-directory?); copy the LoRA into %s yourself.\n' "$comfy/output/loras/" 'emma_1065_steps_*' $RUN/model >&2
    exit 1
fi
if [ ! "$lora" -nt $RUN/comfyui/.queued ]; then
    echo "comfyui: ComfyUI reused its result of this same workflow from an earlier run (it caches finished nodes); copying that LoRA."
fi
mkdir -p -- $RUN/model $RUN/logs
cp -L -- "$lora" $RUN/model/
printf "comfyui: LoRA saved as %s\n" $RUN/model/"${lora##*/}"
graph=$(grep -oE '"filename": *"[^"]+"' <<<"$hist" | head -n 1 | sed -E 's/.*"([^"]+)"$/\1/' || true)
if [ -n "$graph" ] && curl -fsS --max-time 30 -G -o $RUN/logs/loss_graph.png --data-urlencode "filename=$graph" --data-urlencode "type=temp" "$url/view" 2>/dev/null; then
    printf "comfyui: loss graph saved as %s\n" $RUN/logs/loss_graph.png
fi
