"""GPU calibration: NVML metering, microbenchmarks, cost-model fitting, live engines.

torch / transformers / bitsandbytes / pynvml are imported lazily inside the functions that
need them, so `import calibrate` works on a CPU-only machine.
"""
