#!/usr/bin/env bash
# HELM next to the baselines on MiniGrid-MemoryS7-v0 (docs/results.md, "HELM"): SmolLM2-135M (offline default)
# truncated to its first 2 of 30 blocks (lm_layers=2, as a fork of the reference kept 2 of 18 Transformer-XL
# layers at equal returns), mem_len 255 (whole episodes), beta 1, 300k steps, 2 seeds; two runs at a time, one
# torch thread each. Runs resume if restarted. Figure and table:
#   shelm plot runs/foundation/MiniGrid-MemoryS7-v0__* runs/helm/* --out docs/figures/memory-s7.png
set -euo pipefail
STEPS=${STEPS:-300000}
OUT=${OUT:-runs/helm}
LAYERS=${LAYERS:-2}
mkdir -p "$OUT"
run() {
  local seed=$1
  local dir="$OUT/MiniGrid-MemoryS7-v0__helm-L${LAYERS}__s${seed}"
  if [ -f "$dir/config.json" ]; then
    shelm train --resume "$dir" --quiet
  else
    shelm train --env MiniGrid-MemoryS7-v0 --agent helm --steps "$STEPS" --seed "$seed" --run-dir "$dir" --quiet \
      --set lm_layers="$LAYERS" --set mem_len=255 --set torch_threads=1
  fi
}
export -f run
export OUT STEPS LAYERS
printf '%s\n' 1 2 | xargs -P 2 -I{} bash -c 'run {}'
