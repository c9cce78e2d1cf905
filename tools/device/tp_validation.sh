#!/usr/bin/env bash
# Tensor-parallel check on a lent multi-GPU node, in one call: (1) the TP host benchmark with
# attention shape misses at this node's TP degree (calibrate/tphost.py --misses, host-fit
# Qwen2.5-7B cut-downs), (2) the live replays of the scenario files given as arguments under
# torchrun, every GPU metered. Usage (N = the node's GPU count):
#   bash tools/device/tp_validation.sh scenarios/validation/tp2_70b8l_sequential.yaml ...
# ENGINE=transformers for continuous batching under TP (transformers-cb scenarios); TPHOST=0
# skips step (1). (TP 4 with the host measured before and after: tools/device/tp4_session.sh.)
# Results go to /tmp/tpval, tarred into $OUT/tpval.tgz every 20 s (a timeout keeps them).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/device/node.sh; node_start tpval
[ "${TPHOST:-1}" = 1 ] || SKIP="${SKIP:-} tphost"
node_step tphost "${TP_TIMEOUT:-150}" 0 \
  torchrun --standalone --nproc_per_node "$N" -m llm_energy_sim.calibrate.tphost --out "$RES/tphost" --misses
node_step replay "${REPLAY_TIMEOUT:-360}" 0 env SIM_TP_MODEL_DIR=/tmp/tpmodels \
  torchrun --standalone --nproc_per_node "$N" -m llm_energy_sim.cli replay "$@" \
  --engine "${ENGINE:-transformers-generate}" --out "$RES/replay" --quiet
results_end
tail -3 "$RES/tphost.log" 2>/dev/null; tail -15 "$RES/replay.log"
cut -c1-250 "$RES"/tphost/*.csv 2>/dev/null
