#!/usr/bin/env bash
# Tensor-parallel check on a lent multi-GPU node, in one call: (1) the TP host benchmark with
# attention shape misses at this node's TP degree (calibrate/tphost.py --misses, host-fit
# Qwen2.5-7B cut-downs), (2) the live replays of the scenario files given as arguments under
# torchrun, every GPU metered. Usage (N = the node's GPU count):
#   bash tools/device/tp_validation.sh scenarios/validation/tp2_70b8l_sequential.yaml ...
# ENGINE=transformers for continuous batching under TP (transformers-cb scenarios); TPHOST=0
# skips step (1).
# Results go to /tmp/tpval, tarred into $OUT/tpval.tgz every 20 s (a timeout keeps them).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/device/node.sh; node_start tpval
if [ "${TPHOST:-1}" = 1 ]; then
  PYTHONUNBUFFERED=1 timeout ${TP_TIMEOUT:-150} torchrun --standalone --nproc_per_node "$N" -m llm_energy_sim.calibrate.tphost \
    --out "$RES/tphost" --misses > "$RES/tphost.log" 2>&1
  echo "tphost exit $?" >> "$RES/tphost.log"
fi
PYTHONUNBUFFERED=1 SIM_TP_MODEL_DIR=/tmp/tpmodels timeout ${REPLAY_TIMEOUT:-360} torchrun --standalone \
  --nproc_per_node "$N" -m llm_energy_sim.cli replay "$@" --engine "${ENGINE:-transformers-generate}" --out "$RES/replay" --quiet \
  > "$RES/replay.log" 2>&1
echo "replay exit $?" >> "$RES/replay.log"
results_end
tail -3 "$RES/tphost.log" 2>/dev/null; tail -15 "$RES/replay.log"
cut -c1-250 "$RES"/tphost/*.csv 2>/dev/null
