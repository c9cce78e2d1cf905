#!/usr/bin/env bash
# The bitsandbytes step probe (tools/device/bnb_probe.py) in one call: results in $OUT/bnbprobe.tgz
# (bnbprobe/: steps.csv, builds.csv, hostspeed.csv, profile-*.txt, probe.log, environment.txt).
# Usage (repo root): bash tools/device/bnb_probe.sh   [CASES=model:dtype[:layers],...]
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/device/results.sh
results_start bnbprobe
. tools/device/carried_wheels.sh
{ date -u; nvidia-smi; python3 -c "import torch, transformers, bitsandbytes as b; print('torch', torch.__version__, 'transformers', transformers.__version__, 'bitsandbytes', b.__version__)"; } > "$RES/environment.txt" 2>&1
python3 tools/device/bnb_probe.py --out "$RES" ${CASES:+--cases "$CASES"} > "$RES/probe.log" 2>&1
echo "probe rc=$?" >> "$RES/probe.log"
results_end
tail -5 "$RES/probe.log"
