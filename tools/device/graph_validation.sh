#!/usr/bin/env bash
# Live transformers continuous batching with CUDA graphs on one GPU, in one call: for each model
# of $MODELS, the validation scenarios of $SCEN (scenarios/validation/) replayed with
# server.cuda_graphs=true, and those of $EAGER_SCEN also eager (server.cuda_graphs=false), in the
# same call, for the eager-vs-graphs difference. Every replay is bracketed by host-speed passes.
# Usage (repo root): MODELS="llama-3.1-8b" SCEN="burst_warm fixed50ms" EAGER_SCEN="burst_warm" \
#   bash tools/device/graph_validation.sh
# Results: $OUT/graphs.tgz (graphs/<mode>-<model>/<scenario name>/ = sim replay results dirs)
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
. tools/device/results.sh
results_start graphs
. tools/device/carried_wheels.sh
{ date -u; nvidia-smi; lscpu | head -20
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} > "$RES/environment.txt" 2>&1
replay_mode() {  # replay_mode MODE(graphs|eager) MODEL SCENARIO...
  local mode=$1 model=$2; shift 2
  local flag=true; [ "$mode" = eager ] && flag=false
  local files=(); for s in "$@"; do files+=("scenarios/validation/$s.yaml"); done
  local args=(replay "${files[@]}" --engine transformers --set "model=$model" --set hardware.gpu=h200
              --set "server.cuda_graphs=$flag" --hostspeed --out "$RES/$mode-$model" --quiet)
  echo "$(date -u +%FT%TZ) sim ${args[*]}" >> "$RES/commands.txt"
  PYTHONUNBUFFERED=1 python3 -m llm_energy_sim.cli "${args[@]}" > "$RES/$mode-$model.log" 2>&1
  echo "exit code $? at $(date -u +%FT%TZ)" >> "$RES/$mode-$model.log"
}
for model in ${MODELS:-llama-3.1-8b}; do
  [ -n "${EAGER_SCEN:-}" ] && replay_mode eager "$model" $EAGER_SCEN
  replay_mode graphs "$model" ${SCEN:-burst_warm fixed50ms fixed300ms uniform}
done
results_end
