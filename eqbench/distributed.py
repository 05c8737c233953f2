"""Data-parallel training of one run with ``torch.distributed``: each rank relaxes its shard of every batch, and the
``.grad`` a rule wrote is averaged across ranks before the optimizer steps.

EP writes ``.grad`` itself (no backward pass through the model), so DistributedDataParallel's backward hooks never
fire: `average_grads` all-reduces every gradient after the rule, once per batch. A rule's update is a mean over
its batch, so with equal shards the mean of the shards' means is the whole batch's mean: the step equals a single
process on the whole batch up to round-off (tests/test_distributed.py). Rules whose randomness is drawn per
example (PEPITA's dropout masks) draw other numbers on shards than on the whole batch: the same distribution, not
the same numbers.

Two ways in: ``torchrun --nproc-per-node N -m eqbench train CONFIG`` (the environment variables torchrun sets are
read by `init_from_env`), or ``eqbench train CONFIG --ddp N`` (`spawn`, one machine). ``gloo`` on the CPU, ``nccl``
on GPUs (one per rank, ``LOCAL_RANK``).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class Shard:
    """This process's place: rank ``rank`` of ``world`` (0 of 1 without torch.distributed)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """The rank that writes the run folder."""
        return self.rank == 0


def current() -> Shard:
    """The shard of this process (0 of 1 unless a process group is initialised)."""
    if dist.is_available() and dist.is_initialized():
        return Shard(dist.get_rank(), dist.get_world_size())
    return Shard()


def split(x: torch.Tensor, y: torch.Tensor, shard: Shard, *, exact: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """This rank's contiguous slice of a batch (shards differ by at most one example). ``exact`` (training): every
    rank needs an example (`average_grads` weights the shards' means by their sizes); evaluation sums, so a rank
    may get none."""
    if shard.world == 1:
        return x, y
    n = len(y)
    if exact and n < shard.world:
        raise ConfigError(f"a batch of {n} example(s) cannot be split over {shard.world} data-parallel processes "
                          "(the last batch of an epoch? use a batch size and split with no smaller remainder)")
    bounds = [n * r // shard.world for r in range(shard.world + 1)]
    lo, hi = bounds[shard.rank], bounds[shard.rank + 1]
    return x[lo:hi], y[lo:hi]


def average_grads(model: torch.nn.Module, shard: Shard, n: int, n_batch: int) -> None:
    """Replace every ``.grad`` (the mean update over this rank's ``n`` examples) by the mean over the whole batch
    of ``n_batch``: Σ_r (n_r / n_batch)·g_r, one all-reduce per parameter; exact for uneven shards too."""
    if shard.world == 1:
        return
    for p in model.parameters():
        if p.grad is not None:
            p.grad.mul_(n / n_batch)
            dist.all_reduce(p.grad)


def sums(values: list[float], shard: Shard) -> list[float]:
    """Element-wise sums over the ranks (float64, so counts and costs add exactly as in one process)."""
    if shard.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.tolist()


def gather(obj: Any, shard: Shard) -> list[Any]:
    """Every rank's ``obj``, in rank order (e.g. each rank's persistent particles for the checkpoint)."""
    if shard.world == 1:
        return [obj]
    out: list[Any] = [None] * shard.world
    dist.all_gather_object(out, obj)
    return out


def init_from_env(device: str) -> Shard:
    """Join the process group torchrun (or `spawn`) described in the environment, if any; one GPU per rank."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        cuda = device.startswith("cuda")
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return current()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, world: int, port: int, threads: int, fn: Callable[..., Any], args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(world))
    torch.set_num_threads(threads)
    try:
        fn(*args)
        finish()
    finally:  # a failed rank: the others are terminated by torch.multiprocessing, no barrier to wait on
        if dist.is_initialized():
            dist.destroy_process_group()


def finish() -> None:
    """Leave the process group after a successful run (`spawn` and torchrun alike): a barrier first, so that no
    rank tears its gloo connections down while another still uses them (a rank that exits early can abort its
    peer with SIGABRT), then ``destroy_process_group``. Nothing without a process group."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def spawn(world: int, fn: Callable[..., Any], *args: Any, threads: int | None = None) -> None:
    """Run ``fn(*args)`` in ``world`` local processes that `init_from_env` joins into one group (``--ddp N``);
    each gets ``threads`` intra-op threads (default: the cores over ``world``)."""
    if world < 1:
        raise ConfigError(f"--ddp needs at least 1 process, got {world}")
    threads = threads or max(1, (os.cpu_count() or 1) // world)
    # torch logs a warning per surviving rank it terminates after one failed; the failure itself is the one line
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    try:
        torch.multiprocessing.start_processes(_entry, args=(world, _free_port(), threads, fn, args), nprocs=world,
                                              start_method="spawn")
    except torch.multiprocessing.ProcessRaisedException as e:  # a rank's error, as one line
        lines = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else str(e)
        if last.startswith("eqbench.errors."):  # eqbench's own one-line message, without the class
            last = last.split(": ", 1)[-1]
        raise ConfigError(f"data-parallel rank {e.error_index}: {last}") from None
