#!/usr/bin/env bash
# Publish a sweep into the docs: copy the light part of each finished trial (config.json, metrics.jsonl) from OUT
# into docs/runs/NAME and merge OUT's sweep.json into the one published there (experiments/publish_finished.py),
# then regenerate NAME's report between its `shelm report NAME` lines in docs/results.md.
#   experiments/publish.sh runs/sweep sweep
set -euo pipefail
OUT=$1
NAME=$2
python experiments/publish_finished.py "$OUT" "$NAME"
shelm report "docs/runs/$NAME" --out docs/results.md --figures docs/figures
