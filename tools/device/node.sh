# Sourced by the multi-GPU device scripts, from the repository root. `node_start NAME`:
# NCCL without NVLink multicast (the device README's advice for the lent nodes), results
# under /tmp/NAME tarred into $OUT/NAME.tgz every 20 s (results.sh; finish with results_end),
# N = the node's GPU count (NPROC instead where set: a CPU run's gloo ranks), the carried wheels
# installed, and $RES/environment.txt (GPUs, topology, CPU, torch and transformers versions).
node_start() {
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  . tools/device/results.sh
  results_start "$1"
  N=${NPROC:-$(nvidia-smi -L 2>/dev/null | wc -l)}
  . tools/device/carried_wheels.sh
  { date -u; nvidia-smi; nvidia-smi topo -m; lscpu | head -20
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'gpus', torch.cuda.device_count())"
  } > "$RES/environment.txt" 2>&1
}

# `node_provenance FILE`: the GPU name, driver and count (NVML) and the UTC time as JSON, the
# provenance.json of a raw host-benchmark folder (calibrate/fit.py reads gpu_name, driver and
# measured_utc); without NVML (a CPU run) the time and "gpu_count": 0.
node_provenance() {
  python3 - "$1" <<'PY' 2>/dev/null
import datetime, json, sys
out = {"measured_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
try:
    import pynvml
    pynvml.nvmlInit(); h = pynvml.nvmlDeviceGetHandleByIndex(0)
    name = pynvml.nvmlDeviceGetName(h); name = name.decode() if isinstance(name, bytes) else name
    drv = pynvml.nvmlSystemGetDriverVersion(); drv = drv.decode() if isinstance(drv, bytes) else drv
    out = {"gpu_name": name, "driver": drv, "gpu_count": pynvml.nvmlDeviceGetCount(), **out}
except Exception:
    out["gpu_count"] = 0
json.dump(out, open(sys.argv[1], "w"), indent=1)
PY
}

# `node_deadline SECONDS`: the call's end, SECONDS from now (node_step keeps every step inside).
node_deadline() { _NODE_DEADLINE=$(( $(date +%s) + $1 )); }

# `node_step NAME BUDGET RESERVE CMD...`: run CMD (output to $RES/NAME.log) under `timeout`,
# at most BUDGET seconds and never into the last RESERVE seconds before the deadline (kept for
# the steps after it; no deadline set: the budget alone); skipped when under 10 s are left
# before that reserve, or when NAME is in $SKIP. Each step's UTC start, timeout, command,
# exit code (124: timed out) and seconds go to $RES/commands.txt.
node_step() {
  local name=$1 budget=$2 reserve=$3; shift 3
  local log=$RES/$name.log
  case " ${SKIP:-} " in *" $name "*)
    echo "$(date -u +%FT%TZ) $name skipped (SKIP)" >> "$RES/commands.txt"; return 0 ;;
  esac
  local left=$(( ${_NODE_DEADLINE:-$(( $(date +%s) + 100000 ))} - $(date +%s) - reserve ))
  if [ "$left" -lt 10 ]; then
    echo "$(date -u +%FT%TZ) $name skipped: ${left} s left before the reserve" >> "$RES/commands.txt"
    return 0
  fi
  [ "$budget" -lt "$left" ] && left=$budget
  local t0; t0=$(date +%s)
  echo "$(date -u +%FT%TZ) $name (timeout ${left} s): $*" >> "$RES/commands.txt"
  PYTHONUNBUFFERED=1 timeout -k 15 "$left" "$@" > "$log" 2>&1
  local rc=$?
  echo "$name exit $rc after $(( $(date +%s) - t0 )) s at $(date -u +%FT%TZ)" | tee -a "$log" >> "$RES/commands.txt"
  return 0
}
