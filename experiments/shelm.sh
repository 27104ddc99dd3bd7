#!/usr/bin/env bash
# SHELM (symbolic and imagenet retrievers) and HELMv2 next to HELM and the baselines on MiniGrid-MemoryS7-v0
# (docs/results.md): the same settings as experiments/helm.sh: SmolLM2-135M cut to its first 2 of 30 blocks
# (lm_layers=2), mem_len 255 steps, top-1 word, 300k steps, 2 seeds; two runs at a time, one torch thread each.
# Runs resume if restarted. Pick variants with VARIANTS="shelm-symbolic helmv2" (default: all three).
#   shelm plot runs/helm/* runs/shelm/*symbolic* runs/shelm/*imagenet* runs/shelm/*helmv2* --out docs/figures/memory-s7-shelm.png
set -euo pipefail
STEPS=${STEPS:-300000}
OUT=${OUT:-runs/shelm}
LAYERS=${LAYERS:-2}
SEEDS=${SEEDS:-"1 2"}
VARIANTS=${VARIANTS:-"shelm-symbolic shelm-imagenet helmv2"}
mkdir -p "$OUT"
run() {
  local variant=$1 seed=$2
  local dir="$OUT/MiniGrid-MemoryS7-v0__${variant}-L${LAYERS}__s${seed}"
  local agent=${variant%%-*}
  local extra=()
  case $variant in
    shelm-symbolic) extra=(--set retriever=symbolic) ;;
    shelm-imagenet) extra=(--set retriever=imagenet) ;;
    helmv2) extra=(--set image_encoder=imagenet) ;;
  esac
  if [ -f "$dir/config.json" ]; then
    shelm train --resume "$dir" --quiet
  else
    shelm train --env MiniGrid-MemoryS7-v0 --agent "$agent" --steps "$STEPS" --seed "$seed" --run-dir "$dir" --quiet \
      --set lm_layers="$LAYERS" --set mem_len=255 --set topk=1 --set torch_threads=1 "${extra[@]}"
  fi
}
export -f run
export OUT STEPS LAYERS
for variant in $VARIANTS; do for seed in $SEEDS; do echo "$variant $seed"; done; done | xargs -P 2 -L 1 bash -c 'run $0 $1'
