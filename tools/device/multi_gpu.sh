#!/usr/bin/env bash
# Issue 5 on the lent 4 x H200 node, in one call: (1) NCCL all-reduce latency/energy for 2 and
# 4 GPUs (python -m llm_energy_sim.calibrate.interconnect), (2) the live tensor-parallel runs of
# scenarios/validation/tp4_70b8l_*.yaml through `sim replay` under torchrun, all 4 GPUs metered.
# Results are tarred into $OUT every 20 s, so a timeout still returns what was measured.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/device/node.sh; node_start mgpu
PYTHONUNBUFFERED=1 timeout 200 python3 -m llm_energy_sim.calibrate.interconnect --out "$RES/interconnect" > "$RES/interconnect.log" 2>&1
echo "interconnect exit $?" >> "$RES/interconnect.log"
PYTHONUNBUFFERED=1 SIM_TP_MODEL_DIR=/tmp/tpmodels timeout 420 torchrun --nproc_per_node 4 -m llm_energy_sim.cli replay \
  scenarios/validation/tp4_70b8l_sequential.yaml scenarios/validation/tp4_70b8l_fixed2s.yaml \
  --engine transformers-generate --out "$RES/tp" --quiet > "$RES/tp.log" 2>&1
echo "tp replay exit $?" >> "$RES/tp.log"
results_end
tail -5 "$RES/interconnect.log"; tail -15 "$RES/tp.log"
