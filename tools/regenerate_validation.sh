#!/usr/bin/env bash
# Regenerate every prediction, comparison, step check and post hoc re-simulation of the live
# validation (docs/journal/validation.md) from the measured runs in measurements/live/, on any
# CPU, into results/validation/ (ignored by git; a first argument names another folder).
#
#   bash tools/regenerate_validation.sh [OUT]
#
# Layout of OUT (as the journal names it): LEASE/{predicted,compare,steps,posthoc}/CASE for the
# one-GPU H200 leases, LEASE/{predicted,compare,steps,posthoc}-CASE for the TP leases,
# predicted-s5/ compare-s5/ steps-s5/ predicted-s5-cold/ compare-s5-remeasured/ for the H100.
# The H100 cases run with the shipped `h100-sxm` profile, every H200 / TP case with `h200`.
# Each lease's hardware.host_time_factor comes from the host runs measured on that lease
# (`sim run --host-speed`: sim replay --hostspeed's runs before and after the replays, or the
# TP host benchmarks run in the same call); lease A (h200/, 2026-11-30 06:12 UTC), the H100
# lease, the first TP 2 lease (tp2/) and the TP 4 lease had none measured, so they run at 1.0,
# the calibration host's speed, given explicitly ($AT_1): without a factor, sim run takes the
# profile's default, the median of the serving-host speeds it carries (docs/host-speed.md),
# and the tables of docs/accuracy.md for these runs are at 1.0 (measurements/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
L=measurements/live
V=${1:-results/validation}
mkdir -p "$V"

# `sim run --host-speed FILE` reads a host table given as a file as CSV (a results directory's
# tables it reads as Parquet): the committed Parquet host tables are written out as CSV under
# $V/host-tables/ (same rows, same file name) and passed from there.
host_csv() {  # PARQUET_TABLE -> prints the CSV copy's path
  local out=$V/host-tables/${1#"$L"/}
  out=${out%.parquet}.csv
  mkdir -p "$(dirname "$out")"
  python3 -c "import sys, pandas as pd; pd.read_parquet(sys.argv[1]).to_csv(sys.argv[2], index=False)" \
    "$1" "$out"
  echo "$out"
}
B_BEFORE=$(host_csv $L/h200-b/host/hostspeed-before.parquet)
TPHOST_B=$(host_csv $L/tp2-b/host/tphost.parquet)
TPCBHOST_B=$(host_csv $L/tp2-b/host/tpcbhost.parquet)
TPCBHOST_C=$(host_csv $L/tp2-c/host/tpcbhost.parquet)

AT_1="--set hardware.host_time_factor=1.0"  # the runs whose host speed was not measured
CASES="burst fixed50ms fixed300ms fixed500ms uniform sequential"
one_gpu() {  # LEASE [--host-speed TABLE ...]   (the cases: $CASES; @CASE@ in an argument: the case)
  local lease=$1
  shift
  for n in $CASES; do
    sim run scenarios/validation/$n.yaml --profile h200 --set hardware.gpu=h200 "${@//@CASE@/$n}" \
      --out "$V/$lease/predicted/$n" --quiet
    sim compare "$V/$lease/predicted/$n" "$L/$lease/$n" --out "$V/$lease/compare/$n" > /dev/null
  done
}

tp() {  # LEASE TP PREFIX CASE [--host-speed TABLE]   (tp4/ keeps each session's: PREFIX s5-)
  local lease=$1 deg=$2 pre=$3 n=$4
  shift 4
  local m=${n//_/-}
  sim run scenarios/validation/tp${deg}_70b8l_$n.yaml --profile h200 "$@" \
    --out "$V/$lease/predicted-$pre$m" --quiet
  sim compare "$V/$lease/predicted-$pre$m" "$L/$lease/val-tp${deg}-70b8l-$m" \
    --out "$V/$lease/compare-$pre$m" > /dev/null
}

for n in burst fixed50ms fixed300ms fixed500ms uniform sequential; do
  sim run scenarios/validation/$n.yaml --profile h100-sxm $AT_1 --out $V/predicted-s5/$n --quiet
  sim compare $V/predicted-s5/$n $L/h100/$n --out $V/compare-s5/$n > /dev/null
done
sim run scenarios/validation/fixed500ms.yaml --profile h100-sxm $AT_1 --set server.cold_start=true \
  --out $V/predicted-s5-cold/fixed500ms --quiet
sim compare $V/predicted-s5-cold/fixed500ms $L/h100-s2/fixed500ms \
  --out $V/compare-s5-remeasured > /dev/null

one_gpu h200 $AT_1
# lease B: the host run before the replays (the first call on that lease) and the one after
one_gpu h200-b --host-speed $B_BEFORE --host-speed $L/h200-b/burst
one_gpu h200-c --host-speed $L/h200-c/burst  # its hostspeed table: the before and after rows
# lease D (sixth session) also replayed the burst on a warmed-up engine (burst_warm)
CASES="$CASES burst_warm" one_gpu h200-d --host-speed $L/h200-d/burst
# lease E (sixth session): sim replay --hostspeed bracketed every case with its own two passes
CASES="$CASES burst_warm" one_gpu h200-e --host-speed "$L/h200-e/@CASE@"
# lease F: five cases (burst_warm first, in a fresh process), bracketed the same way
CASES="burst_warm fixed50ms fixed300ms fixed500ms uniform" \
  one_gpu h200-f --host-speed "$L/h200-f/@CASE@"
# lease G (seventh session): the full-budget warm-up first in a fresh process; engine step logs
CASES="burst_warm fixed50ms fixed300ms fixed500ms uniform sequential" \
  one_gpu h200-g --host-speed "$L/h200-g/@CASE@"
# lease H: all seven, the cold burst first in a fresh process; its host jumped 0.96 <-> 1.80
CASES="$CASES burst_warm" one_gpu h200-h --host-speed "$L/h200-h/@CASE@"
# lease I: the same seven, a slow host (1.15-1.95)
CASES="$CASES burst_warm" one_gpu h200-i --host-speed "$L/h200-i/@CASE@"

for n in sequential fixed2s cb_fixed500ms cb_burst; do
  tp tp2 2 "" $n $AT_1
done
for n in sequential fixed2s; do
  tp tp2-b 2 "" $n --host-speed $TPHOST_B  # HF generate under TP 2
  tp tp4 4 s5- $n $AT_1
done
for n in cb_fixed500ms cb_burst; do
  tp tp2-b 2 "" $n --host-speed $TPCBHOST_B  # CB under TP 2
done
for n in cb_fixed500ms cb_burst; do
  tp tp2-c 2 "" $n --host-speed $TPCBHOST_C  # seventh session: step logs
done

# The live runs' own steps costed by the model (`sim steps`): the CB engine's step log
# (steps table, leases G and H, TP 2 lease C) or HF generate's token times (sequential, TP).
# With the CB step log, the simulated steps (`sim run --step-log`, same options) are also set
# beside the engine's, step by step (steps_check.json's "schedule").
steps() {  # SCENARIO MEASURED OUT [options of both sim run and sim steps]
  if [ -f "$2/steps.parquet" ] || [ -f "$2/steps.csv" ]; then
    local tmp
    tmp=/tmp/sim-steps/${3//\//_}  # a fixed path: steps_check.json does not name it
    sim run "$1" "${@:4}" --step-log --out "$tmp" --quiet
    sim steps "$1" "$2" --out "$3" --predicted "$tmp" "${@:4}" > /dev/null
    rm -rf "$tmp"
  else
    sim steps "$1" "$2" --out "$3" "${@:4}" > /dev/null
  fi
}
# Post hoc, not a prediction: the case re-simulated at the host speed its engine saw
# (steps_check.json's host_time_factor_seen_by_engine), which leaves the error that is not
# the host's. OUT gets the comparison only (compare.csv/json; the prediction is rerun here).
posthoc() {  # SCENARIO MEASURED STEPS_DIR OUT [sim run options]
  local f tmp
  f=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['host_time_factor_seen_by_engine'])" "$3/steps_check.json")
  tmp=/tmp/sim-posthoc/${4//\//_}  # a fixed path: compare.json names it
  sim run "$1" --set hardware.host_time_factor="$f" "${@:5}" --out "$tmp" --quiet
  sim compare "$tmp" "$2" --out "$4" --no-plot > /dev/null
  rm -rf "$tmp"
}
for lease in h200-g h200-h h200-i; do
  for n in burst burst_warm fixed50ms fixed300ms fixed500ms uniform sequential; do
    [ -d $L/$lease/$n ] || continue
    steps scenarios/validation/$n.yaml $L/$lease/$n $V/$lease/steps/$n \
      --profile h200 --set hardware.gpu=h200 --host-speed $L/$lease/$n
    posthoc scenarios/validation/$n.yaml $L/$lease/$n $V/$lease/steps/$n \
      $V/$lease/posthoc/$n --profile h200 --set hardware.gpu=h200
  done
done
steps scenarios/validation/sequential.yaml $L/h100/sequential $V/steps-s5/sequential \
  --profile h100-sxm $AT_1
for n in cb_fixed500ms cb_burst; do
  m=${n//_/-}
  steps scenarios/validation/tp2_70b8l_$n.yaml $L/tp2-c/val-tp2-70b8l-$m $V/tp2-c/steps-$m \
    --profile h200 --host-speed $TPCBHOST_C
  posthoc scenarios/validation/tp2_70b8l_$n.yaml $L/tp2-c/val-tp2-70b8l-$m $V/tp2-c/steps-$m \
    $V/tp2-c/posthoc-$m --profile h200
done
for n in sequential fixed2s; do
  steps scenarios/validation/tp2_70b8l_$n.yaml $L/tp2-b/val-tp2-70b8l-$n $V/tp2-b/steps-$n \
    --profile h200 --host-speed $TPHOST_B
  steps scenarios/validation/tp4_70b8l_$n.yaml $L/tp4/val-tp4-70b8l-$n $V/tp4/steps-$n \
    --profile h200 $AT_1
  posthoc scenarios/validation/tp4_70b8l_$n.yaml $L/tp4/val-tp4-70b8l-$n $V/tp4/steps-$n \
    $V/tp4/posthoc-$n --profile h200
done
echo "regenerated into $V"
