"""Serving engines simulated as SimPy processes."""
