#!/usr/bin/env bash
# A diagnostic probe (tools/device/<NAME>.py --out DIR) in one call: results in $OUT/NAME.tgz
# (NAME/: the probe's tables and profiles, probe.log, environment.txt).
# Usage (repo root): bash tools/device/probe.sh NAME [probe args...]
#   e.g. bash tools/device/probe.sh bnb_probe; bash tools/device/probe.sh static_probe
set -uo pipefail
cd "$(dirname "$0")/../.."
NAME=$1; shift
. tools/device/results.sh
results_start "$NAME"
. tools/device/carried_wheels.sh
{ date -u; nvidia-smi; python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; python3 -c "import bitsandbytes as b; print('bitsandbytes', b.__version__)"; } > "$RES/environment.txt" 2>&1
python3 "tools/device/$NAME.py" --out "$RES" "$@" > "$RES/probe.log" 2>&1
echo "probe rc=$?" >> "$RES/probe.log"
results_end
tail -5 "$RES/probe.log"
