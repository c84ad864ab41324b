"""A small Prometheus registry: counters, gauges and histograms in the text format 0.0.4.

prometheus_client is not a dependency; the server needs four metric families, which fit on
a screen. Thread-safe (the embedded backend records from worker threads).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Iterable, Sequence

# seconds; from 1 ms to 30 s, dense where a CPU classifier answers (10-500 ms)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
                   0.75, 1.0, 2.5, 5.0, 10.0, 30.0)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _labels(names: Sequence[str], values: Iterable[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) or abs(value) >= 1e15 else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.label_names = name, help_text, tuple(labels)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(self.label_names, k)} {_num(v)}"
                                for k, v in items]


class Gauge(Counter):
    kind = "gauge"

    def dec(self, *labels: str) -> None:
        self.inc(*labels, amount=-1.0)


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, labels)
        self.buckets = tuple(sorted(buckets))
        self._counts: dict[Labels, list[int]] = {}
        self._sums: dict[Labels, float] = {}

    def observe(self, value: float, *labels: str) -> None:
        with self._lock:
            counts = self._counts.setdefault(labels, [0] * (len(self.buckets) + 1))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            self._sums[labels] = self._sums.get(labels, 0.0) + value

    def count(self, *labels: str) -> int:
        return sum(self._counts.get(labels, ()))

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, list(v), self._sums[k]) for k, v in self._counts.items())
        lines = self.header()
        for key, counts, total in items:
            running = 0
            for bound, n in zip((*self.buckets, float("inf")), counts, strict=True):
                running += n
                le = "+Inf" if bound == float("inf") else _num(bound)
                bucket = _labels(self.label_names, key, 'le="' + le + '"')
                lines.append(f"{self.name}_bucket{bucket} {running}")
            lines.append(f"{self.name}_sum{_labels(self.label_names, key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.label_names, key)} {running}")
        return lines


class Metrics:
    """The server's metric families; one instance per app."""

    def __init__(self) -> None:
        self.requests = Counter("pillsnap_http_requests_total",
                                "HTTP requests answered, by route, method and status",
                                ("route", "method", "status"))
        self.latency = Histogram("pillsnap_http_request_duration_seconds",
                                 "Time from request start to response, by route", ("route",))
        self.stages = Histogram("pillsnap_stage_duration_seconds",
                                "Time per prediction stage (read, backend stages, backend, "
                                "total), by pipeline", ("pipeline", "stage"))
        self.errors = Counter("pillsnap_errors_total",
                              "Requests refused or failed, by error kind", ("kind",))
        self.in_flight = Gauge("pillsnap_requests_in_flight", "Requests being answered now")
        self.in_flight.inc(amount=0.0)  # a sample from the start, not only after traffic

    def observe_timing(self, pipeline: str, timing_ms: dict[str, float]) -> None:
        for stage, ms in timing_ms.items():
            self.stages.observe(ms / 1000.0, pipeline, stage)

    def render(self) -> str:
        families = (self.requests, self.latency, self.stages, self.errors, self.in_flight)
        return "\n".join(line for f in families for line in f.render()) + "\n"
