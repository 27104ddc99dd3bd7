#!/usr/bin/env bash
# The instruction in the language memory, measured (docs/results.md, "BabyAI: the instruction in the memory"):
# SHELM trained with the episode's mission read into its LM memory (--set instruction=mission) and without it,
# 3 seeds each, 250k steps, the LM cut to its first 2 blocks to fit this machine. Two levels (LEVEL=...), both
# failing an episode whose agent picks up an object the mission does not name, so an agent that cannot read the
# mission is capped near the chance that what it picks fits (experiments/instruction_ceiling.py):
# - LEVEL=pickupdist (default): BabyAI-PickupDistDebug-v0, five objects in a 7x7 room, the mission naming the
#   target by its type, its colour or both ("pick up the red ball", "pick up a key", "pick up a grey object").
# - LEVEL=fetch: MiniGrid-Fetch-5x5-N2-v0, two objects (keys and balls) in a 3x3 room, the mission naming the target
#   by colour and type ("fetch a red ball"): the instruction matters from the first step, and the room is small
#   enough that a 250k budget learns to pick up (the level for when 250k steps of PickupDistDebug have not taught the
#   policy even the blind strategy).
# Memory and CNN joined by today's default fusion (standardized); FUSION=concat reruns the first measurement of
# PickupDistDebug, made when plain concatenation was the default. Both write into runs/instruction/
# (OUT_ROOT=DIR puts it in DIR/instruction/): PickupDistDebug under today's fusion into with-standardized/ and
# without-standardized/, under concat into with/ and without/, Fetch into with-fetch/ and without-fetch/ (each sweep
# folder's name names its block of the results page and its figures, so the measurements keep their own). The two
# sweeps run side by side, one trial each at a time (SEQUENTIAL=1: one after the other, on one core), at low priority
# with one torch thread per trial; run the same command again to resume. Every 5 minutes, and at the end, finished
# trials are copied into docs/runs/instruction/ alike.
#   experiments/instruction.sh
#   LEVEL=fetch experiments/instruction.sh
#   shelm report docs/runs/instruction/with-standardized docs/runs/instruction/without-standardized \
#     --out docs/results.md --figures docs/figures --baseline "shelm (symbolic oracle, lm_layers=2)"
set -euo pipefail
fusion=${FUSION:-standardized}
level=${LEVEL:-pickupdist}
if [ "$fusion" != standardized ] && [ "$fusion" != concat ]; then
  echo "experiments/instruction.sh: FUSION=$fusion is not one this measurement was made with; use standardized or concat" >&2
  exit 2
fi
case $level in
  pickupdist) env_id=BabyAI-PickupDistDebug-v0; suffix=-standardized; [ "$fusion" = concat ] && suffix= ;;
  fetch)
    env_id=MiniGrid-Fetch-5x5-N2-v0; suffix=-fetch
    if [ "$fusion" = concat ]; then
      echo "experiments/instruction.sh: FUSION=concat was measured on LEVEL=pickupdist only; leave FUSION unset for LEVEL=fetch" >&2
      exit 2
    fi ;;
  *)
    echo "experiments/instruction.sh: LEVEL=$level is not a level of this measurement; use pickupdist or fetch" >&2
    exit 2 ;;
esac
out=${OUT_ROOT:-runs}/instruction
common=(--agents shelm --envs "$env_id" --seeds 3 --steps 250000 --workers 1 --set lm_layers=2 --set fusion=$fusion)
publish() {
  for variant in "with$suffix" "without$suffix"; do
    if [ -d "$out/$variant" ]; then python experiments/publish_finished.py "$out/$variant" "instruction/$variant"; fi
  done
}
(while sleep 300; do publish || true; done) &
poller=$!
trap 'kill $poller 2>/dev/null || true' EXIT
sweep() { nice -n 19 shelm sweep "${common[@]}" "$@"; }
if [ -n "${SEQUENTIAL:-}" ]; then
  sweep --set instruction=mission --out "$out/with$suffix"
  sweep --out "$out/without$suffix"
else
  sweep --set instruction=mission --out "$out/with$suffix" &
  with=$!
  sweep --out "$out/without$suffix" &
  without=$!
  wait $with
  wait $without
fi
publish
