#!/usr/bin/env bash
# The evidence behind docs/results.md's "The papers' memory experiments": MiniGrid-MemoryS11-v0 at 2M steps and
# MiniGrid-KeyCorridorS3R1-v0 at 500k steps, `--preset paper` (the authors' per-task settings), 3 seeds each.
#   experiments/evidence.sh memory-s11      the oracle-memory control, cnn, lstm, and shelm with the full 30-block LM
#   experiments/evidence.sh memory-s11-L2   helm and helmv2 with the LM cut to its first 2 blocks
#   experiments/evidence.sh memory-s11-L2-standardized   shelm at 2 blocks (named when standardized was not yet
#                                           the default fusion; it still sets it, so its trials stay one sweep)
#   experiments/evidence.sh keycorridor     cnn, lstm, and helm, helmv2, shelm with the LM cut to 2 blocks
#   experiments/evidence.sh memory-s11-pixels     shelm at 2 blocks with words from pixels (retriever=regions)
#   experiments/evidence.sh memory-s11-imagenet   shelm at 2 blocks with whole-frame ImageNet words, stopped at 500k
#                                           steps: its words already lose the cue at retrieval (cue decode at chance,
#                                           docs/memory-from-pixels.md), so a 2M curve would add cost, not evidence
#   experiments/evidence.sh memory-s11-oracle     the oracle-memory control at 2M steps under today's fusion
# A full-depth LM trial takes 3-5 hours of one core at 2M steps here, so only shelm (the papers' headline agent)
# runs at full depth; helm and helmv2 run with lm_layers=2, which the papers' authors' code allows and an
# independent rerun found no worse for SHELM (memory-s11-L2-standardized runs shelm at 2 blocks, to check that here).
# The memory agents join their memory and CNN with shelm's default fusion=standardized. With the papers' raw
# concatenation the CNN's features drowned the memory on MemoryS11, and with fusion=normalized SHELM stayed at
# chance for 2M steps (docs/results.md); those trials are kept in docs/runs/evidence/concat/ and
# docs/runs/evidence/normalized/.
# Trials run at low priority, two at a time (WORKERS=N sets how many) with one torch thread each (THREADS=N gives
# each N; a trial may resume with another count, which changes its speed, not what it learns); run the same
# command again to resume. SEEDS=A-B trains only seeds A..B (default 1-3) and AGENTS=a,b only those of the stage's
# agents, e.g. the trials still missing when the finished ones are published in docs/runs/ but the working folder
# runs/ was lost: `AGENTS=lstm SEEDS=3-3 experiments/evidence.sh memory-s11`.
# Every 5 minutes, and at the end, each finished trial's config.json and metrics.jsonl are copied into
# docs/runs/evidence/STAGE/ (experiments/publish_finished.py), so a finished trial survives a lost working tree.
set -euo pipefail
stage=${1:?usage: experiments/evidence.sh memory-s11|memory-s11-L2|memory-s11-L2-standardized|keycorridor|memory-s11-pixels|memory-s11-imagenet|memory-s11-oracle}
out=${OUT_ROOT:-runs/evidence}/$stage
case $stage in
  memory-s11) agents=oracle,cnn,lstm,shelm; sets=() ;;
  memory-s11-L2) agents=helm,helmv2; sets=(lm_layers=2) ;;
  memory-s11-L2-standardized) agents=shelm; sets=(lm_layers=2 fusion=standardized) ;;
  keycorridor) agents=cnn,lstm,helm,helmv2,shelm; sets=(helm:lm_layers=2 helmv2:lm_layers=2 shelm:lm_layers=2) ;;
  memory-s11-pixels) agents=shelm; sets=(lm_layers=2 retriever=regions) ;;
  memory-s11-imagenet) agents=shelm; sets=(lm_layers=2 retriever=imagenet); steps=500000 ;;
  memory-s11-oracle) agents=oracle; sets=() ;;
  *)
    echo "experiments/evidence.sh: unknown stage '$stage'; use memory-s11, memory-s11-L2," \
      "memory-s11-L2-standardized, keycorridor, memory-s11-pixels, memory-s11-imagenet or memory-s11-oracle" >&2
    exit 2 ;;
esac
env_id=MiniGrid-MemoryS11-v0
[ "$stage" = keycorridor ] && env_id=MiniGrid-KeyCorridorS3R1-v0
if [ -n "${AGENTS:-}" ]; then
  IFS=', ' read -r -a picked <<< "$AGENTS"
  for agent in "${picked[@]}"; do
    if [[ ",$agents," != *",$agent,"* ]]; then
      echo "experiments/evidence.sh: AGENTS=$AGENTS: '$agent' is not an agent of stage $stage ($agents)" >&2
      exit 2
    fi
  done
  agents=$(IFS=,; echo "${picked[*]}")
fi
args=(--agents "$agents" --envs "$env_id")
[ -n "${steps:-}" ] && args+=(--steps "$steps")  # else the preset's budget
for setting in ${sets[@]+"${sets[@]}"}; do  # an AGENT:KEY=VALUE setting goes only with its agent
  scope=${setting%%=*}
  if [[ $scope == *:* ]] && [[ ",$agents," != *",${scope%%:*},"* ]]; then continue; fi
  args+=(--set "$setting")
done
[ -n "${THREADS:-}" ] && args+=(--set "torch_threads=$THREADS")
publish() { python experiments/publish_finished.py "$out" "evidence/$stage"; }
(while sleep 300; do publish || true; done) &
poller=$!
trap 'kill $poller 2>/dev/null || true' EXIT
nice -n 19 shelm sweep "${args[@]}" --seeds "${SEEDS:-1-3}" --workers "${WORKERS:-2}" --out "$out"
kill $poller 2>/dev/null || true
wait $poller 2>/dev/null || true  # the poller's copy, if one is under way, ends before the last one starts
publish
