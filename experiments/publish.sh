#!/usr/bin/env bash
# Publish a sweep into the docs: copy the light part of each trial (config.json, metrics.jsonl) and sweep.json from
# OUT into docs/runs/NAME, then regenerate NAME's report between its `shelm report NAME` lines in docs/results.md.
#   experiments/publish.sh runs/sweep sweep
set -euo pipefail
OUT=$1
NAME=$2
for run in "$OUT"/*/; do
  [ -f "$run/metrics.jsonl" ] || continue  # a trial killed before its first iteration has nothing to show yet
  mkdir -p "docs/runs/$NAME/$(basename "$run")"
  cp "$run/config.json" "$run/metrics.jsonl" "docs/runs/$NAME/$(basename "$run")/"
done
cp "$OUT/sweep.json" "docs/runs/$NAME/"
shelm report "docs/runs/$NAME" --out docs/results.md --figures docs/figures
