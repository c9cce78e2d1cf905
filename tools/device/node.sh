# Sourced by the multi-GPU device scripts, from the repository root. `node_start NAME`:
# NCCL without NVLink multicast (the device README's advice for the lent nodes), results
# under /tmp/NAME tarred into $OUT/NAME.tgz every 20 s (results.sh; finish with results_end),
# N = the node's GPU count, the carried wheels installed, and $RES/environment.txt (GPUs,
# topology, CPU, torch and transformers versions).
node_start() {
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
  . tools/device/results.sh
  results_start "$1"
  N=$(nvidia-smi -L | wc -l)
  . tools/device/carried_wheels.sh
  { date -u; nvidia-smi; nvidia-smi topo -m; lscpu | head -20
    python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'gpus', torch.cuda.device_count())"
  } > "$RES/environment.txt" 2>&1
}
