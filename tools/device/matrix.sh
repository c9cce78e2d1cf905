#!/usr/bin/env bash
# The H200 validation matrix (issue 17) in one call: every case of $CASES_FILE (default
# tools/device/matrix_cases.txt; one `model dtype server scenario requests` a line) replayed live
# on the built-in engine of its server kind (sim replay --engine transformers: HF generate one at
# a time, HF generate on static batches, transformers continuous batching), hardware.gpu h200,
# metered through NVML, each case bracketed by host-speed passes run in the engine's own process
# (sim replay --hostspeed: a pass before the first case and one after each, the pass after a
# case being the one before the next). All cases run in one process, in file order, so each
# model is built once per run of consecutive cases with the same model and dtype. If that process
# dies (a case that fails, e.g. out of memory), the first case without results is recorded in
# failed.txt and skipped, and a fresh process goes on with the cases after it.
# int8 = LLM.int8, int4 = NF4 (bitsandbytes, carried in .whl/ and installed by carried_wheels.sh).
#
# Usage (repo root):  bash tools/device/matrix.sh
#   CASES_FILE=FILE   another cases file          ONLY=REGEX   only the case lines it matches
#   DRY=1             write and check the case scenarios, print the command, run nothing (any CPU)
#   DEVICE=cpu        --device cpu --no-meter (a test of the script on CPU); HOSTSPEED=0 drops
#                     --hostspeed; NAME=matrix names /tmp/NAME and $OUT/NAME.tgz
# Results: $OUT/NAME.tgz = NAME/<model>-<dtype>-<scenario>/ (a sim replay results dir each, with
# hostspeed.csv), NAME/scenarios/<case>.yaml (the exact scenario replayed), commands.txt,
# replay-<n>.log, failed.txt (if any), environment.txt. Predictions: sim validate matrix DIR.
set -uo pipefail
cd "$(dirname "$0")/../.."
export NCCL_NVLS_ENABLE=0
NAME=${NAME:-matrix}
CASES_FILE=${CASES_FILE:-tools/device/matrix_cases.txt}
ONLY=${ONLY:-}
DEVICE=${DEVICE:-cuda}
. tools/device/results.sh
results_start "$NAME"
. tools/device/carried_wheels.sh
only_args=(); [ -n "$ONLY" ] && only_args=(--only "$ONLY")
if ! python3 tools/device/matrix_scenarios.py "$CASES_FILE" "$RES/scenarios" ${only_args[@]+"${only_args[@]}"} \
    > "$RES/scenarios.txt" 2> "$RES/scenarios.err"; then
  cat "$RES/scenarios.err"; results_end; exit 1
fi
mapfile -t FILES < "$RES/scenarios.txt"
flags=(--engine transformers)
[ "$DEVICE" = cpu ] && flags+=(--device cpu --no-meter)
[ "${HOSTSPEED:-1}" = 1 ] && flags+=(--hostspeed)
if [ "${DRY:-0}" = 1 ]; then
  echo "${#FILES[@]} cases:"
  printf '  %s\n' "${FILES[@]}"
  echo "python3 -m llm_energy_sim.cli replay ${FILES[*]} ${flags[*]} --out $RES"
  results_end; exit 0
fi
{ date -u; nvidia-smi; lscpu | head -20
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
  python3 -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)"
} > "$RES/environment.txt" 2>&1
case_of() { basename "$1" .yaml; }
attempt=0
while [ $attempt -le ${#FILES[@]} ]; do  # each process measures a case or skips a failed one
  todo=()
  for f in "${FILES[@]}"; do
    c=$(case_of "$f")
    [ -f "$RES/$c/summary.json" ] && continue
    grep -qx "$c" "$RES/failed.txt" 2>/dev/null && continue
    todo+=("$f")
  done
  [ ${#todo[@]} -eq 0 ] && break
  attempt=$((attempt + 1))
  log=$RES/replay-$attempt.log
  # several scenarios go to --out/<scenario name>; a single one to --out itself
  out=$RES; [ ${#todo[@]} -eq 1 ] && out=$RES/$(case_of "${todo[0]}")
  echo "$(date -u +%FT%TZ) sim replay ${todo[*]} ${flags[*]} --out $out" >> "$RES/commands.txt"
  PYTHONUNBUFFERED=1 python3 -m llm_energy_sim.cli replay "${todo[@]}" "${flags[@]}" --out "$out" > "$log" 2>&1
  rc=$?
  echo "exit code $rc at $(date -u +%FT%TZ)" >> "$log"
  [ $rc -eq 0 ] && continue  # a finished process: the loop finds nothing left
  for f in "${todo[@]}"; do  # the first case without results is the one that failed
    c=$(case_of "$f")
    if [ ! -f "$RES/$c/summary.json" ]; then
      echo "$c" >> "$RES/failed.txt"
      echo "$(date -u +%FT%TZ) $c failed (exit code $rc, $log); the cases after it go on" >> "$RES/commands.txt"
      break
    fi
  done
done
cat "$RES/commands.txt"
python3 - "$RES" "${FILES[@]}" <<'PY' || true
import json, sys
from pathlib import Path
res = Path(sys.argv[1])
for f in sys.argv[2:]:  # one line per measured case: requests, makespan, energy, host speed
    d = res / Path(f).stem
    if (d / "summary.json").is_file():
        s = json.loads((d / "summary.json").read_text())
        hs = (s.get("host_speed") or {}).get("host_time_factor")
        wh = s["energy"].get("per_request_wh")
        print(f"{d.name:42s} {s['requests']['completed']}/{s['requests']['total']} ok "
              f"{s['makespan_s']:7.1f} s {'-' if wh is None else format(wh, '.4g')} Wh/req "
              f"host {'-' if hs is None else format(hs, '.2f')}")
PY
[ -f "$RES/failed.txt" ] && { echo "failed cases:"; cat "$RES/failed.txt"; }
done_n=$(for f in "${FILES[@]}"; do [ -f "$RES/$(case_of "$f")/summary.json" ] && echo; done | wc -l)
echo "$done_n of ${#FILES[@]} cases measured; results in $OUT/$NAME.tgz"
results_end
