"""Data-parallel training with ``torch.distributed``: one process per device, one model.

``torchrun --nproc_per_node N -m gendsl.cli train ...`` (or ``gendsl train --nproc N``, which
starts the N processes with torchrun's launcher) runs :func:`gendsl.train.fit` in N
processes.  The process group comes from torchrun's environment (``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``): NCCL when the run is on CUDA, gloo on the CPU.
What :func:`~gendsl.train.fit` does with it:

* the one-optimiser step runs the model's loss through ``DistributedDataParallel`` (gradients
  averaged in buckets while the backward pass runs); a several-optimiser ``training_step`` gets
  optimisers whose gradients are averaged over the ranks, in one collective, just before each
  ``step()`` (an optimiser step pre-hook);
* every rank draws the same global batch of indices and trains on its own slice of it
  (:func:`shard`), so the ranks' shares are disjoint and the sequence is deterministic;
* the model's own random draws (noise, times, guidance dropout) come from the global generator
  seeded with ``seed + rank``;
* the per-step metrics are averaged over the ranks at each sync point (one all-reduce);
* only rank 0 writes ``metrics.jsonl`` and ``checkpoint.pt``; the checkpoint carries every
  rank's random state, so ``--resume`` at the same world size continues bit-for-bit;
* evaluation runs on rank 0 while the others wait at their next collective.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn

from gendsl.errors import GendslError, UsageError

__all__ = [
    "ENV_WORLD_SIZE",
    "all_gather_objects",
    "average_",
    "average_gradients_",
    "barrier",
    "broadcast_module_",
    "init_from_env",
    "launch",
    "leave_group",
    "rank",
    "relaunch_argv",
    "run_rank",
    "shard",
    "train_command",
    "world_size",
]

ENV_WORLD_SIZE = "WORLD_SIZE"
#: seconds a rank other than 0 waits before showing an error every rank is likely to hit,
#: so that rank 0 shows it and torchrun stops the others (the error is shown once)
QUIET_WAIT = 3.0


def active() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 outside a distributed run)."""
    return dist.get_rank() if active() else 0


def world_size() -> int:
    """The number of processes (1 outside a distributed run)."""
    return dist.get_world_size() if active() else 1


def _env_world_size() -> int:
    value = os.environ.get(ENV_WORLD_SIZE, "1")
    if not value.isdigit():
        raise UsageError(f"{ENV_WORLD_SIZE} must be a positive integer, got {value!r}")
    return int(value)


def init_from_env(device: str) -> bool:
    """Join the process group torchrun describes in the environment (NCCL for ``cuda`` or
    ``auto`` with a GPU, gloo otherwise) and select this rank's GPU.  False when not launched
    by torchrun with more than one process."""
    if _env_world_size() <= 1 or active():
        return False
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    return True


def barrier() -> None:
    """Wait until every rank reaches this point (nothing outside a distributed run)."""
    if active():
        dist.barrier()


def shard(batch_size: int) -> tuple[int, int]:
    """This rank's ``[start, stop)`` slice of a global batch of ``batch_size`` rows.

    :raises UsageError: ``batch_size`` is not a multiple of the world size.
    """
    n, r = world_size(), rank()
    if batch_size % n:
        raise UsageError(
            f"batch size {batch_size} is not a multiple of the {n} processes; "
            f"use a batch size divisible by {n}"
        )
    per = batch_size // n
    return r * per, (r + 1) * per


def average_(tensor: Tensor) -> Tensor:
    """Replace ``tensor`` by its mean over the ranks, in place."""
    dist.all_reduce(tensor)
    return tensor.div_(world_size())


def average_gradients_(params: Iterable[nn.Parameter]) -> None:
    """Average the gradients of ``params`` over the ranks in one collective (a parameter
    without a gradient counts as zero, so every rank sends the same layout)."""
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    flat = torch.cat(
        [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params]
    )
    average_(flat)
    offset = 0
    for p in params:
        n = p.numel()
        part = flat[offset : offset + n].view_as(p)
        if p.grad is None:
            p.grad = part.clone()
        else:
            p.grad.copy_(part)
        offset += n


def sync_optimizer_(optimizer: torch.optim.Optimizer) -> None:
    """Average each optimiser's gradients over the ranks before its ``step()``."""

    def pre_step(opt, args, kwargs) -> None:
        average_gradients_(p for g in opt.param_groups for p in g["params"])

    optimizer.register_step_pre_hook(pre_step)


@torch.no_grad()
def broadcast_module_(model: nn.Module) -> None:
    """Give every rank rank 0's parameters and buffers."""
    for tensor in [*model.parameters(), *model.buffers()]:
        dist.broadcast(tensor.data, src=0)


def all_gather_objects(value: object) -> list[object]:
    """Every rank's ``value`` (plain, picklable values), in rank order."""
    out: list[object] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def run_rank(fn: Callable[[], int], device: str) -> int:
    """Run ``fn`` in this torchrun process: join the group, run, leave.

    An error every rank is likely to meet (a spec, data, usage or training error) is shown by
    rank 0; another rank waits :data:`QUIET_WAIT` seconds for torchrun to stop it and shows the
    error only if it is still running (the error was its own).
    """
    joined = init_from_env(device)
    finished = False
    try:
        result = fn()
        finished = True
        return result
    except GendslError:
        if joined and rank() != 0:
            time.sleep(QUIET_WAIT)
        raise
    finally:
        if joined and dist.is_initialized():
            leave_group(together=finished)


def leave_group(*, together: bool) -> None:
    """Destroy the process group; with ``together`` (every rank finished) after a barrier, so
    that no rank tears its gloo pairs down while a peer is still in the group (a peer that
    loses its connections outside a collective can abort: "terminate called without an active
    exception").  After an error there is no barrier: the other ranks may never reach it."""
    if together:
        dist.barrier()
    dist.destroy_process_group()


def relaunch_argv(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The ``gendsl train`` arguments of ``args`` (``--nproc`` left out), for each rank."""
    argv = ["train"]
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.dest in ("help", "nproc") or value is None or value == action.default:
            continue
        if not action.option_strings:
            argv.append(str(value))
        elif isinstance(action, argparse._StoreTrueAction):
            argv.append(action.option_strings[-1])
        else:
            argv += [action.option_strings[-1], str(value)]
    return argv


def train_command(args: argparse.Namespace, train: Callable[[argparse.Namespace], object]) -> int:
    """``gendsl train``: start torchrun for ``--nproc N`` (N > 1), else train in this process
    (one rank of a torchrun run, or a single process)."""
    if args.nproc is not None and args.nproc != 1:
        return launch(args.nproc, relaunch_argv(args.parser, args))

    def one_rank() -> int:
        train(args)
        return 0

    return run_rank(one_rank, args.device)


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``python -m gendsl.cli ARGV`` in ``nproc`` processes on this machine with
    torchrun's launcher (``torch.distributed.launcher.api.elastic_launch``, standalone
    rendezvous, no restarts); the first failed rank's exit status, or 0.  The launcher's own
    log lines are silenced: the failing rank shows its error.

    :raises UsageError: ``nproc`` below 1, or already inside a torchrun process.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nproc < 1:
        raise UsageError(f"--nproc must be at least 1, got {nproc}")
    if _env_world_size() > 1:
        raise UsageError("--nproc inside torchrun: start either torchrun or gendsl --nproc")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        monitor_interval=0.1,
    )
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        elastic_launch(config, sys.executable)("-m", "gendsl.cli", *argv)
    except ChildFailedError as err:
        code = err.get_first_failure()[1].exitcode
        return code if code > 0 else 1
    return 0
