#!/usr/bin/env bash
# Issue 20: live tensor parallelism at TP 4 with the host measured in the same call, on the lent
# 4 x H200 node (nvidia-h200-x4), in ONE call of the device's 600 s. In order:
#   hs-before     host-speed pass (tools/device/hostspeed_pass.py: calibrate/hostspeed.py's
#                 one-GPU host-fit run, GPU 0)                       -> host/hostspeed.csv
#   tphost-before TP host benchmark, HF generate, --misses (calibrate/tphost.py, every GPU)
#                                                                    -> host/tphost-before/
#   tpcb-before   TP host benchmark, transformers CB eager, --misses (calibrate/tpcbhost.py)
#                                                                    -> host/tpcb-before/
#   replay-gen    torchrun sim replay, HF generate under TP: tp4_70b8l_sequential (cold, first
#                 in its process), tp4_70b8l_fixed2s                  -> replay/<scenario name>/
#   replay-cb     torchrun sim replay, CB under TP: tp4_70b8l_cb_burst (eager), then
#                 tp4_70b8l_cb_burst_graphs (use_cuda_graph; NCCL_GRAPH_MIXING_SUPPORT=0 as
#                 transformers asks under TP); each with the engine's step log (steps.csv)
#   tphost-after, tpcb-after   the two TP host benchmarks again (no misses; saved shards)
#   hs-after      host-speed pass again                              -> host/hostspeed.csv
# Every GPU is metered (the replays meter gpus_per_replica GPUs, the TP benchmarks' rank 0 all
# of the node's; the host-speed pass GPU 0). environment.txt (date -u, nvidia-smi, topology, CPU,
# torch / transformers), call.txt (this command, its settings, UTC start and end),
# commands.txt (each step's UTC start, timeout, command, exit code and seconds), one log per
# step and host/provenance.json go with the results: /tmp/$NAME tarred into $OUT/$NAME.tgz
# every 20 s (results.sh), so a call cut short still returns what was measured.
#
# Budget (seconds; estimates from the earlier multi-GPU calls in measurements/):
#   step          estimate  timeout  from
#   start            10       -      node.sh: environment, carried wheels
#   hs-before        20      60      one host-fit run "about 10 s" (calibrate/hostspeed.py) + imports
#   tphost-before    55     100      calibration/h200x4/tphost.log: torchrun 18:14:53, rows 18:15:15
#                                    and 18:15:28 (TP 4, shards saved, no misses); --misses adds
#                                    ~6 s a shape (h200x2-b: row 06:06:05, miss 06:06:11)
#   tpcb-before      70     120      h200x2-cb, tp2-b, tp2-c: 75-79 s at TP 2 with both shards
#                                    saved; here tphost saved them (same /tmp/tphost-models)
#   replay-gen      175     230      live/tp4 (TP 4, 2026-11-22): makespans 53 s, 59.5 s, runs
#                                    2 s apart; tp2-b: ~55 s from torchrun to the first request
#                                    (build, save and load of the 70B-width 8-layer model)
#   replay-cb        70     130      tp2-c: 32 s run, next scenario 3 s after (shard reloaded);
#                                    a warmed burst of 60 ran 4.8-7.0 s; graph captures unknown
#   tphost-after     35      60      as tphost-before without saving or misses
#   tpcb-after       50      80      as tpcb-before without saving or misses
#   hs-after         20      40
#   total          ~505     the call's deadline: CALL_S=585 s after the script starts
# Each step's timeout is its budget, cut so that the steps after it keep their estimates
# (node.sh node_step: the replays cannot eat the end-of-call host benchmarks). The graph burst
# runs last in its process: if capture fails or hangs, only it is lost.
#
# Usage (repo root, on the 4-GPU node):   bash tools/device/tp4_session.sh
# Then on any CPU:  python tools/tp4_import.py OUT/tp4s.tgz --lease tp4-b --write
#   SKIP="step ..."  skip steps by name       NAME=tp4s  /tmp/NAME and $OUT/NAME.tgz
#   CALL_S=585       seconds to the deadline  DRY=1      log the commands, run nothing
#   DEVICE=cpu CPU_MODEL=CARD   the same pipeline on CPU: NPROC (default 2) gloo ranks, the
#       card (a small one in SIM_MODELS_DIR, heads divisible by NPROC) for the benchmarks'
#       shapes (CARD:1,CARD:3, float32), the host-speed pass (CARD:2) and the replays (float32,
#       gpus_per_replica NPROC, REQUESTS=3, prompts 20-60, outputs 4-8, a small CB cache),
#       --device cpu --no-meter (tests/tools/test_tp4_session.py)
set -uo pipefail
cd "$(dirname "$0")/../.."
. tools/device/node.sh
node_deadline "${CALL_S:-585}"  # from the call's start: the node's start counts too
NAME=${NAME:-tp4s}
DEVICE=${DEVICE:-cuda}
V=scenarios/validation
GEN_SCEN=("$V/tp4_70b8l_sequential.yaml" "$V/tp4_70b8l_fixed2s.yaml")
CB_SCEN=("$V/tp4_70b8l_cb_burst.yaml" "$V/tp4_70b8l_cb_burst_graphs.yaml")
BENCH_ARGS=() CB_BENCH_ARGS=() HS_ARGS=() REPLAY_ARGS=() CB_ARGS=()
MODEL_DIR=/tmp/tpmodels
if [ "$DEVICE" = cpu ]; then
  : "${CPU_MODEL:?DEVICE=cpu needs CPU_MODEL=<a small card in SIM_MODELS_DIR>}"
  NPROC=${NPROC:-2}
  BENCH_ARGS=(--shapes "$CPU_MODEL:1,$CPU_MODEL:3" --dtype float32 --prompt 16 --new-tokens 4
              --model-root "/tmp/$NAME-models/bench")
  CB_BENCH_ARGS=(--batches 1,4)
  HS_ARGS=(--device cpu --no-meter --shape "$CPU_MODEL:2:float32")
  REPLAY_ARGS=(--device cpu --no-meter --requests "${REQUESTS:-3}" --set "model=$CPU_MODEL"
               --set dtype=float32 --set "hardware.gpus_per_replica=$NPROC"
               --set workload.prompt_tokens.min=20 --set workload.prompt_tokens.max=60
               --set workload.output_tokens.min=4 --set workload.output_tokens.max=8)
  CB_ARGS=(--set server.block_size=32 --set server.num_blocks=64 --set server.max_batch_tokens=256)
  MODEL_DIR=/tmp/$NAME-models/replay
fi
node_start "$NAME"
mkdir -p "$RES/host" "$RES/replay"
{ echo "command: bash tools/device/tp4_session.sh"
  echo "settings: DEVICE=$DEVICE N=$N SKIP=${SKIP:-} CALL_S=${CALL_S:-585} DRY=${DRY:-0} CPU_MODEL=${CPU_MODEL:-}"
  echo "commit: $(git rev-parse HEAD 2>/dev/null || echo 'not a git checkout')"
  echo "start_utc: $(date -u +%FT%TZ)"
} > "$RES/call.txt"
node_provenance "$RES/host/provenance.json"
TR=(torchrun --standalone --nproc_per_node "$N")
if [ "${DRY:-0}" = 1 ]; then  # the commands as node_step would run them, nothing run
  node_step() { echo "$(date -u +%FT%TZ) $1 (dry, budget $2 s, reserve $3 s): ${*:4}" >> "$RES/commands.txt"; }
fi
hs() { node_step "hs-$1" "$2" "$3" python3 tools/device/hostspeed_pass.py "$RES/host/hostspeed.csv" "$1" \
  ${HS_ARGS[@]+"${HS_ARGS[@]}"}; }
bench() {  # bench STEP MODULE BUDGET RESERVE [args]
  local step=$1 module=$2 budget=$3 reserve=$4; shift 4
  node_step "$step" "$budget" "$reserve" "${TR[@]}" -m "llm_energy_sim.calibrate.$module" \
    --out "$RES/host/$step" ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} "$@"
}
replay() {  # replay STEP BUDGET RESERVE ENV... -- SCENARIO... (rank 0 writes replay/<name>/)
  local step=$1 budget=$2 reserve=$3; shift 3
  local envs=(); while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  node_step "$step" "$budget" "$reserve" env SIM_TP_MODEL_DIR="$MODEL_DIR" ${envs[@]+"${envs[@]}"} \
    "${TR[@]}" -m llm_energy_sim.cli replay "$@" --engine transformers --out "$RES/replay" --quiet \
    ${REPLAY_ARGS[@]+"${REPLAY_ARGS[@]}"}
}
# reserves: the estimates of the steps after each one (the header's table)
hs before 60 475
bench tphost-before tphost 100 420 --misses
bench tpcb-before tpcbhost 120 350 --misses ${CB_BENCH_ARGS[@]+"${CB_BENCH_ARGS[@]}"}
replay replay-gen 230 175 -- "${GEN_SCEN[@]}"
replay replay-cb 130 105 NCCL_GRAPH_MIXING_SUPPORT=0 -- "${CB_SCEN[@]}" ${CB_ARGS[@]+"${CB_ARGS[@]}"}
bench tphost-after tphost 60 70
bench tpcb-after tpcbhost 80 20 ${CB_BENCH_ARGS[@]+"${CB_BENCH_ARGS[@]}"}
hs after 40 0
echo "end_utc: $(date -u +%FT%TZ)" >> "$RES/call.txt"
results_end
cat "$RES/commands.txt"
grep -h "host_time_factor" "$RES"/hs-*.log 2>/dev/null
ls "$RES/replay" "$RES/host"
