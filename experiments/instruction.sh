#!/usr/bin/env bash
# The instruction in the language memory, measured (docs/results.md, "BabyAI: the instruction in the memory"):
# SHELM on BabyAI-GoToLocalS5N2-v0, where the mission ("go to the red ball") names which of three objects counts,
# trained with the mission read into its LM memory (--set instruction=mission) and without it, 3 seeds each,
# 300k steps, the LM cut to its first 2 blocks to fit this machine. The two sweeps run side by side, one trial
# each at a time, at low priority with one torch thread per trial; run the same command again to resume.
# Every 5 minutes, and at the end, finished trials are copied into docs/runs/instruction/{with,without}/.
#   experiments/instruction.sh
#   shelm report runs/instruction/with runs/instruction/without --out docs/figures/instruction
set -euo pipefail
out=${OUT_ROOT:-runs/instruction}
common=(--agents shelm --envs BabyAI-GoToLocalS5N2-v0 --seeds 3 --steps 300000 --workers 1 --set lm_layers=2)
publish() {
  for variant in with without; do
    if [ -d "$out/$variant" ]; then python experiments/publish_finished.py "$out/$variant" "instruction/$variant"; fi
  done
}
(while sleep 300; do publish || true; done) &
poller=$!
trap 'kill $poller 2>/dev/null || true' EXIT
nice -n 19 shelm sweep "${common[@]}" --set instruction=mission --out "$out/with" &
with=$!
nice -n 19 shelm sweep "${common[@]}" --out "$out/without" &
without=$!
wait $with
wait $without
publish
