#!/usr/bin/env bash
# One device call on one H200, in this order (each part tars its results into $OUT as it goes,
# so a call cut by its time limit still returns what was measured):
#   1. the bitsandbytes LLM.int8 and NF4 sequential runs (sequential_cases.sh, N requests each);
#   2. the CUDA-graph calibration: `sim calibrate --stages graph` then `--stages cbhost-graphs`
#      (GRAPH_S and CBG_S seconds of measuring) into $OUT/graphcal.tgz;
#   3. the live CB check with CUDA graphs (graph_validation.sh) for $MODELS x $SCEN.
# Skip a part with SKIP="bnb graphcal live".
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
SKIP=${SKIP:-}
case " $SKIP " in *" bnb "*) ;; *)
  CASES=${CASES:-"llama-3.1-8b:int8 llama-3.1-8b:int4"} N=${N:-8} bash tools/device/sequential_cases.sh ;;
esac
case " $SKIP " in *" graphcal "*) ;; *)
  ( . tools/device/results.sh; results_start graphcal; . tools/device/carried_wheels.sh
    { date -u; nvidia-smi; } > "$RES/environment.txt" 2>&1
    # two invocations, each with its own measuring budget (seconds), into one raw folder
    for spec in "graph:${GRAPH_S:-90}:bfloat16,float16,fp8" "cbhost-graphs:${CBG_S:-60}:bfloat16"; do
      IFS=: read -r stage secs dts <<< "$spec"
      PYTHONUNBUFFERED=1 timeout $(( secs + 120 )) python3 -m llm_energy_sim.cli calibrate \
        --out "$RES" --stages "$stage" --dtypes "$dts" \
        --budget-minutes "$(python3 -c "print($secs/60)")" --name h200 > "$RES/calibrate-$stage.log" 2>&1
      echo "calibrate $stage exit $? at $(date -u +%FT%TZ)" >> "$RES/calibrate-$stage.log"
    done
    results_end ) ;;
esac
case " $SKIP " in *" live "*) ;; *)
  bash tools/device/graph_validation.sh ;;
esac
ls -la "${OUT:-/tmp/out}"
