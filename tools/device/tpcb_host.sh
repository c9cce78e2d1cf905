#!/usr/bin/env bash
# transformers continuous batching under tensor parallelism, host overhead, on a lent multi-GPU
# node in one call: calibrate/tpcbhost.py --misses on every GPU of the node (host-fit
# Qwen2.5-7B cut-downs at 4 and 16 layers, bf16, batch 1/8/32, plus fresh-vs-cached CB steps),
# every GPU metered by rank 0. Usage:  bash tools/device/tpcb_host.sh
# Results go to /tmp/tpcb (tpcbhost.csv, shapemiss.csv, logs), tarred into $OUT/tpcb.tgz every
# 20 s (a timeout keeps them); fit with llm_energy_sim.calibrate.fit (tpcbhost*.csv -> transformers_cb_tp{N}).
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/device/node.sh; node_start tpcb
node_provenance "$RES/provenance.json"
node_step tpcbhost "${TPCB_TIMEOUT:-300}" 0 \
  torchrun --standalone --nproc_per_node "$N" -m llm_energy_sim.calibrate.tpcbhost --out "$RES" --misses
results_end
grep -v "Loading weights\|Writing model" "$RES/tpcbhost.log" | tail -15
cut -c1-250 "$RES"/*.csv 2>/dev/null
