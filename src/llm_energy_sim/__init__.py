"""llm-energy-sim: a calibrated discrete-event simulator of LLM serving energy and latency.

The package is layered; each layer imports only from the layers before it in LAYERS, and
the components of one layer never import each other (tests/test_layers.py enforces it):
"""

__version__ = "0.2.0"

#: bottom to top; a tuple holds peers that must not import each other
LAYERS: tuple[tuple[str, ...], ...] = (
    ("config",),  # scenario, model card and profile schemas, dtypes, errors, paths
    ("cost",),  # kernel FLOPs/bytes, roofline cost model, power, idle physics
    ("engine",),  # request, replica, energy ledger, workload/traces
    ("servers",),  # one module per server kind behind a registry, the KV block pool
    ("fastcore",),  # TGI runs on a compiled event loop (C, built on first use), as SimPy runs them
    ("simulation",),  # scenario + profile + card -> results (pure; no I/O)
    ("results",),  # typed summary and request rows, accounting, writers, plots
    ("analysis", "meter"),  # compare, steps, sweep, plan | one NVML energy monitor
    ("hf",),  # HF models from cards, quantization, distributed helpers (torch, lazily)
    ("calibrate", "live"),  # calibration stages and fits | live engines, clients
    ("cli",),  # one module per subcommand; the only place composing calibrate and live
)
