#!/usr/bin/env bash
# The other suites' results in docs/results.md: CNN-PPO, LSTM-PPO and HELM on one Procgen memory game and one
# MiniWorld memory task, 2 seeds.
# HELM uses SmolLM2-135M cut to its first 2 of 30 blocks (lm_layers=2) and fusion=concat, like the MiniGrid sweep.
# The papers trained Procgen for 25M steps and Sign for 500k; STEPS (default 50k) is what a 2-core machine shared
# with the MiniGrid sweep allowed. Run it again to resume. Then the light part of each trial (config.json, metrics.jsonl) goes to
# docs/runs/suites/ and the report into docs/results.md, between its `shelm report suites` lines.
set -euo pipefail
OUT=${OUT:-runs/suites}
STEPS=${STEPS:-50000}
shelm sweep --agents cnn,lstm,helm --envs procgen/maze-memory,MiniWorld-Sign-v0 --seeds 2 --steps "$STEPS" \
  --set helm:lm_layers=2 --set helm:fusion=concat --out "$OUT"
experiments/publish.sh "$OUT" suites
