#!/usr/bin/env bash
# bitsandbytes live runs on one GPU, in one call: the sequential validation scenario
# (Llama-3.1-8B shape, random weights, HF generate one request at a time, arrivals every 500 ms)
# in int8 (LLM.int8) and int4 (NF4), metered through NVML, each replay bracketed by host-speed
# passes. The bitsandbytes wheel travels in .whl/ (carried_wheels.sh installs it).
# Usage (repo root): N=16 bash tools/device/bnb_runs.sh   -> $OUT/bnb.tgz
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
. tools/device/results.sh
results_start bnb
. tools/device/carried_wheels.sh
{ date -u; nvidia-smi; lscpu | head -20
  python3 -c "import torch, transformers, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'bitsandbytes', bitsandbytes.__version__)"
} > "$RES/environment.txt" 2>&1
N=${N:-16}
for dt in ${DTYPES:-int8 int4}; do
  echo "$(date -u +%FT%TZ) sim replay scenarios/validation/sequential.yaml --engine transformers-generate --set dtype=$dt --set hardware.gpu=h200 --requests $N --hostspeed" >> "$RES/commands.txt"
  PYTHONUNBUFFERED=1 python3 -m llm_energy_sim.cli replay scenarios/validation/sequential.yaml \
    --engine transformers-generate --set dtype="$dt" --set hardware.gpu=h200 --requests "$N" \
    --hostspeed --out "$RES/measured-$dt" --quiet > "$RES/replay-$dt.log" 2>&1
  echo "replay $dt exit code $?" >> "$RES/replay-$dt.log"
done
results_end
