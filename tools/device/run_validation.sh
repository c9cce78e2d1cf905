#!/usr/bin/env bash
# The live validation on the lent H100 (docs/validation.md): the seven scenarios of
# scenarios/validation/ back to back in one process (the 8B model is built once), metered.
# Results are tarred into $OUT every 20 s, so a timeout still returns what was measured.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}
RES=/tmp/val
mkdir -p "$OUT" "$RES"
# pure-Python dependencies the GPU image may lack, from carried wheels (.whl), only if missing
. tools/device/carried_wheels.sh
[ -f models/llama-3.1-8b.yaml ] || export SIM_MODELS_DIR=$PWD/.whl/models
{
  date -u; nvidia-smi; cat /tmp/need.txt
  python3 -c "import torch, transformers, pynvml; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 -c "import flash_attn" 2>&1 | tail -1
} > "$RES/environment.txt" 2>&1
SCEN=${SCEN:-"burst fixed50ms fixed300ms fixed500ms uniform sequential burst_warm"}  # SCEN="..." to run a subset
FILES=$(for s in $SCEN; do printf 'scenarios/validation/%s.yaml ' "$s"; done)
PYTHONUNBUFFERED=1 python3 -c "from llm_energy_sim.cli.main import main; main()" replay $FILES \
  --engine transformers --hostspeed --out "$RES" --quiet > "$RES/replay.log" 2>&1 &
PID=$!
while kill -0 $PID 2>/dev/null; do
  sleep 20
  tar czf "$OUT/val.tgz" -C /tmp val 2>/dev/null
done
wait $PID; echo "replay exit code $?" >> "$RES/replay.log"
tar czf "$OUT/val.tgz" -C /tmp val
tail -20 "$RES/replay.log"
