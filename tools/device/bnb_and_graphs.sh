#!/usr/bin/env bash
# One device call: the bitsandbytes int8 and NF4 sequential runs (sequential_cases.sh), then the
# CUDA-graph continuous-batching check (graph_validation.sh). Both tarballs land in $OUT.
cd "$(dirname "$0")/../.."
CASES=${CASES:-"llama-3.1-8b:int8 llama-3.1-8b:int4"} N=${N:-16} bash tools/device/sequential_cases.sh
bash tools/device/graph_validation.sh
