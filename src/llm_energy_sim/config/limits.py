"""Physical bounds of scenario and server fields that are times, rates and spreads, so a
run's times and energies stay far from floating-point overflow (before them an interval
of 1e308 ms crashed the timeline and a rate of 1e-307 req/s wrote infinite energies)."""

from __future__ import annotations

#: the longest time a scenario may give (a gap, a wait, a think time, a trace's arrival
#: time): about 31.7 years
MAX_TIME_S = 1e9
MAX_TIME_MS = MAX_TIME_S * 1e3
#: request rates (req/s): at most one arrival per nanosecond, at least one per MAX_TIME_S
MIN_RATE, MAX_RATE = 1.0 / MAX_TIME_S, 1e9
#: the widest lognormal (log-space sigma): e^10 is a factor of 22,000 per standard deviation
MAX_SIGMA = 10.0
#: the slowest serving host against the calibration host (hardware.host_time_factor)
MAX_HOST_TIME_FACTOR = 1e3
