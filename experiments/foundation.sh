#!/usr/bin/env bash
# Learning curves of the paper baselines (docs/results.md, "Foundation"): CNN-PPO and LSTM-PPO on
# MiniGrid-MemoryS7-v0 and shelm/RandomMaze-v0, 300k steps, 2 seeds each. Two runs at a time, one torch
# thread each (2 cores). Runs resume if restarted. Then the figure and table:
#   shelm plot runs/foundation/* --out docs/figures/foundation.png
set -euo pipefail
STEPS=${STEPS:-300000}
OUT=${OUT:-runs/foundation}
mkdir -p "$OUT"
jobs=()
for env in MiniGrid-MemoryS7-v0 shelm/RandomMaze-v0; do
  for agent in cnn lstm; do
    for seed in 1 2; do
      jobs+=("$env $agent $seed")
    done
  done
done
run() {
  local env=$1 agent=$2 seed=$3
  local dir="$OUT/${env//\//_}__${agent}__s${seed}"
  if [ -f "$dir/config.json" ]; then
    shelm train --resume "$dir" --quiet
  else
    shelm train --env "$env" --agent "$agent" --steps "$STEPS" --seed "$seed" --run-dir "$dir" --quiet \
      --set torch_threads=1
  fi
}
export -f run
export OUT STEPS
printf '%s\n' "${jobs[@]}" | xargs -P 2 -L 1 bash -c 'run $0 $1 $2'
