"""The one NVML wrapper: GPUs by index, their names, energy counters, instant power, clocks.

Every reading of a GPU in the package goes through `Nvml`; no other module imports pynvml.
What the readings are (docs/replay.md, "The meter"): energy is the total-energy counter
(`nvmlDeviceGetTotalEnergyConsumption`, mJ, updated about every 100 ms on the H100, so a
metered window lasts >= 1 s); `nvmlDeviceGetPowerUsage` is a 1 s moving average, so instant
power reads the NVML_FI_DEV_POWER_INSTANT field and falls back to the average only where the
field is refused. NVML indices are taken to be CUDA indices.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from llm_energy_sim.config.errors import UserError


def _str(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


class Nvml:
    """NVML opened for the GPUs with the given indices. Without NVML (no bindings, no driver)
    or for an index this node lacks, a one-line UserError."""

    def __init__(self, indices: Sequence[int]) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
        except Exception as exc:  # ImportError or NVMLError: no GPU metering possible
            raise UserError(
                f"no NVML on this machine ({type(exc).__name__}: {exc}); "
                "metering GPU energy needs an NVIDIA GPU and its driver"
            ) from None
        self._nvml = pynvml
        self.indices = tuple(indices)
        try:
            self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in self.indices]
        except pynvml.NVMLError as exc:
            pynvml.nvmlShutdown()
            raise UserError(
                f"GPU indices {list(self.indices)}: {exc} (this node has "
                f"{pynvml.nvmlDeviceGetCount()} GPUs)"
            ) from None

    def names(self) -> tuple[str, ...]:
        """The product name of each GPU, in index order."""
        return tuple(_str(self._nvml.nvmlDeviceGetName(h)) for h in self._handles)

    def energy_j(self) -> np.ndarray:
        """Each GPU's total-energy counter in J (cumulative since the driver loaded)."""
        n = self._nvml
        return np.array([n.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles]) / 1e3

    def power_w(self) -> np.ndarray:
        """Each GPU's instant power in W (the 1 s average where the instant field is refused)."""
        n = self._nvml
        out = []
        for h in self._handles:
            try:
                v = n.nvmlDeviceGetFieldValues(h, [n.NVML_FI_DEV_POWER_INSTANT])[0]
                out.append(
                    v.value.uiVal / 1e3 if v.nvmlReturn == 0 else n.nvmlDeviceGetPowerUsage(h) / 1e3
                )
            except Exception:  # an older driver or binding without the field
                out.append(n.nvmlDeviceGetPowerUsage(h) / 1e3)
        return np.array(out)

    def state(self) -> dict:
        """Clocks, throttle reasons and temperature of the first GPU (recorded beside a point)."""
        h, n = self._handles[0], self._nvml
        return {
            "sm_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_SM),
            "mem_clock_mhz": n.nvmlDeviceGetClockInfo(h, n.NVML_CLOCK_MEM),
            "throttle_reasons": hex(n.nvmlDeviceGetCurrentClocksThrottleReasons(h)),
            "temperature_c": n.nvmlDeviceGetTemperature(h, n.NVML_TEMPERATURE_GPU),
        }

    def info(self) -> dict:
        """Name, driver, memory and enforced power limit of the first GPU (provenance)."""
        h, n = self._handles[0], self._nvml
        return {
            "gpu_name": _str(n.nvmlDeviceGetName(h)),
            "driver": _str(n.nvmlSystemGetDriverVersion()),
            "memory_bytes": int(n.nvmlDeviceGetMemoryInfo(h).total),
            "power_limit_w": n.nvmlDeviceGetEnforcedPowerLimit(h) / 1e3,
        }

    def close(self) -> None:
        """Release this opening of NVML (nvmlInit/nvmlShutdown are reference counted)."""
        self._nvml.nvmlShutdown()
