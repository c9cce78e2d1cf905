"""Power of a GPU between steps: standby after work, then decay to active and deep idle.

idle(t)  = D + (A - D) e^{-t/tau_d}                     (t = time since the last step ended)
P(t)     = idle(t) + f (P_last - idle(t)) e^{-t/tau_s}  (standby tail of the last step's power)
Both integrals are closed form, so a gap of any length costs O(1) and never undercuts D.
"""

from __future__ import annotations

import numpy as np

from llm_energy_sim.config.profile import IdlePower


def gap_energy_per_gpu(idle: IdlePower, p_last: float, t: np.ndarray | float) -> np.ndarray | float:
    """Energy (J) one GPU draws during the first t seconds of a gap after a step at p_last W."""
    D, A = idle.deep_idle_w, idle.active_idle_w
    f, ts, td = idle.standby_fraction, idle.standby_tau_s, idle.deep_decay_tau_s
    p_last = np.maximum(p_last, A)
    tc = 1.0 / (1.0 / ts + 1.0 / td)
    base = D * t + (A - D) * td * (-np.expm1(-np.asarray(t) / td))
    standby = f * (
        (p_last - D) * ts * (-np.expm1(-np.asarray(t) / ts))
        - (A - D) * tc * (-np.expm1(-np.asarray(t) / tc))
    )
    return base + standby
