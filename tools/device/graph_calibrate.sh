#!/usr/bin/env bash
# The CUDA-graph calibration stage alone (`sim calibrate --stages graph`) on a lent GPU node.
# Usage: graph_calibrate.sh [BUDGET_MINUTES [RESUME_DIR [EXTRA sim calibrate ARGS]]]
#   BUDGET_MINUTES  measuring budget of the stage (default 4.5); the stage resumes on a rerun
#   RESUME_DIR      raw tables of an earlier call (graph.csv ...) copied back into the tree
# Writes graph.csv, graph_env.json, provenance.json, environment-*.txt, the log and the
# refitted profile h200.json (the shipped h200 plus the *_graph classes) into /tmp/graph,
# tarred into $OUT/graph.tgz every 20 s (a timeout still returns what was measured).
set -uo pipefail
cd "$(dirname "$0")/../.."
BUDGET=${1:-4.5}; RESUME=${2:-}; shift $(( $# < 2 ? $# : 2 ))
. tools/device/results.sh; results_start graph
[ -n "$RESUME" ] && [ -d "$RESUME" ] && cp -r "$RESUME"/. "$RES"/
. tools/device/carried_wheels.sh
STAMP=$(date -u +%H%M%S)
{
  date -u; nvidia-smi; nvidia-smi -q -d CLOCK,POWER | head -60
  python3 -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), 'capability', torch.cuda.get_device_capability())"
  python3 -m pip list 2>/dev/null | grep -i -E "^(torch|transformers|triton|nvidia-ml|flash|vllm|numpy|scipy|pandas) "
} > "$RES/environment-$STAMP.txt" 2>&1
# a point that breaks the CUDA context stops the process (recorded); rerun, resuming, while
# budget is left (at most 3 processes); each hard-stopped 90 s after its budget
LEFT=$(python3 -c "print(float('$BUDGET') * 60)")
for attempt in 1 2 3; do
  START=$SECONDS
  PYTHONUNBUFFERED=1 timeout "$(python3 -c "print(int($LEFT + 90))")" \
    python3 -c "from llm_energy_sim.cli.main import main; main()" calibrate --out "$RES" \
    --stages graph --dtypes bfloat16,float16,fp8 --name h200 \
    --budget-minutes "$(python3 -c "print($LEFT / 60)")" "$@" \
    >> "$RES/calibrate-graph-$STAMP.log" 2>&1
  RC=$?
  echo "calibrate attempt $attempt exit $RC"
  LEFT=$(python3 -c "print($LEFT - ($SECONDS - $START))")
  [ "$RC" = 0 ] && break
  python3 -c "import sys; sys.exit(0 if $LEFT > 30 else 1)" || break
done
results_end
tail -c 4000 "$RES"/calibrate-graph-*.log | tr '\r' '\n' | grep -v "^\s*$" | tail -30
python3 - "$RES/graph.csv" <<'PY'
import sys, pandas as pd
d = pd.read_csv(sys.argv[1])
err = d["error"].notna() & (d["error"].astype(str) != "")
print(f"graph.csv: {len(d)} rows, {int(err.sum())} failed")
print(d[~err].groupby(["kind", "op", "dtype"]).size().to_string())
for r in d[err].head(12).itertuples():
    print("FAILED", r.key, str(r.error)[:160])
PY
