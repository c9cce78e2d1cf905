"""Live serving engines and clients that `sim replay` drives with a scenario's request trace.

Every engine is an object with `start()`, `async submit(record, prompt_ids)` and `stop()`
(see `base.LiveEngine`); the driver (`driver.replay`) sends each request at its arrival time and
the engine fills in the request's record. torch / transformers / httpx are imported lazily.
"""
