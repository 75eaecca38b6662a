"""Training on several processes or machines with torchrun (PyTorch DistributedDataParallel).

    torchrun --nproc_per_node 2 -m training train --config tiny.json        # one machine, 2 ranks
    torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 \\
        --nproc_per_node 1 -m training run-all ...                          # two machines

torchrun sets WORLD_SIZE, RANK and LOCAL_RANK. With WORLD_SIZE > 1, `process_group` joins the
group (gloo on the CPU, nccl on CUDA with one GPU per process) and the one training loop
(training.loop) then

- wraps the model in DistributedDataParallel, which averages the ranks' gradients;
- gives each rank its contiguous shard of every batch. Every rank draws the same order (the
  same seeded generator), so the global batch is the one a single process would use, and each
  shard's loss is weighted by its share of the batch: the averaged gradient is then exactly the
  gradient of the global batch's mean loss, also when the batch does not divide evenly;
- validates each rank on its shard of the held-out windows and sums the weighted parts.

A run on W processes therefore follows the single-process run up to the order of floating-point
sums. Only rank 0 tracks to MLflow, writes results and registers models (training.__main__
arranges that). Without torchrun, or with WORLD_SIZE=1, every function here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class Context:
    """Where this process stands in a torchrun launch (rank 0 of 1 without one)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # the device this rank trains on (cuda:<local rank> under nccl)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


@dataclass(frozen=True)
class Shard:
    """This rank's part of a global batch."""

    index: torch.Tensor  # the rows of the global batch this rank computes
    share: float  # its fraction of the global batch (weights the logged parts)
    grad_scale: float  # share * world size: DDP's average of the ranks is then the global mean


def launch_context(environ: Mapping[str, str] = os.environ, device: str = "cpu") -> Context:
    """The rank, world size and device that torchrun's environment variables describe."""
    world_size = int(environ.get("WORLD_SIZE", "1"))
    rank = int(environ.get("RANK", "0"))
    local_rank = int(environ.get("LOCAL_RANK", "0"))
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world_size}")
    if world_size > 1 and torch.device(device).type == "cuda":
        device = f"cuda:{local_rank}"  # one GPU per process
    return Context(rank, world_size, local_rank, device)


@contextmanager
def process_group(device: str) -> Iterator[Context]:
    """Join torchrun's process group for the duration (a no-op without torchrun)."""
    context = launch_context(device=device)
    if not context.enabled:
        yield context
        return
    if torch.device(context.device).type == "cuda":
        torch.cuda.set_device(context.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    dist.init_process_group(backend=backend)  # env:// (MASTER_ADDR, MASTER_PORT from torchrun)
    try:
        yield context
    finally:
        dist.destroy_process_group()


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True on rank 0, and in a process that runs alone."""
    return _world()[0] == 0


def wrap(model: nn.Module) -> nn.Module:
    """The model as the training loop steps it: DDP across ranks, else the model itself."""
    if _world()[1] == 1:
        return model
    device = next(model.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids)


def shard(batch: torch.Tensor) -> Shard:
    """This rank's contiguous part of a global batch of row indices.

    A rank whose part would be empty (a batch smaller than the world) computes one row with
    weight 0: DDP needs every rank's backward, and that row adds nothing to the gradient.
    """
    rank, world_size = _world()
    if world_size == 1:
        return Shard(batch, 1.0, 1.0)
    mine = batch.tensor_split(world_size)[rank]
    if len(mine) == 0:
        return Shard(batch[:1], 0.0, 0.0)
    share = len(mine) / len(batch)
    return Shard(mine, share, share * world_size)


def shard_rows(n: int) -> slice:
    """This rank's contiguous block of n held-out rows (all of them in one process)."""
    rank, world_size = _world()
    start, stop = n * rank // world_size, n * (rank + 1) // world_size
    return slice(start, stop)


def all_sum(values: Mapping[str, float]) -> dict[str, float]:
    """Sum every rank's values, by name (float64; a name missing on a rank counts as 0)."""
    if _world()[1] == 1:
        return dict(values)
    gathered: list[list[str] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, sorted(values))
    names = sorted({name for names in gathered for name in names or []})
    device = torch.device("cuda", torch.cuda.current_device()) if _nccl() else torch.device("cpu")
    totals = torch.tensor([values.get(n, 0.0) for n in names], dtype=torch.float64, device=device)
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    return dict(zip(names, totals.tolist(), strict=True))


def _nccl() -> bool:
    return bool(dist.get_backend() == "nccl")
