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
python3 - "$RES/provenance.json" <<'PY' 2>/dev/null
import json, sys, datetime, pynvml
pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0)
name = pynvml.nvmlDeviceGetName(h); name = name.decode() if isinstance(name, bytes) else name
drv = pynvml.nvmlSystemGetDriverVersion(); drv = drv.decode() if isinstance(drv, bytes) else drv
json.dump({"gpu_name": name, "driver": drv, "gpu_count": pynvml.nvmlDeviceGetCount(),
           "measured_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")},
          open(sys.argv[1], "w"), indent=1)
PY
START=$(date +%s)
PYTHONUNBUFFERED=1 timeout ${TPCB_TIMEOUT:-300} torchrun --standalone --nproc_per_node "$N" -m llm_energy_sim.calibrate.tpcbhost \
  --out "$RES" --misses > "$RES/tpcbhost.log" 2>&1
echo "tpcbhost exit $? after $(( $(date +%s) - START )) s" >> "$RES/tpcbhost.log"
results_end
grep -v "Loading weights\|Writing model" "$RES/tpcbhost.log" | tail -15
cut -c1-250 "$RES"/*.csv 2>/dev/null
