"""A compiled event loop for TGI runs (C, through ctypes), checked against the SimPy path.

`tgicore.c` is the loop (SimPy's event order, TgiScheduler, the balancer, StepPricer and
DecodeSegment over arrays, the same double operations in the same order); `layout.py` the
layout of its state arrays, shared with C; `build.py` compiles it once per machine and loads
it; `runner.py` decides whether a run may use it, probes its pricing against the Python
pricers and moves a run's state in and out. The SimPy path is the reference
(tests/simulation/test_compiled_core.py).
"""
