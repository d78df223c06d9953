# kohya sd-scripts sdxl_train_network.py: config.toml + dataset.toml
# $SD_SCRIPTS_DIR overrides the sd-scripts folder.
sd_scripts=${SD_SCRIPTS_DIR:-}
[ -n "$sd_scripts" ] || sd_scripts=/opt/sd-scripts
if [ -z "$sd_scripts" ] || [ ! -f "$sd_scripts/sdxl_train_network.py" ]; then
    echo "kohya: sd-scripts (https://github.com/kohya-ss/sd-scripts) is not installed${sd_scripts:+ at $sd_scripts}. Install it:" >&2
    target="${sd_scripts:-$HOME/sd-scripts}"
    printf '  git clone https://github.com/kohya-ss/sd-scripts %q\n' "$target" >&2
    printf '  cd %q\n' "$target" >&2
    echo '  python3 -m venv venv' >&2
    echo '  venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cu124' >&2
    echo '  venv/bin/pip install -r requirements.txt' >&2
    echo '  venv/bin/accelerate config' >&2
    printf 'then set SD_SCRIPTS_DIR=%q (or train.sd_scripts_dir) and run this again.\n' "$target" >&2
    exit 3
fi
sd_scripts=$(cd "$sd_scripts" && pwd)
if [ -x "$sd_scripts/venv/bin/accelerate" ]; then
    accelerate="$sd_scripts/venv/bin/accelerate"
elif command -v accelerate >/dev/null 2>&1; then
    accelerate=accelerate
else
    echo "kohya: accelerate is not installed in $sd_scripts/venv nor on PATH." >&2
    printf '  cd %q && venv/bin/pip install torch torchvision --index-url https://download.pytorch.org/whl/cu124 && venv/bin/pip install -r requirements.txt\n' "$sd_scripts" >&2
    exit 3
fi
(cd "$sd_scripts" && "$accelerate" launch --num_cpu_threads_per_process 1 "$sd_scripts/sdxl_train_network.py" --config_file=$RUN/kohya/config.toml --dataset_config=$RUN/kohya/dataset.toml)
