#!/usr/bin/env bash
# `sim calibrate` on a lent GPU node. Usage: calibrate_gpu.sh STAGES BUDGET_MINUTES [RESUME_DIR [EXTRA ARGS]]
# Resumes from RESUME_DIR (raw tables copied back into the tree after an earlier call);
# results are tarred into $OUT every 20 s, so a timeout still returns what was measured.
set -uo pipefail
cd "$(dirname "$0")/../.."
STAGES=$1; BUDGET=$2; RESUME=${3:-}; shift $(( $# < 3 ? $# : 3 ))
. tools/device/results.sh; results_start calib
[ -n "$RESUME" ] && [ -d "$RESUME" ] && cp -r "$RESUME"/. "$RES"/
. tools/device/carried_wheels.sh
{ date -u; nvidia-smi; } > "$RES/environment-$(date -u +%H%M%S).txt" 2>&1
PYTHONUNBUFFERED=1 python3 -c "from llm_energy_sim.cli.main import main; main()" calibrate --out "$RES" --stages "$STAGES" \
  --budget-minutes "$BUDGET" "$@" > "$RES/calibrate-$(date -u +%H%M%S).log" 2>&1
echo "calibrate exit $?"
results_end
tail -c 3000 "$RES"/calibrate-*.log | tr '\r' '\n' | grep -v "^\s*$" | tail -25
