#!/usr/bin/env bash
# The sweep behind docs/results.md's "Sweep" section: {cnn, lstm, helm, shelm} x {MiniGrid-MemoryS7-v0,
# shelm/RandomMaze-v0} x seeds 1-3, 300k steps each. helm and shelm use SmolLM2-135M cut to its first 2 of 30
# blocks (lm_layers=2), mem_len 255, top-1 word (shelm's retriever: symbolic on MiniGrid, imagenet on RandomMaze).
# helm and shelm join memory and CNN by plain concatenation (fusion=concat), the default when these trials ran.
# Run it again to resume. Then the light part of each trial (config.json, metrics.jsonl) is copied into
# docs/runs/sweep/ and the report is regenerated into docs/results.md from that copy.
set -euo pipefail
OUT=${OUT:-runs/sweep}
shelm sweep --agents cnn,lstm,helm,shelm --envs MiniGrid-MemoryS7-v0,shelm/RandomMaze-v0 --seeds 3 \
  --steps 300000 --set helm:lm_layers=2 --set shelm:lm_layers=2 --set helm:fusion=concat --set shelm:fusion=concat \
  --out "$OUT"
experiments/publish.sh "$OUT" sweep
