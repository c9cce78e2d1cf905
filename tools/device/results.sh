# Sourced by the device scripts: results under /tmp/NAME, tarred into $OUT/NAME.tgz every 20 s
# so that a call that runs past its time limit still returns what was measured.
#   results_start NAME   sets OUT (default /tmp/out) and RES=/tmp/NAME, starts the tar loop
#   results_end          stops the loop and writes the final tar
results_start() {
  OUT=${OUT:-/tmp/out}; RES=/tmp/$1; _RESULTS_NAME=$1
  mkdir -p "$OUT" "$RES"
  ( while true; do sleep 20; tar czf "$OUT/$1.tgz" -C /tmp "$1" 2>/dev/null; done ) &
  _RESULTS_TARPID=$!
}
results_end() {
  kill "$_RESULTS_TARPID" 2>/dev/null
  tar czf "$OUT/$_RESULTS_NAME.tgz" -C /tmp "$_RESULTS_NAME"
}
