#!/usr/bin/env bash
# Multi-GPU calibration in one call: `sim calibrate --stages interconnect` (spawns one NCCL
# process per GPU, every GPU metered) and the tensor-parallel host benchmark under torchrun
# (calibrate/tphost.py). Results go to /tmp/mcal, tarred into $OUT/mcal.tgz every 20 s.
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/device/node.sh; node_start mcal
PYTHONUNBUFFERED=1 timeout ${IC_TIMEOUT:-200} python3 -c "from llm_energy_sim.cli.main import main; main()" calibrate \
  --out "$RES" --stages interconnect > "$RES/interconnect.log" 2>&1
echo "interconnect exit $?" >> "$RES/interconnect.log"
PYTHONUNBUFFERED=1 timeout ${TP_TIMEOUT:-240} torchrun --standalone --nproc_per_node "$N" -m llm_energy_sim.calibrate.tphost \
  --out "$RES" > "$RES/tphost.log" 2>&1
echo "tphost exit $?" >> "$RES/tphost.log"
results_end
tail -5 "$RES/interconnect.log"; tail -5 "$RES/tphost.log"; cat "$RES"/tphost.csv 2>/dev/null | cut -c1-300
