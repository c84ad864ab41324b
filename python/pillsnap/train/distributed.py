"""DDP set-up under torchrun: NCCL on GPUs, gloo on CPUs; rank 0 alone logs and saves.

    torchrun --nproc_per_node=2 -m pillsnap.train --cfg config.yaml

PackLoader reads the rank and world size from ``torch.distributed``, so each rank gets a
disjoint shard of every epoch without a sampler.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pillsnap.logs import log_decision

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def init_distributed() -> Dist:
    """Join the process group torchrun describes (WORLD_SIZE > 1); a plain run is rank 0 of 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return Dist(rank=rank, world=world, local_rank=local)


def log_setup(d: Dist) -> None:
    """One line for the run's log (called once logging is set up, on rank 0)."""
    if d.enabled:
        backend = dist.get_backend()
        log_decision(logger, "distributed", backend, f"{d.world} processes "
                     f"({'GPUs' if backend == 'nccl' else 'CPU, no CUDA'})")


def pick_device(d: Dist) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", d.local_rank)
    log_decision(logger, "device", "cpu", "no CUDA device visible")  # no setting asks for one
    return torch.device("cpu")


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def broadcast_flag(d: Dist, flag: bool) -> bool:
    """Rank 0's decision (stop early, say) for every rank."""
    return bool(broadcast_int(d, 1 if flag else 0))


def broadcast_int(d: Dist, value: int) -> int:
    """Rank 0's number (the epochs a time cap leaves, say) for every rank."""
    if not d.enabled:
        return value
    tensor = torch.tensor([int(value)])
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.broadcast(tensor, src=0)
    return int(tensor.item())


def shutdown(d: Dist) -> None:
    if d.enabled and dist.is_initialized():
        dist.destroy_process_group()
