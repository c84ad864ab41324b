"""Feed the GPU: host-to-device copies on a side stream, normalisation on the device.

    batches = DevicePrefetcher(PackLoader(...), device="cuda", dtype=torch.bfloat16)
    for images, labels in batches:   # normalised, channels_last, already on the device
        ...

The copy of batch k+1 runs on its own CUDA stream while the model works on batch k, and
the pinned host slot of a batch goes back to the loader only once its copy has finished.
Without CUDA the same class normalises on the CPU (one logged decision line), so training
code has one path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import torch

from pillsnap.contract.ops import IMAGENET_MEAN, IMAGENET_STD
from pillsnap.data.loader import PackLoader
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


class DevicePrefetcher:
    """Wrap a PackLoader: yields (normalised float images, labels) on ``device``."""

    def __init__(
        self,
        loader: PackLoader,
        device: torch.device | str,
        *,
        dtype: torch.dtype = torch.float32,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.loader = loader
        self.device = torch.device(device)
        self.dtype = dtype
        self.cuda = self.device.type == "cuda"
        scale = torch.tensor(std, dtype=torch.float32) * 255.0
        shift = torch.tensor(mean, dtype=torch.float32) * 255.0
        self._scale = scale.view(1, 3, 1, 1).to(self.device)
        self._shift = shift.view(1, 3, 1, 1).to(self.device)
        if not self.cuda:
            log_decision(logger, "prefetch", "cpu", f"device is {self.device}: normalise on "
                         "the CPU, no side stream")
        elif not loader.pinned:
            # On CUDA a loader pins unless it was told not to (dataloader.pin_memory=false):
            # the user's choice, reported as such.
            log_decision(logger, "prefetch.pinned", False, "loader memory is not pinned "
                         "(pin_memory=false): host-to-device copies are synchronous")

    def __len__(self) -> int:
        return len(self.loader)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.loader.set_epoch(epoch, start_batch)

    def _normalise(self, images: torch.Tensor) -> torch.Tensor:
        # uint8 NCHW (channels_last memory) -> dtype, still channels_last.
        return ((images.float() - self._shift) / self._scale).to(self.dtype)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.cuda:
            for images, labels in self.loader:
                yield self._normalise(images), labels.clone()
            return
        yield from self._cuda_iter()

    def _cuda_iter(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        stream = torch.cuda.Stream(self.device)
        pending: list[tuple[torch.cuda.Event, torch.Tensor, torch.Tensor]] = []
        for slot, size in self.loader.batches():
            host_images, host_labels = self.loader.slot_tensors(slot, size)
            with torch.cuda.stream(stream):
                images = host_images.to(self.device, non_blocking=True)
                labels = host_labels.to(self.device, non_blocking=True)
                images = self._normalise(images)
                copied = torch.cuda.Event()
                copied.record(stream)
            pending.append((copied, images, labels))
            if len(pending) > 1:
                yield self._hand_over(*pending.pop(0))
        while pending:
            yield self._hand_over(*pending.pop(0))

    def _hand_over(self, copied: torch.cuda.Event, images: torch.Tensor,
                   labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        current = torch.cuda.current_stream(self.device)
        current.wait_event(copied)
        images.record_stream(current)  # the caching allocator must not reuse it early
        labels.record_stream(current)
        copied.synchronize()  # the copy is done (the model waited for it): free the host slot
        self.loader.release()
        return images, labels
