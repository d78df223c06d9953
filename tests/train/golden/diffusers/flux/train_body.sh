# diffusers: FLUX.1 [dev] LoRA with examples/dreambooth/train_dreambooth_lora_flux.py
# $RUN/diffusers/data/metadata.jsonl: 188 rows, one plan epoch (15 epochs x 94 steps = 1410)
# LoRA: $RUN/model/pytorch_lora_weights.safetensors at the end; a model/checkpoint-N/ every 3 epochs
# black-forest-labs/FLUX.1-dev is gated: accept its licence on huggingface.co and log in (hf auth login) first.
DIFFUSERS_DIR="${DIFFUSERS_DIR:-}"
if [ -z "$DIFFUSERS_DIR" ] || [ ! -f "$DIFFUSERS_DIR/examples/dreambooth/train_dreambooth_lora_flux.py" ]; then
  diffusers_hint_dir="${DIFFUSERS_DIR:-$HOME/diffusers}"
  if [ -z "$DIFFUSERS_DIR" ]; then
    echo 'diffusers: no diffusers checkout is set (DIFFUSERS_DIR, or train.diffusers_dir).' >&2
  else
    echo "diffusers: $DIFFUSERS_DIR/examples/dreambooth/train_dreambooth_lora_flux.py does not exist." >&2
  fi
  printf '%s\n' \
    'The diffusers example scripts are not in the pip package; install a checkout:' \
    '  git clone https://github.com/huggingface/diffusers '"${diffusers_hint_dir}" \
    '  pip install -e '"${diffusers_hint_dir}" \
    '  pip install -r '"${diffusers_hint_dir}"/examples/dreambooth/requirements_flux.txt \
    '  pip install peft datasets tensorboard bitsandbytes' \
    '  accelerate config default' \
    'then set DIFFUSERS_DIR='"${diffusers_hint_dir}"' (or train.diffusers_dir) and run this again.' \
    >&2
  exit 3
fi
if ! command -v accelerate >/dev/null 2>&1; then
  echo 'diffusers: accelerate is not on PATH: activate the environment diffusers is installed in (pip install accelerate; accelerate config default).' >&2
  exit 3
fi
if [ ! -f $RUN/diffusers/data/metadata.jsonl ]; then
  echo 'diffusers: $RUN/diffusers/data/metadata.jsonl is missing: run beaver train again.' >&2
  exit 3
fi
accelerate launch "$DIFFUSERS_DIR/examples/dreambooth/train_dreambooth_lora_flux.py" \
  --pretrained_model_name_or_path=black-forest-labs/FLUX.1-dev \
  --dataset_name=$RUN/diffusers/data \
  --instance_prompt='emma, person' \
  --image_column=image \
  --caption_column=text \
  --resolution=1024 \
  --center_crop \
  --train_batch_size=2 \
  --num_train_epochs=15 \
  --max_train_steps=1410 \
  --learning_rate=0.0001 \
  --lr_scheduler=cosine \
  --lr_warmup_steps=70 \
  --use_8bit_adam \
  --rank=32 \
  --lora_alpha=16 \
  --mixed_precision=bf16 \
  --seed=42 \
  --gradient_checkpointing \
  --output_dir=$RUN/model \
  --report_to=tensorboard \
  --logging_dir=$RUN/logs \
  --validation_prompt='emma, close-up portrait photo, looking at the camera' \
  --validation_epochs=3 \
  --checkpointing_steps=282 \
  --guidance_scale=1
