"""One rank of the distributed-training tests, started by torchrun (or alone, as the
single-process reference): ``ddp_worker.py MODE OUT [STEPS]``.

Modes: ``all`` writes ``OUT/sgd``: one plain SGD step (lr 1, no clipping, no EMA) of a
deterministic regression, so the weights' change is minus the averaged gradient; ``OUT/players``:
the same for a deterministic two-optimiser model; ``OUT/run``: a regression with input jitter
(each rank's own random stream), EMA, evaluation and checkpoints.  ``kill`` is that run,
SIGKILLed on rank 1 at step 17; ``resume`` continues it; ``raise`` is a run whose rank 1 raises
at step 3.
"""

from __future__ import annotations

import os
import signal
import sys

import torch
import torch.distributed as dist
from torch import nn
from train_toys import Regression, regression_data

from gendsl.protocol import Capabilities
from gendsl.train import fit
from gendsl.train.distributed import init_from_env, leave_group, rank

torch.set_num_threads(1)


class Players(nn.Module):
    """Two players on deterministic losses: a critic a·x fitted to 1, and a shift μ pulled to
    the batch mean; one SGD update each per step."""

    capabilities = Capabilities(training_step=True, param_groups=True)

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.tensor([0.5, -0.25, 1.0]))
        self.mu = nn.Parameter(torch.zeros(3))

    def param_groups(self):
        return {"critic": [self.a], "generator": [self.mu]}

    def loss(self, batch):
        x, _ = batch
        return ((x @ self.a) - 1).square().mean() + (self.mu - x).square().sum(1).mean()

    def training_step(self, batch, step, optimizers):
        x, _ = batch
        optimizers["critic"].zero_grad()
        critic = ((x @ self.a) - 1).square().mean()
        critic.backward()
        optimizers["critic"].step()
        optimizers["generator"].zero_grad()
        gen = (self.mu - x).square().sum(1).mean()
        gen.backward()
        optimizers["generator"].step()
        return {"loss": (critic + gen).detach()}


class Failing(Regression):
    def loss(self, batch):
        if rank() == 1 and self.calls >= 2:
            raise RuntimeError("rank 1 failed on purpose")
        return super().loss(batch)


def main(mode: str, out: str, steps: int) -> None:
    init_from_env("cpu")
    torch.manual_seed(0)
    quiet = {"progress": False, "device": "cpu"}
    data = regression_data(256, 0)
    if mode == "all":
        for name, model in (("sgd", Regression(jitter=0.0)), ("players", Players())):
            fit(
                model,
                data,
                steps=1,
                batch_size=16,
                lr=1.0,
                optimizer="sgd",
                grad_clip=None,
                ema=None,
                **{**quiet, "out_dir": f"{out}/{name}"},
            )
        out = f"{out}/run"
    model = Failing() if mode == "raise" else Regression()

    def kill(step, metrics):
        if mode == "kill" and step == 17 and rank() == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    fit(
        model,
        data,
        eval_data=regression_data(64, 1),
        steps=steps,
        batch_size=16,
        lr=0.01,
        ema=0.9,
        seed=7,
        checkpoint_every=5,
        log_every=5,
        eval_every=10,
        hooks=[kill],
        resume=mode == "resume",
        out_dir=out,
        **quiet,
    )


if __name__ == "__main__":
    finished = False
    try:
        main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 30)
        finished = True
    finally:
        # leave the group before the interpreter exits, together when every rank finished: a
        # live gloo group torn down at exit, or while a peer still uses it, can abort the
        # process ("terminate called without an active exception"), as `gendsl train`'s own
        # ranks avoid in gendsl.train.distributed.run_rank
        if dist.is_initialized():
            leave_group(together=finished)
