"""The server's Prometheus metrics (``GET /metrics``), kept by prometheus_client.

    metrics = Metrics()
    metrics.requests.labels("/predict", "POST", "200").inc()
    text = metrics.render()

One registry per app, so several apps in one process (the tests) keep apart counts.
prometheus_client is thread-safe: the embedded backend records from worker threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

if TYPE_CHECKING:
    from pillsnap.serve.admission import AdmissionGate

# The *_created series (a timestamp per label set) doubles the output for no use here.
prometheus_client.disable_created_metrics()

# seconds; from 1 ms to 30 s, dense where a CPU classifier answers (10-500 ms)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5,
                   0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


class Metrics:
    """The server's metric families; one instance (and registry) per app."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("pillsnap_http_requests", "HTTP requests answered, by route, "
                                "method and status", ("route", "method", "status"),
                                registry=self.registry)
        self.latency = Histogram("pillsnap_http_request_duration_seconds",
                                 "Time from request start to response, by route", ("route",),
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.stages = Histogram("pillsnap_stage_duration_seconds",
                                "Time per prediction stage (read, backend stages, backend, "
                                "total), by pipeline", ("pipeline", "stage"),
                                buckets=LATENCY_BUCKETS, registry=self.registry)
        self.errors = Counter("pillsnap_errors", "Requests refused or failed, by error kind",
                              ("kind",), registry=self.registry)
        self.in_flight = Gauge("pillsnap_requests_in_flight", "Requests being answered now",
                               registry=self.registry)
        self.queue_depth = Gauge("pillsnap_queue_depth", "Requests waiting for the backend "
                                 "(admission queue, at most serve.max_queue)",
                                 registry=self.registry)
        self.backend_busy = Gauge("pillsnap_backend_busy", "Requests the backend is computing "
                                  "(at most serve.max_concurrent)", registry=self.registry)

    def watch(self, gate: AdmissionGate) -> None:
        """Read the gate's counts at each scrape (refusals: errors{kind="overloaded"})."""
        self.queue_depth.set_function(lambda: gate.waiting)
        self.backend_busy.set_function(lambda: gate.busy)

    def observe_timing(self, pipeline: str, timing_ms: dict[str, float]) -> None:
        for stage, ms in timing_ms.items():
            self.stages.labels(pipeline, stage).observe(ms / 1000.0)

    def render(self) -> str:
        return prometheus_client.generate_latest(self.registry).decode("utf-8")
