"""meter layer: the one NVML wrapper (nvml.py), named energy windows over its counters
(monitor.py: every measurement of calibrate and live), and the replay's time series of the
counters (sampler.py)."""
