#!/usr/bin/env bash
# Live HF generate runs on one GPU, in one call: the sequential validation scenario
# (random weights, one request at a time, arrivals every 500 ms, prompts 200-1000, outputs
# 10-100) for each MODEL:DTYPE of $CASES, metered through NVML, every replay bracketed by
# host-speed passes (sim replay --hostspeed). int8 = LLM.int8, int4 = NF4 (bitsandbytes, carried
# in .whl/ and installed by carried_wheels.sh).
# Usage (repo root): CASES="llama-3.1-8b:int8 llama-3.1-8b:int4" N=16 bash tools/device/sequential_cases.sh
# Results: $OUT/seq.tgz (seq/<model>-<dtype>/ = a sim replay results dir; commands.txt; environment.txt)
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
. tools/device/results.sh
results_start seq
. tools/device/carried_wheels.sh
{ date -u; nvidia-smi; lscpu | head -20
  python3 -c "import torch, transformers, bitsandbytes; print('torch', torch.__version__, 'transformers', transformers.__version__, 'bitsandbytes', bitsandbytes.__version__)"
} > "$RES/environment.txt" 2>&1
N=${N:-16}
for case in ${CASES:-llama-3.1-8b:int8 llama-3.1-8b:int4}; do
  model=${case%%:*}; dt=${case##*:}
  args=(scenarios/validation/sequential.yaml --engine transformers-generate --set "model=$model"
        --set "dtype=$dt" --set hardware.gpu=h200 --requests "$N" --hostspeed
        --out "$RES/$model-$dt" --quiet)
  echo "$(date -u +%FT%TZ) sim replay ${args[*]}" >> "$RES/commands.txt"
  PYTHONUNBUFFERED=1 python3 -m llm_energy_sim.cli replay "${args[@]}" > "$RES/$model-$dt.log" 2>&1
  echo "exit code $? at $(date -u +%FT%TZ)" >> "$RES/$model-$dt.log"
done
results_end
