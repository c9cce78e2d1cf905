#!/usr/bin/env bash
# One device call on one H200 for the CUDA-graph regime of transformers continuous batching:
#   1. `sim calibrate --stages graph` resumed on the committed graph table
#      (measurements/calibration/h200-graphs/graph.csv): only the points it lacks run (the
#      paged|sdpa attention, attn_packed) -> $OUT/graphcal.tgz (graphcal/graph.csv = old + new rows);
#   2. the graph-capture probe (calibrate/graphcapture.py) -> $OUT/capture.tgz;
#   3. live CB with CUDA graphs (graph_validation.sh) for $MODELS x $SCEN, eager for $EAGER_SCEN.
# Skip a part with SKIP="graphcal capture live". Usage (repo root):
#   MODELS=qwen2.5-7b SCEN="burst_warm fixed50ms fixed300ms uniform" bash tools/device/graph_regime.sh
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
SKIP=${SKIP:-}
case " $SKIP " in *" graphcal "*) ;; *)
  ( . tools/device/results.sh; results_start graphcal; . tools/device/carried_wheels.sh
    { date -u; nvidia-smi; } > "$RES/environment.txt" 2>&1
    cp measurements/calibration/h200-graphs/graph.csv "$RES/graph.csv"
    PYTHONUNBUFFERED=1 timeout $(( ${GRAPH_S:-90} + 120 )) python3 -m llm_energy_sim.cli calibrate \
      --out "$RES" --stages graph --dtypes bfloat16 \
      --budget-minutes "$(python3 -c "print(${GRAPH_S:-90}/60)")" --name h200 > "$RES/calibrate-graph.log" 2>&1
    echo "calibrate graph exit $? at $(date -u +%FT%TZ)" >> "$RES/calibrate-graph.log"
    results_end ) ;;
esac
case " $SKIP " in *" capture "*) ;; *)
  ( . tools/device/results.sh; results_start capture; . tools/device/carried_wheels.sh
    { date -u; nvidia-smi; python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"; } > "$RES/environment.txt" 2>&1
    echo "$(date -u +%FT%TZ) measure_captures()" > "$RES/commands.txt"
    PYTHONUNBUFFERED=1 timeout 240 python3 -c "
from pathlib import Path
from llm_energy_sim.calibrate.graphcapture import measure_captures
measure_captures(out_csv=Path('$RES/graph_capture.csv'))" > "$RES/capture.log" 2>&1
    echo "exit $? at $(date -u +%FT%TZ)" >> "$RES/capture.log"
    results_end ) ;;
esac
case " $SKIP " in *" live "*) ;; *)
  bash tools/device/graph_validation.sh ;;
esac
ls -la "${OUT:-/tmp/out}"
