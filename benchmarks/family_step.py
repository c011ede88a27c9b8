"""Training-step time of every family's compiled loss against a hand-written PyTorch step with the
same network objects (copied) and the same optimiser, on 2-D moons with small networks, where
the overhead of the compiled code shows most.

* latent: the Bernoulli VAE of ``benchmarks/vae_step.py`` on binarised digits (its
  hand-written ELBO);
* diffusion: ``ddpm`` (L_simple, Ho et al. 2020, eq. 14; ᾱ from the linear β schedule);
* matching: ``flow_matching`` (Lipman et al. 2023, eq. 23);
* flow: ``realnvp`` (affine couplings, actnorm, reverse; −log p by the change of variables, each
  layer's map and log-determinant written out from the copied parameters);
* adversarial: ``gan`` (one critic and one generator Adam update, non-saturating loss,
  Goodfellow et al. 2014), the compiled model through its ``training_step``;
* energy: ``ebm`` (contrastive divergence with 60 short-run Langevin steps from a replay buffer,
  Du & Mordatch 2019).

Each spec's networks are replaced by MLPs with ``--hidden`` widths.  Timing is that of
``vae_step.py``: interleaved repetitions in a rotating order, the garbage collector paused inside
a timed block; the table gives the median ms/step of each and the median of the per-repetition
ratios (wall and CPU time).

    OMP_NUM_THREADS=1 python benchmarks/family_step.py [--steps 20] [--reps 7] [--batch 256]
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from gendsl.data import load_dataset
from gendsl.lower import load
from gendsl.lower.flow_layers import ActNorm, AffineCoupling, Reverse

sys.path.insert(0, str(Path(__file__).resolve().parent))
from vae_step import SPEC as VAE_SPEC
from vae_step import time_loops, torch_loss

__all__ = ["FAMILIES", "main"]

Step = Callable[[int], None]


def _spec(name: str, nets: str) -> str:
    return f'import "stdlib/{name}.gen"\nmodel bench extends {name} {{\n{nets}\n}}'


def _adam_step(loss_fn: Callable[[], torch.Tensor], opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    loss_fn().backward()
    opt.step()


def _pair(model, hand_loss, hand_params, batches, lr=1e-3) -> tuple[Step, Step]:
    """The compiled ``model.loss`` and a hand-written loss, each one Adam step per call."""
    opt_c = torch.optim.Adam(model.parameters(), lr=lr)
    opt_h = torch.optim.Adam(hand_params, lr=lr)

    def compiled(i: int) -> None:
        _adam_step(lambda: model.loss(batches[i % len(batches)]), opt_c)

    def hand(i: int) -> None:
        _adam_step(lambda: hand_loss(batches[i % len(batches)]), opt_h)

    return compiled, hand


def latent(hidden: str, batch: int) -> tuple[Step, Step]:
    data = load_dataset("digits_binary").x
    model = load(VAE_SPEC, D=64)
    enc, dec = copy.deepcopy(model.nets["enc"]), copy.deepcopy(model.nets["dec"])
    batches = _batches(data, batch)
    return _pair(
        model, lambda x: torch_loss(enc, dec, x), [*enc.parameters(), *dec.parameters()], batches
    )


def diffusion(hidden: str, batch: int) -> tuple[Step, Step]:
    model = load(_spec("ddpm", f"  net eps = MLP(hidden = [{hidden}], time = sinusoidal)"), D=2)
    net = copy.deepcopy(model.nets["eps"])
    abar = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0).float()

    def loss(x: torch.Tensor) -> torch.Tensor:
        k = torch.randint(1, 1001, (x.shape[0],))
        eps = torch.randn_like(x)
        a = abar[k - 1][:, None]
        x_k = a.sqrt() * x + (1 - a).sqrt() * eps
        return (net(x_k, t=k.float() / 1000) - eps).pow(2).sum(1).mean()

    return _pair(model, loss, list(net.parameters()), _moons(batch))


def matching(hidden: str, batch: int) -> tuple[Step, Step]:
    model = load(_spec("flow_matching", f"  net v = MLP(hidden = [{hidden}], time = concat)"), D=2)
    net = copy.deepcopy(model.nets["v"])
    eps = 1e-4

    def loss(x1: torch.Tensor) -> torch.Tensor:
        x0 = torch.randn_like(x1)
        t = eps + (1 - 2 * eps) * torch.rand(x1.shape[0])
        x_t = (1 - (1 - 1e-3) * t[:, None]) * x0 + t[:, None] * x1
        return (net(x_t, t=t) - (x1 - (1 - 1e-3) * x0)).pow(2).sum(1).mean()

    return _pair(model, loss, list(net.parameters()), _moons(batch))


def flow(hidden: str, batch: int) -> tuple[Step, Step]:
    text = """
model bench {
  data x : real[D]
  latent z : real[D]
  z ~ Normal(0, 1)
  flow f {
    repeat 8 {
      affine_coupling(mask = alternate, net = MLP(hidden = [HIDDEN]))
      actnorm
      reverse
    }
  }
  x = f(z)
  loss nll
}
""".replace("HIDDEN", hidden)
    model = load(text, D=2)
    batches = _moons(batch)
    model.loss(batches[0])  # actnorm's data-dependent initialisation, before the copy
    layers = copy.deepcopy(model.flow.layers)
    log_2pi = math.log(2 * math.pi)

    def loss(x: torch.Tensor) -> torch.Tensor:
        ladj = x.new_zeros(x.shape[0])
        for layer in layers:
            if isinstance(layer, AffineCoupling):
                b = layer.mask
                h = layer.net(x * b)
                s = layer.scale * torch.tanh(h[:, 0]) * (1 - b)
                x = x * torch.exp(s) + h[:, 1] * (1 - b)
                ladj = ladj + s.sum(1)
            elif isinstance(layer, ActNorm):
                x = x * torch.exp(layer.log_s) + layer.bias
                ladj = ladj + layer.log_s.sum()
            elif isinstance(layer, Reverse):
                x = x.flip(1)
            else:
                raise TypeError(f"unexpected layer {type(layer).__name__}")
        log_pz = -0.5 * (x.pow(2).sum(1) + x.shape[1] * log_2pi)
        return -(log_pz + ladj).mean()

    return _pair(model, loss, list(layers.parameters()), batches)


def adversarial(hidden: str, batch: int) -> tuple[Step, Step]:
    nets = f"  net G = MLP(hidden = [{hidden}])\n  net D = MLP(hidden = [{hidden}])"
    model = load(_spec("gan", nets), D=2)
    G, D = copy.deepcopy(model.nets["G"]), copy.deepcopy(model.nets["D"])
    kw = {"lr": 2e-4, "betas": (0.5, 0.999)}
    opts = {k: torch.optim.Adam(p, **kw) for k, p in model.param_groups().items()}
    opt_d, opt_g = torch.optim.Adam(D.parameters(), **kw), torch.optim.Adam(G.parameters(), **kw)
    batches = _moons(batch)

    def compiled(i: int) -> None:
        model.training_step(batches[i % len(batches)], i, opts)

    def hand(i: int) -> None:
        x = batches[i % len(batches)]
        with torch.no_grad():
            fake = G(torch.randn(x.shape[0], 8))
        _adam_step(lambda: F.softplus(-D(x)).mean() + F.softplus(D(fake)).mean(), opt_d)
        _adam_step(lambda: F.softplus(-D(G(torch.randn(x.shape[0], 8)))).mean(), opt_g)

    return compiled, hand


def energy(hidden: str, batch: int) -> tuple[Step, Step]:
    model = load(_spec("ebm", f"  net E = MLP(hidden = [{hidden}])"), D=2)
    E = copy.deepcopy(model.nets["E"])
    replay = model.replay.clone()
    box = model.noise_box

    def langevin(x: torch.Tensor) -> torch.Tensor:
        x = x.detach().clone()
        for _ in range(60):
            x.requires_grad_(True)
            (grad,) = torch.autograd.grad(E(x).sum(), x)
            x = (x - 0.01 * grad + 0.005 * torch.randn_like(x)).detach()
        return x

    def loss(x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        idx = torch.randint(replay.shape[0], (n,))
        fresh = torch.rand(n) < 0.05
        start = torch.where(fresh[:, None], box * (2 * torch.rand(n, 2) - 1), replay[idx])
        x_neg = langevin(start)
        replay[idx] = x_neg
        return E(x).mean() - E(x_neg).mean()

    return _pair(model, loss, list(E.parameters()), _moons(batch), lr=1e-4)


FAMILIES: dict[str, Callable[[str, int], tuple[Step, Step]]] = {
    "latent": latent,
    "diffusion": diffusion,
    "matching": matching,
    "flow": flow,
    "adversarial": adversarial,
    "energy": energy,
}


def _batches(data: torch.Tensor, batch: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [data[torch.randint(len(data), (batch,), generator=g)] for _ in range(8)]


def _moons(batch: int) -> list[torch.Tensor]:
    return _batches(load_dataset("moons", split="train", n=20000).x.float(), batch)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--hidden", default="64,64")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"command: python benchmarks/family_step.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"torch {torch.__version__}, cpu, {args.threads} thread(s), batch {args.batch}, MLP "
          f"hidden [{args.hidden}], {args.steps} steps x {args.reps} repetitions\n")  # fmt: skip
    print("| family | gendsl ms/step | hand-written ms/step | ratio (wall) | ratio (cpu) |")
    print("|---|---|---|---|---|", flush=True)
    for name in args.families.split(","):
        torch.manual_seed(0)
        compiled, hand = FAMILIES[name](args.hidden, args.batch)
        times = time_loops(
            {"gendsl": compiled, "hand": hand}, steps=args.steps, reps=args.reps, sync=lambda: None
        )
        ratio = {
            clock: statistics.median(
                a / b for a, b in zip(times["gendsl"][clock], times["hand"][clock], strict=True)
            )
            for clock in ("wall", "cpu")
        }
        ms = [1e3 * statistics.median(times[k]["cpu"]) for k in ("gendsl", "hand")]
        print(f"| {name} | {ms[0]:.3f} | {ms[1]:.3f} | {ratio['wall']:.3f} | "
              f"{ratio['cpu']:.3f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
