"""A compiled event loop for TGI runs (numba), checked against the SimPy path it mirrors.

`tgicore` is the loop itself (SimPy's event order, TgiScheduler, the balancer, StepPricer and
DecodeSegment rewritten over numpy arrays, the same float operations in the same order);
`runner` decides whether a run may use it and moves a run's state in and out. Nothing here
is imported at start-up: simulation.py imports `runner` only for a TGI run, and `runner`
imports numba only when the run uses the compiled loop.
"""
