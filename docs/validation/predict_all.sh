#!/usr/bin/env bash
# Regenerate the current predictions and comparisons of docs/validation.md on any CPU: the H100
# cases with the shipped `h100-sxm` profile (predicted-s5/, compare-s5/; the lease's host speed
# was not measured then, so 1.0), and every H200 / TP case with the shipped `h200` profile. Each lease's host_time_factor is the one measured on
# that lease (sim replay --hostspeed before and after the replays, or the TP host benchmark run
# in the same call): lease A (h200/, 2026-11-30 06:12 UTC) had none measured, so 1.0.
set -euo pipefail
cd "$(dirname "$0")/../.."
V=docs/validation
one_gpu() {  # DIR FACTOR
  for n in burst fixed50ms fixed300ms fixed500ms uniform sequential; do
    sim run scenarios/validation/$n.yaml --profile h200 --set hardware.gpu=h200 \
      --set hardware.host_time_factor="$2" --out "$1/predicted/$n" --quiet
    sim compare "$1/predicted/$n" "$1/measured/$n" --out "$1/compare/$n" > /dev/null
  done
}
tp() {  # DIR TP FACTOR PREFIX CASES...  (tp4/ keeps each session's predictions: PREFIX s5-)
  local dir=$1 deg=$2 f=$3 pre=$4
  shift 4
  for n in "$@"; do
    m=${n//_/-}
    sim run scenarios/validation/tp${deg}_70b8l_$n.yaml --profile h200 \
      --set hardware.host_time_factor="$f" --out "$dir/predicted-$pre$m" --quiet
    sim compare "$dir/predicted-$pre$m" "$dir/val-tp${deg}-70b8l-$m" --out "$dir/compare-$pre$m" \
      > /dev/null
  done
}
for n in burst fixed50ms fixed300ms fixed500ms uniform sequential; do
  sim run scenarios/validation/$n.yaml --profile h100-sxm --out $V/predicted-s5/$n --quiet
  sim compare $V/predicted-s5/$n $V/measured/$n --out $V/compare-s5/$n > /dev/null
done
sim run scenarios/validation/fixed500ms.yaml --profile h100-sxm --set server.cold_start=true \
  --out $V/predicted-s5-cold/fixed500ms --quiet
sim compare $V/predicted-s5-cold/fixed500ms $V/measured-s2/fixed500ms --out $V/compare-s5-remeasured \
  > /dev/null
one_gpu $V/h200 1.0
one_gpu $V/h200-b 1.58   # before 1.45, after 1.70 (h200-b/host/, measured/*/hostspeed.csv)
one_gpu $V/h200-c 0.99   # before 0.96, after 1.02 (measured/*/summary.json host_speed)
tp $V/tp2 2 1.0 "" sequential fixed2s cb_fixed500ms cb_burst
tp $V/tp2-b 2 1.22 "" sequential fixed2s cb_fixed500ms cb_burst   # tp2-b/host/tphost.csv
tp $V/tp4 4 1.0 s5- sequential fixed2s
