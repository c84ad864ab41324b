"""Find the largest batch that fits the GPU: binary search with a few real training steps.

A batch "fits" when ``warmup_steps`` forward/backward passes run without running out of
memory and the peak stays under ``vram_headroom`` of the card (room for fragmentation and
the evaluation pass). Skipped, with one log line, on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from pillsnap.config.schema import AutoBatchConfig
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


def search_batch(fits: Callable[[int], bool], start: int, max_batch: int) -> int:
    """The largest b <= max_batch with ``fits(b)``, assuming fits is monotone; at least 1.

    Doubles from ``start`` until a failure, then bisects between the last fit and the miss.
    """
    low, high = 0, None
    b = max(1, min(start, max_batch))
    while high is None:
        if fits(b):
            low = b
            if b >= max_batch:
                return b
            b = min(b * 2, max_batch)
        else:
            high = b
    while high - low > 1:
        mid = (low + high) // 2
        if fits(mid):
            low = mid
        else:
            high = mid
    return max(low, 1)


def probe(step: Callable[[int], None], device: torch.device, cfg: AutoBatchConfig,
          ) -> Callable[[int], bool]:
    """A ``fits(b)`` that runs ``step(b)`` warmup_steps times and checks the peak memory."""
    total = torch.cuda.get_device_properties(device).total_memory

    def fits(batch: int) -> bool:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            for _ in range(cfg.warmup_steps):
                step(batch)
            torch.cuda.synchronize(device)
        except torch.cuda.OutOfMemoryError:
            return False
        finally:
            torch.cuda.empty_cache()
        return torch.cuda.max_memory_allocated(device) <= cfg.vram_headroom * total

    return fits


def tune_batch(step: Callable[[int], None], device: torch.device, cfg: AutoBatchConfig,
               start: int) -> int:
    """train.auto_batch: the tuned batch on CUDA; ``start`` unchanged elsewhere."""
    if not cfg.enabled:
        return start
    if device.type != "cuda":
        # auto_batch.enabled=true is the default ("tune where there is VRAM"): a decision
        log_decision(logger, "auto_batch", start, "no CUDA: the batch tuner needs GPU memory "
                     "to measure; train.batch_size is used as given")
        return start
    batch = search_batch(probe(step, device, cfg), start, cfg.max_batch)
    log_decision(logger, "auto_batch", batch, f"largest batch up to {cfg.max_batch} whose "
                 f"{cfg.warmup_steps} warm-up steps stay under {cfg.vram_headroom:.0%} of VRAM")
    return batch
