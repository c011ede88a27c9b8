"""Training-step time of a compiled VAE vs the same networks in hand-written PyTorch and Pyro.

Three loops train the same Bernoulli VAE on binarised digits (64 pixels): the model compiled from
a spec (``model.loss`` + ``torch.optim.Adam``), a hand-written PyTorch ELBO with the analytic
Gaussian KL, and a hand-written Pyro model/guide trained with ``SVI`` and
``TraceMeanField_ELBO``.  Repetitions are interleaved and the median time per step is reported
with the ratios to plain PyTorch.

    python benchmarks/vae_step.py [--steps 50] [--reps 7] [--batch 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import SVI, TraceMeanField_ELBO
from pyro.optim import Adam

from gendsl.data import load_dataset
from gendsl.lower import load

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
    """−ELBO per data point with the analytic KL (Kingma & Welling 2014, appendix B)."""
    out = enc(x)
    mu, sd = out[:, 0], torch.nn.functional.softplus(out[:, 1]) + 1e-5
    z = mu + sd * torch.randn_like(sd)
    recon = -torch.nn.functional.binary_cross_entropy_with_logits(dec(z), x, reduction="none")
    kl = (-torch.log(sd) + 0.5 * (sd**2 + mu**2 - 1)).sum(1)
    return (kl - recon.sum(1)).mean()


def make_pyro(enc: torch.nn.Module, dec: torch.nn.Module):
    def model(x):
        pyro.module("dec", dec)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 16), 1.0).to_event(1))
            pyro.sample("x", dist.Bernoulli(logits=dec(z)).to_event(1), obs=x)

    def guide(x):
        pyro.module("enc", enc)
        with pyro.plate("data", x.shape[0]):
            out = enc(x)
            sd = torch.nn.functional.softplus(out[:, 1]) + 1e-5
            pyro.sample("z", dist.Normal(out[:, 0], sd).to_event(1))

    return model, guide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
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

    def step_compiled(x):
        opt_c.zero_grad()
        compiled.loss(x).backward()
        opt_c.step()

    def step_torch(x):
        opt_t.zero_grad()
        torch_loss(enc, dec, x).backward()
        opt_t.step()

    def step_pyro(x):
        svi.step(x)

    loops = {"gendsl": step_compiled, "torch": step_torch, "pyro": step_pyro}
    times: dict[str, list[float]] = {k: [] for k in loops}
    for rep in range(args.reps + 1):
        for name, step in loops.items():
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(args.steps):
                step(batches[i % len(batches)])
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if rep > 0:  # the first round is a warm-up
                times[name].append((time.perf_counter() - start) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"command: python benchmarks/vae_step.py --steps {args.steps} --reps {args.reps} "
        f"--batch {args.batch} --device {args.device} --threads {args.threads}"
    )
    for name in loops:
        print(f"{name:7s} {1e3 * med[name]:8.3f} ms/step   {med[name] / med['torch']:.3f}x torch")


if __name__ == "__main__":
    main()
