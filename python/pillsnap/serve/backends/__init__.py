"""Inference backends: ``embedded`` (ONNX Runtime in-process) and ``triton`` (HTTP client)."""

from __future__ import annotations

from pillsnap.serve.backends.base import Backend, Readiness
from pillsnap.serve.settings import Settings

TRITON_CONNECTIONS = 64  # serve.max_concurrent=0 with Triton


def make_backend(settings: Settings) -> Backend:
    """The backend ``settings.backend`` names (``auto``: Triton when TRITON_URL is set)."""
    if settings.backend_kind == "triton":
        from pillsnap.errors import ConfigError
        from pillsnap.serve.backends.triton import TritonBackend

        if not settings.triton_url:
            raise ConfigError("serve.backend=triton needs TRITON_URL (or serve.triton_url)")
        # Triton queues and batches on its side; 64 in flight keeps its dynamic batcher fed
        return TritonBackend(settings.triton_url, timeout_s=settings.request_timeout_s,
                             connections=settings.max_concurrent or TRITON_CONNECTIONS)
    from pillsnap.serve.backends.embedded import EmbeddedBackend

    return EmbeddedBackend(settings.model_path, timeout_s=settings.request_timeout_s,
                           max_pixels=settings.max_pixels, threads=settings.threads,
                           device=settings.device, io_binding=settings.io_binding,
                           workers=settings.max_concurrent or None)


__all__ = ["Backend", "Readiness", "make_backend"]
