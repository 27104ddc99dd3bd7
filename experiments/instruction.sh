#!/usr/bin/env bash
# The instruction in the language memory, measured (docs/results.md, "BabyAI: the instruction in the memory"):
# SHELM on BabyAI-PickupDistDebug-v0: five objects in one room, the mission ("pick up the red ball", "pick up a
# key", "pick up a grey object") names which count, and picking up any other ends the episode as a failure (the
# level's strict check), so an agent that cannot read the mission is capped near the chance of picking a match.
# Trained with the mission read into its LM memory (--set instruction=mission) and without it, 3 seeds each,
# 250k steps, the LM cut to its first 2 blocks to fit this machine, memory and CNN joined by today's default
# fusion (standardized). FUSION=concat reruns the first measurement, made when plain concatenation was the
# default. Both write into runs/instruction/ (OUT_ROOT=DIR puts it in DIR/instruction/): today's fusion into
# with-standardized/ and without-standardized/, concat into with/ and without/ (each sweep folder's name names its
# block of the results page and its figures, so the two measurements keep their own). The two sweeps run side by
# side, one trial each at a time, at low priority with one torch thread per trial; run the same command again to
# resume. Every 5 minutes, and at the end, finished trials are copied into docs/runs/instruction/ alike.
#   experiments/instruction.sh
#   shelm report docs/runs/instruction/with-standardized docs/runs/instruction/without-standardized \
#     --out docs/results.md --figures docs/figures --baseline "shelm (symbolic oracle, lm_layers=2)"
set -euo pipefail
fusion=${FUSION:-standardized}
suffix=-standardized
[ "$fusion" = concat ] && suffix=
if [ "$fusion" != standardized ] && [ "$fusion" != concat ]; then
  echo "experiments/instruction.sh: FUSION=$fusion is not one this measurement was made with; use standardized or concat" >&2
  exit 2
fi
out=${OUT_ROOT:-runs}/instruction
common=(--agents shelm --envs BabyAI-PickupDistDebug-v0 --seeds 3 --steps 250000 --workers 1 --set lm_layers=2
  --set fusion=$fusion)
publish() {
  for variant in "with$suffix" "without$suffix"; do
    if [ -d "$out/$variant" ]; then python experiments/publish_finished.py "$out/$variant" "instruction/$variant"; fi
  done
}
(while sleep 300; do publish || true; done) &
poller=$!
trap 'kill $poller 2>/dev/null || true' EXIT
nice -n 19 shelm sweep "${common[@]}" --set instruction=mission --out "$out/with$suffix" &
with=$!
nice -n 19 shelm sweep "${common[@]}" --out "$out/without$suffix" &
without=$!
wait $with
wait $without
publish
