"""Training throughput window by window, what the machine was doing in each window, and a
profile of the first slow window beside one of a normal window.

    python -m pillsnap.bench train --modes default --epochs 3 --window 20 --profile

Issue 15: the compiled classifier ran one stretch at about 825 images/s against 1,190-1,275,
with no data wait and no recompilation logged; an epoch's mean hides where and how long.
``Recorder.wrap`` hands the training loop its batches unchanged and, every ``window``
batches, waits for the GPU and notes:

- the window's images/s and the share of it spent waiting for the next batch;
- the GPU's SM clock, power, temperature and why the clock is held down (NVML, where
  ``pynvml`` imports: power cap, thermal, sync boost...);
- the caching allocator's retries (cudaFree + retry: memory fragmentation stalls the host),
  the garbage collector's passes and time, torch.compile's graph count (a recompilation),
  the process's CPU time and the host's load average.

With ``profile`` it runs ``torch.profiler`` over the third window (the reference) and over
the window after the first slow one (under ``SLOW`` x the median of the steady windows so
far, once there are ``HISTORY``), and writes each one's kernel table and Chrome trace, so
the two can be compared op by op.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from statistics import median
from typing import Any

import torch

logger = logging.getLogger(__name__)

SLOW = 0.85  # a window under this share of the median so far is slow
REFERENCE_WINDOW = 3  # profiled as the normal one: past compilation and the ring's fill
HISTORY = 3  # steady windows before one is judged slow: the median of fewer is noise


class _GcClock:
    """Garbage collector passes and their time, through ``gc.callbacks``."""

    def __init__(self) -> None:
        self.passes = 0
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.passes += 1
            self.seconds += time.perf_counter() - self._started


def _nvml(device: torch.device) -> Any:
    """An NVML handle for ``device``, or None (no CUDA, no pynvml, no driver access)."""
    if device.type != "cuda":
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
    except Exception as exc:  # pynvml raises its own untyped errors
        logger.info("no GPU telemetry in the step windows (%s)", exc)
        return None


def gpu_state(handle: Any) -> dict[str, Any]:
    """SM clock (MHz), power (W), temperature (C) and clock-limit reasons, as NVML says."""
    if handle is None:
        return {}
    import pynvml

    state: dict[str, Any] = {}
    for key, read in (
            ("sm_mhz", lambda: pynvml.nvmlDeviceGetClockInfo(handle, pynvml.NVML_CLOCK_SM)),
            ("power_w", lambda: pynvml.nvmlDeviceGetPowerUsage(handle) / 1000),
            ("temp_c", lambda: pynvml.nvmlDeviceGetTemperature(handle,
                                                               pynvml.NVML_TEMPERATURE_GPU)),
            ("limits", lambda: _reasons(pynvml.nvmlDeviceGetCurrentClocksThrottleReasons(
                handle)))):
        try:
            state[key] = read()
        except Exception:  # a query this driver or board does not support
            continue
    return state


_REASONS = {0x2: "app-clock", 0x4: "sw-power-cap", 0x8: "hw-slowdown", 0x10: "sync-boost",
            0x20: "sw-thermal", 0x40: "hw-thermal", 0x80: "hw-power-brake"}


def _reasons(mask: int) -> str:
    """NVML's clock-event bits as names (idle and 'none' left out)."""
    return ",".join(name for bit, name in _REASONS.items() if mask & bit) or "-"


def _graphs() -> int:
    """torch.compile's graphs so far: a rise inside an epoch is a recompilation."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return 0
    return int(counters["stats"].get("unique_graphs", 0))


class Recorder:
    """Window-by-window figures over the epochs of one training mode (module docstring)."""

    def __init__(self, device: torch.device, batch_size: int, *, window: int = 20,
                 profile_dir: Path | None = None) -> None:
        if window < 1:
            raise ValueError(f"window={window}: at least one batch per window")
        self.device, self.batch_size, self.window = device, batch_size, window
        self.profile_dir = profile_dir
        self.windows: list[dict[str, Any]] = []
        self.profiles: dict[str, str] = {}  # reference / slow -> kernel table file
        self._nvml = _nvml(device)
        self._gc = _GcClock()
        self._profiler: Any = None
        self._profiling = ""
        self._slow_seen = False

    def wrap(self, batches: Any, epoch: int) -> _Wrapped:
        """``batches`` (sized) as the training loop will see them, timed window by window."""
        return _Wrapped(self, batches, epoch)

    def timed(self, batches: Any, epoch: int) -> Iterator[Any]:
        """``batches`` one by one, a window closed every ``window`` of them and at the end."""
        if self._gc not in gc.callbacks:
            gc.callbacks.append(self._gc)
        self._sync()
        start, first, data_s = self._snapshot(), 0, 0.0
        it = iter(batches)
        step = 0
        while True:
            asked = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                break
            data_s += time.perf_counter() - asked
            yield batch
            step += 1
            if step - first == self.window:
                self._close_window(epoch, first, self.window, start, data_s)
                start, first, data_s = self._snapshot(), step, 0.0
        if step > first:
            self._close_window(epoch, first, step - first, start, data_s)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def _snapshot(self) -> dict[str, Any]:
        stats = torch.cuda.memory_stats(self.device) if self.device.type == "cuda" else {}
        return {"t": time.perf_counter(), "cpu": time.process_time(),
                "retries": stats.get("num_alloc_retries", 0), "gc_passes": self._gc.passes,
                "gc_s": self._gc.seconds, "graphs": _graphs()}

    def _close_window(self, epoch: int, first: int, steps: int, start: dict[str, Any],
                      data_s: float) -> dict[str, Any]:
        self._sync()
        end = self._snapshot()
        seconds = end["t"] - start["t"]
        row = {"epoch": epoch, "first_step": first, "steps": steps, "window": self.window,
               "seconds": seconds,
               "img_s": steps * self.batch_size / seconds if seconds else 0.0,
               "data_share": data_s / seconds if seconds else 0.0,
               "cpu_s": end["cpu"] - start["cpu"],
               "alloc_retries": end["retries"] - start["retries"],
               "gc_passes": end["gc_passes"] - start["gc_passes"],
               "gc_ms": (end["gc_s"] - start["gc_s"]) * 1000,
               "recompiles": end["graphs"] - start["graphs"],
               "load": os.getloadavg()[0], "profiled": self._profiling,
               "after_profile": bool(self.windows and self.windows[-1]["profiled"]
                                     and self.windows[-1]["epoch"] == epoch),
               **gpu_state(self._nvml)}
        self._stop_profile()
        self.windows.append(row)
        self._maybe_profile(row)
        return row

    def _maybe_profile(self, row: dict[str, Any]) -> None:
        """Profile the next window: the reference one, and the one after the first slow."""
        if self.profile_dir is None:
            return
        if len(self.windows) == REFERENCE_WINDOW - 1:
            self._start_profile("reference")
            return
        earlier = _steady(self.windows[:-1])
        if not self._slow_seen and len(earlier) >= HISTORY and _steady([row]):
            usual = median(w["img_s"] for w in earlier)
            if row["img_s"] < SLOW * usual:
                self._slow_seen = True
                logger.info("slow window: epoch %d steps %d-%d at %.0f img/s against a median "
                            "of %.0f; profiling the next one", row["epoch"], row["first_step"],
                            row["first_step"] + row["steps"] - 1, row["img_s"], usual)
                self._start_profile("slow")

    def _start_profile(self, name: str) -> None:
        from torch.profiler import ProfilerActivity, profile

        activities = [ProfilerActivity.CPU]
        if self.device.type == "cuda":
            activities.append(ProfilerActivity.CUDA)
        self._profiler = profile(activities=activities, record_shapes=False)
        self._profiler.__enter__()
        self._profiling = name

    def _stop_profile(self) -> None:
        if self._profiler is None or self.profile_dir is None:
            return
        self._profiler.__exit__(None, None, None)
        prof, name = self._profiler, self._profiling
        self._profiler, self._profiling = None, ""
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        sort = "self_cuda_time_total" if self.device.type == "cuda" else "self_cpu_time_total"
        table = self.profile_dir / f"{name}.txt"
        table.write_text(prof.key_averages().table(sort_by=sort, row_limit=40) + "\n",
                         encoding="utf-8")
        prof.export_chrome_trace(str(self.profile_dir / f"{name}.trace.json"))
        self.profiles[name] = str(table)
        logger.info("profile of the %s window: %s", name, table)

    def close(self) -> None:
        """Stops a profile still running (a run that ended inside the profiled window)."""
        self._stop_profile()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    def slow_windows(self) -> list[dict[str, Any]]:
        """Windows under ``SLOW`` x the median of the steady ones (``_steady``)."""
        steady = _steady(self.windows)
        if not steady:
            return []
        usual = median(w["img_s"] for w in steady)
        return [w for w in steady if w["img_s"] < SLOW * usual]


def _steady(windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The windows that say how fast training runs: not an epoch's first (it holds the
    loader's ring fill), not a profiled one nor the one after it (the profiler's own cost,
    and its teardown's), not an epoch's last few steps (too few to time)."""
    return [w for w in windows if w["first_step"] > 0 and not w["profiled"]
            and not w["after_profile"] and w["steps"] * 2 >= w["window"]]


class _Wrapped:
    """One epoch's batches through a ``Recorder``: same length, same batches, same order."""

    def __init__(self, recorder: Recorder, batches: Any, epoch: int) -> None:
        self.recorder, self.batches, self.epoch = recorder, batches, epoch

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[Any]:
        return self.recorder.timed(self.batches, self.epoch)
