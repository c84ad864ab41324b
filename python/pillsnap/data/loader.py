"""PackLoader: batches from a pack file, decoded and augmented in Rust, as torch tensors.

    loader = PackLoader("artifacts/pack/train.pack", batch_size=64, image_size=384, train=True)
    for epoch in range(epochs):
        loader.set_epoch(epoch)
        for images, labels in loader:       # uint8 NCHW (channels_last memory), int64
            ...

It behaves like a DataLoader (``len``, iteration, ``set_epoch``) without worker processes:
a pool of native threads writes straight into a ring of preallocated (pinned, when CUDA is
present) batch tensors while Python waits with the GIL released. A yielded batch stays
valid until the next one is requested; keep a copy (or use ``DevicePrefetcher``) to hold
it longer. ``cache_policy="hotset"`` asks the kernel to keep the pack resident (and to
``mlock`` up to ``lock_bytes``). Corrupt records are replaced by the next sample and
counted (``stats``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from pillsnap.errors import LoaderError
from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)



def _dist_rank_world() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PackLoader:
    """A DataLoader-like iterator over a pack file (see the module docstring)."""

    def __init__(
        self,
        pack: Path | str,
        *,
        batch_size: int,
        image_size: int,
        train: bool = True,
        threads: int = 0,
        seed: int = 0,
        shuffle: bool | None = None,
        drop_last: bool | None = None,
        ring: int = 4,
        pin_memory: bool | None = None,
        rank: int | None = None,
        world_size: int | None = None,
        cache_policy: str = "none",
        lock_bytes: int = 0,
        crop_scale: tuple[float, float] = (0.08, 1.0),
        hflip: float = 0.5,
    ) -> None:
        if rank is None or world_size is None:
            rank, world_size = _dist_rank_world()
        threads = threads or len(os.sched_getaffinity(0))
        pin = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.batch_size, self.image_size, self.train = batch_size, image_size, train
        self.threads, self.ring, self.epoch, self.start_batch = threads, ring, 0, 0
        self._pid = os.getpid()
        self._images = torch.empty((ring, batch_size, image_size, image_size, 3),
                                   dtype=torch.uint8, pin_memory=pin)
        self._labels = torch.empty((ring, batch_size), dtype=torch.int64, pin_memory=pin)
        from pillsnap.native import _native

        self._native = _native.PackLoader(
            str(pack), self._images.numpy(), self._labels.numpy(),
            batch_size=batch_size, image_size=image_size, train=train, threads=threads,
            seed=seed, shuffle=train if shuffle is None else shuffle,
            drop_last=train if drop_last is None else drop_last, ring=ring, rank=rank,
            world_size=world_size, crop_scale=tuple(crop_scale), hflip=hflip,
        )
        self._outstanding = 0
        if cache_policy != "none":
            self.advise(cache_policy, lock_bytes)

    def advise(self, policy: str, lock_bytes: int = 0) -> None:
        """Keep the pack resident (hotset): one decision line says what the kernel granted."""
        report = self._native.advise(policy, lock_bytes)
        locked = report["locked_bytes"] / 2**30
        detail = f"madvise WILLNEED={report['willneed']}, mlock {locked:.2f} GiB"
        if report["lock_error"]:
            log_decision(logger, "cache.mlock", f"{locked:.2f} GiB", f"{report['lock_error']}; "
                         "pages stay in the page cache without a lock", fallback=True)
        log_decision(logger, "cache.policy", policy, detail)

    def __len__(self) -> int:
        return int(self._native.batches_per_epoch())

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Shuffle and augment differently each epoch (the same on every rank); the next
        pass starts at batch ``start_batch`` (a run resumed mid-epoch) and serves exactly the
        batches a whole epoch serves from there on, without decoding the skipped ones."""
        self.epoch, self.start_batch = epoch, start_batch

    @property
    def pinned(self) -> bool:
        return bool(self._images.is_pinned())

    def stats(self) -> dict[str, Any]:
        """Samples loaded, records skipped (corrupt) and the last error, if any."""
        return dict(self._native.stats())

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for slot, size in self.batches():
            images, labels = self.slot_tensors(slot, size)
            yield images, labels
            self.release()

    def batches(self) -> Iterator[tuple[int, int]]:
        """Lower level: (slot, size) of each ready batch; call ``release()`` for each, in order.

        Up to ``ring`` batches may be held at once (the CUDA prefetcher keeps two while their
        host-to-device copies run).
        """
        self._check_process()
        self._native.start_epoch(self.epoch, self.start_batch)
        self._outstanding = 0
        while True:
            got = self._native.next_batch()
            if got is None:
                return
            self._outstanding += 1
            yield got

    def release(self) -> None:
        """Hand the oldest held batch back to the loader threads."""
        if self._outstanding:
            self._native.release()
            self._outstanding -= 1

    def slot_tensors(self, slot: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Views (no copy) of one slot: images uint8 NCHW with channels_last memory, labels."""
        images = self._images[slot, :size].permute(0, 3, 1, 2)
        return images, self._labels[slot, :size]

    def _check_process(self) -> None:
        if os.getpid() != self._pid:
            raise LoaderError(
                "this PackLoader was created in another process and its threads did not "
                "survive fork(); create the loader in the process that iterates it"
            )
