"""Training-step time of a compiled VAE vs the same networks in hand-written PyTorch and Pyro.

Three loops train the same Bernoulli VAE on binarised digits (64 pixels, latent 16, MLP encoder
and decoder with one hidden layer of 256): the model compiled from a spec (``model.loss`` +
``torch.optim.Adam``), a hand-written PyTorch ELBO with the analytic Gaussian KL (the same
network objects, copied, and the same optimiser), and a hand-written Pyro model/guide trained
with ``SVI`` and ``TraceMeanField_ELBO`` (the same analytic KL).

Timing is built for a busy machine: after a warm-up round, every repetition runs each loop for
``--steps`` steps, in an order rotated from one repetition to the next, with the garbage
collector paused inside a timed block.  Each block records wall time and the process's CPU time
(which excludes time the process spent descheduled by other jobs); the table gives the median and
the minimum over repetitions of both, per step, and the ratios to plain PyTorch: the median of
the per-repetition ratios (the loops of one repetition run back to back, so slow drifts of the
machine's load cancel) and the ratio of the CPU-time minima.

    python benchmarks/vae_step.py [--steps 30] [--reps 7] [--batch 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import gc
import statistics
import time
from collections.abc import Callable

import pyro
import pyro.distributions as dist
import torch
import torch.nn.functional as F
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import Adam

from gendsl.data import load_dataset
from gendsl.lower import load

__all__ = ["SPEC", "main", "make_pyro", "table", "time_loops", "torch_loss"]

SPEC = """
model vae {
  data x : binary[D]
  latent z : real[16]
  net enc = MLP(hidden = [256])
  net dec = MLP(hidden = [256])
  z ~ Normal(0, 1)
  x | z ~ Bernoulli(logits = dec(z))
  guide { z | x ~ Normal(enc(x)) }
  loss elbo
}
"""


def torch_loss(enc: torch.nn.Module, dec: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """−ELBO per data point with the analytic KL (Kingma & Welling 2014, appendix B), written
    the way one would by hand: the encoder gives (μ, softplus⁻¹ σ) stacked, z = μ + σ ε."""
    out = enc(x)
    mu, sd = out[:, 0], F.softplus(out[:, 1]) + 1e-5
    z = mu + sd * torch.randn_like(sd)
    recon = -F.binary_cross_entropy_with_logits(dec(z), x, reduction="none").sum(1)
    kl = (0.5 * (mu**2 + sd**2 - 1) - torch.log(sd)).sum(1)
    return (kl - recon).mean()


def make_pyro(enc: torch.nn.Module, dec: torch.nn.Module):
    """The same VAE as a Pyro model and guide."""

    def model(x):
        pyro.module("dec", dec)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 16), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=dec(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("enc", enc)
        with pyro.plate("data", x.shape[0]):
            out = enc(x)
            sd = F.softplus(out[:, 1]) + 1e-5
            pyro.sample("z", dist.Normal(out[:, 0], sd).to_event(1))

    return model, guide


def time_loops(
    loops: dict[str, Callable[[int], None]], *, steps: int, reps: int, sync: Callable[[], None]
) -> dict[str, dict[str, list[float]]]:
    """Seconds per step of each loop, ``{"wall": [...], "cpu": [...]}`` per repetition.

    Round 0 is a warm-up and is not recorded; the order of the loops rotates every round so
    none always runs right after another; the garbage collector runs between timed blocks, not
    inside them."""
    names = list(loops)
    times: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in names}
    for rep in range(reps + 1):
        for j in range(len(names)):
            name = names[(rep + j) % len(names)]
            gc.collect()
            gc.disable()
            sync()
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(steps):
                loops[name](i)
            sync()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            gc.enable()
            if rep > 0:
                times[name]["wall"].append(wall / steps)
                times[name]["cpu"].append(cpu / steps)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    data = load_dataset("digits_binary").x.to(args.device)
    compiled = load(SPEC, D=64).to(args.device)
    enc, dec = copy.deepcopy(compiled.nets["enc"]), copy.deepcopy(compiled.nets["dec"])
    penc, pdec = copy.deepcopy(enc), copy.deepcopy(dec)
    opt_c = torch.optim.Adam(compiled.parameters(), lr=1e-3)
    opt_t = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=1e-3)
    pyro.clear_param_store()
    svi = SVI(*make_pyro(penc, pdec), Adam({"lr": 1e-3}), TraceMeanField_ELBO())
    g = torch.Generator().manual_seed(0)
    batches = [data[torch.randint(len(data), (args.batch,), generator=g)] for _ in range(8)]

    def step_compiled(i: int) -> None:
        opt_c.zero_grad()
        compiled.loss(batches[i % len(batches)]).backward()
        opt_c.step()

    def step_torch(i: int) -> None:
        opt_t.zero_grad()
        torch_loss(enc, dec, batches[i % len(batches)]).backward()
        opt_t.step()

    def step_pyro(i: int) -> None:
        svi.step(batches[i % len(batches)])

    cuda = args.device.startswith("cuda")
    times = time_loops(
        {"gendsl": step_compiled, "torch": step_torch, "pyro": step_pyro},
        steps=args.steps,
        reps=args.reps,
        sync=torch.cuda.synchronize if cuda else lambda: None,
    )
    print(
        f"command: python benchmarks/vae_step.py --steps {args.steps} --reps {args.reps} "
        f"--batch {args.batch} --device {args.device} --threads {args.threads}"
    )
    print(f"torch {torch.__version__}, pyro {pyro.__version__}, {args.device}")
    print(table(times, base="torch"))


def table(times: dict[str, dict[str, list[float]]], *, base: str) -> str:
    """Milliseconds per step (median and minimum over repetitions, wall and CPU clocks) and the
    ratio to ``base``: the median over repetitions of the ratio within a repetition, which
    cancels load that drifts between repetitions, and the ratio of the minima."""
    lines = [
        "ms/step   wall med  wall min   cpu med   cpu min | x torch: wall med  cpu med  cpu min"
    ]
    for name, t in times.items():
        paired = {
            clock: statistics.median(
                [a / b for a, b in zip(t[clock], times[base][clock], strict=True)]
            )
            for clock in ("wall", "cpu")
        }
        cells = [statistics.median(t["wall"]), min(t["wall"]), statistics.median(t["cpu"])]
        cells.append(min(t["cpu"]))
        ms = "".join(f"{1e3 * v:10.3f}" for v in cells)
        low = min(t["cpu"]) / min(times[base]["cpu"])
        lines.append(f"{name:7s}{ms} | {paired['wall']:16.3f} {paired['cpu']:8.3f} {low:8.3f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
