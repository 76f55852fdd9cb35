"""Several processes, one training run: ``torchrun --nproc_per_node=N -m api.cli train CONFIG``.

torchrun starts N copies of the same command and describes them in the environment (``RANK``,
``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``); `init_from_env` joins them into one process
group. Every rank prepares the same data and builds the same model; they differ only in the
share of the training set each one steps through (`shard`), and in that rank 0 alone writes
files (`is_main`). Gradients are averaged by ``DistributedDataParallel`` (`data_parallel`).

In a single process (no ``WORLD_SIZE``, or ``WORLD_SIZE=1``) nothing here communicates: the
process is rank 0 of a world of 1, `shard` returns the order unchanged and the reductions
return their input.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from kg.errors import KGFuseError


class DistributedError(KGFuseError):
    """The processes of a torchrun launch could not work as one (no process group, or ranks
    that see different files)."""


def is_distributed() -> bool:
    """Whether this process is one of several in a process group."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0: the one process that writes files and shows progress."""
    return rank() == 0


_joined = False  # whether init_from_env formed the group (and so destroy may end it)


def init_from_env(device: str = "cpu") -> bool:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1); returns whether this
    process is now one of several. A no-op without torchrun, and when already joined.

    The backend follows the model's device: gloo for the CPU, nccl for CUDA (one GPU per
    process, ``LOCAL_RANK``). Raises `DistributedError` naming ``MASTER_ADDR:MASTER_PORT`` when
    the group cannot be formed."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or is_distributed():
        return is_distributed()
    where = (
        f"MASTER_ADDR={os.environ.get('MASTER_ADDR')} MASTER_PORT={os.environ.get('MASTER_PORT')}"
    )
    if not dist.is_available():
        raise DistributedError(f"WORLD_SIZE={world} but this torch build has no torch.distributed")
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    try:
        dist.init_process_group("nccl" if cuda else "gloo")
    except (RuntimeError, ValueError) as e:  # missing variables, refused or timed-out rendezvous
        raise DistributedError(
            f"rank {os.environ.get('RANK')} of WORLD_SIZE={world} could not join the process "
            f"group at {where}: {e}. Launch with torchrun, and check that every node reaches "
            "MASTER_ADDR:MASTER_PORT (--rdzv-endpoint) and that the port is free there"
        ) from e
    global _joined
    _joined = True
    return True


def destroy() -> None:
    """Leave the process group that `init_from_env` joined, if any (a group the caller formed
    itself is left alone); the process is a single one again."""
    global _joined
    if _joined and dist.is_initialized():
        dist.destroy_process_group()
    _joined = False


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (and writes what it caches); the other ranks wait for it,
    then run the block themselves and find the cache written."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def all_reduce_sum(values: np.ndarray) -> np.ndarray:
    """``values`` summed over the ranks, elementwise (the same array on every rank)."""
    if not is_distributed():
        return values
    tensor = torch.as_tensor(np.ascontiguousarray(values, dtype=np.float64))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.numpy().astype(values.dtype)


def all_reduce_mean(value: float) -> float:
    """The mean of ``value`` over the ranks."""
    return float(all_reduce_sum(np.array([value], dtype=np.float64))[0]) / world_size()


def agree(value: int) -> bool:
    """Whether every rank holds the same ``value`` (the same answer on every rank)."""
    if not is_distributed():
        return True
    tensor = torch.tensor([value, -value], dtype=torch.int64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)  # [max, -min]
    return bool(tensor[0] == -tensor[1])


def all_reduce_confusion(
    gold: Sequence[int], predicted: Sequence[int], num_labels: int
) -> tuple[list[int], list[int]]:
    """The (gold, predicted) label pairs of every rank's share, as if scored in one process:
    the confusion counts are summed over the ranks and expanded back into pairs. Their order
    is lost, which accuracy, F1 and a confusion matrix do not read."""
    counts = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(counts, (np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    total = all_reduce_sum(counts).ravel()
    rows, cols = np.divmod(np.arange(num_labels * num_labels), num_labels)
    return np.repeat(rows, total).tolist(), np.repeat(cols, total).tolist()


def shard(
    order: Sequence[int], pad: bool = True, place: tuple[int, int] | None = None
) -> list[int]:
    """This rank's share of ``order`` (the same ``order`` on every rank): every ``world``-th
    item from position ``rank``, where ``place`` is (rank, world), by default this process's.

    With ``pad``, ``order`` is first extended by wrapping around to a multiple of ``world``, so
    every rank gets ``ceil(len(order) / world)`` items and runs the same number of optimizer
    steps (DDP needs every rank in every step); a few items are then seen twice per epoch.
    Without it the shares are disjoint and cover ``order`` exactly (evaluation)."""
    rank_, world = place if place is not None else (rank(), world_size())
    items = list(order)
    if pad and items:
        size = math.ceil(len(items) / world) * world
        items = [items[i % len(items)] for i in range(size)]
    return items[rank_::world]


class _Method(nn.Module):
    """One method of ``module`` as its ``forward``: DDP synchronises gradients only for calls
    that go through its own ``forward``."""

    def __init__(self, module: nn.Module, method: str):
        super().__init__()
        self.module = module
        self.method = method

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.module, self.method)(*args, **kwargs)


def data_parallel(
    model: nn.Module, method: str = "forward", find_unused_parameters: bool = False
) -> nn.Module | None:
    """``model.<method>`` wrapped in ``DistributedDataParallel`` (its trainable parameters
    only), or None in a single process. Call the wrapper for training steps; evaluate with
    ``model`` itself. Wrapping broadcasts rank 0's weights to every rank."""
    if not is_distributed():
        return None
    from torch.nn.parallel import DistributedDataParallel

    # no buffer is trained (frozen node features, BERT's position ids): skip their broadcast
    # before every forward
    return DistributedDataParallel(
        _Method(model, method),
        forward_sync_buffers=False,
        find_unused_parameters=find_unused_parameters,
    )
