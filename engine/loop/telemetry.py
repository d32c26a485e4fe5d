"""System readings (RSS, CPU, GPU util/temp/power) sampled off the training thread."""

from __future__ import annotations

import threading
from typing import Any

import torch


class SystemSampler:
    """Reads psutil and NVML at most `hz` times a second in a daemon thread."""

    def __init__(self, device: torch.device, hz: float = 2.0):
        self.device = device
        self.period = 1.0 / hz
        self.latest: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml = None
        self._proc = None

    def start(self) -> None:
        try:
            import psutil
            self._proc = psutil.Process()
            self._proc.cpu_percent(None)  # the first reading primes the counter
        except Exception:  # noqa: BLE001 - missing psutil just means fewer readings
            self._proc = None
        if self.device.type == "cuda":
            try:
                import pynvml
                pynvml.nvmlInit()
                idx = self.device.index if self.device.index is not None else torch.cuda.current_device()
                self._nvml = (pynvml, pynvml.nvmlDeviceGetHandleByIndex(idx))
            except Exception:  # noqa: BLE001 - no NVML: show torch's counters only
                self._nvml = None
        self._thread = threading.Thread(target=self._loop, name="danlu-telemetry", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            self.latest = self.read()

    def read(self) -> dict[str, Any]:
        out: dict[str, float] = {}
        if self._proc is not None:
            try:
                out["rss_mb"] = self._proc.memory_info().rss / 2**20
                out["cpu_percent"] = self._proc.cpu_percent(None)
            except Exception:  # noqa: BLE001
                pass
        if self._nvml is not None:
            nv, h = self._nvml
            for key, fn in (("gpu_util", lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu),
                            ("gpu_temp_c", lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)),
                            ("gpu_power_w", lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0)):
                try:
                    out[key] = float(fn())
                except Exception:  # noqa: BLE001 - a reading the card does not offer
                    pass
        return out

    def memory(self) -> dict[str, float]:
        """Latest system readings plus torch's own CUDA counters (host-side, no sync)."""
        out = dict(self.latest)
        if self.device.type == "cuda":
            out["cuda_allocated_mb"] = torch.cuda.memory_allocated(self.device) / 2**20
            out["cuda_reserved_mb"] = torch.cuda.memory_reserved(self.device) / 2**20
            out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
            out["cuda_total_mb"] = torch.cuda.get_device_properties(self.device).total_memory / 2**20
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
