"""Latent diffusion against pixel-space diffusion at equal compute, on the bundled 28x28
``fontdigits`` (CPU).

1. The autoencoder: ``examples/vqvae_fontdigits.gen`` (a 7x7 grid of 8-d codes, 64 entries)
   trained for ``--ae-steps``; its reconstructions D(E(x)) of the ``--n`` training images of
   the first row are what a perfect model of its latent samples (the best FD it can reach).
2. ``examples/latent_diffusion.gen`` (a VP SDE over the VQ-VAE's 8x7x7 latent) and
   ``examples/vp_sde_fontdigits_unet.gen`` (the same SDE over the 1x28x28 pixels, the DDPM
   UNet) each trained for ``--budget`` seconds of process CPU time: the number of steps is the
   budget over the CPU seconds per step of a short probe run, so a cheaper step buys more steps
   (the autoencoder's own training is not counted: it is trained once and reused).
3. fontdigits-FD, fontdigits-IS (± standard error over 10 splits) and precision/recall of
   ``--n`` samples of each (and of the VQ-VAE's own PixelCNN-prior samples, and of real
   training images: the floor at this ``--n``) against ``--n`` test images.

    OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py             # ~30 min on one core
    OMP_NUM_THREADS=1 python benchmarks/latent_diffusion.py --ae-steps 50 --budget 20 --n 100

Rombach et al. 2022, "High-Resolution Image Synthesis with Latent Diffusion Models", CVPR.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from images import EXAMPLES, sample_quality, save_grid

from gendsl.analysis import load_checked
from gendsl.data import load_dataset
from gendsl.data.dataset import as_float
from gendsl.lower import compile_model
from gendsl.lower.latent_space import decode, encode
from gendsl.runs import train_settings
from gendsl.train import fit

HEADER = ["model", "steps", "CPU s", "CPU s/step", "sample s", "FD", "IS", "prec", "recall"]


def _row(cells: list[str]) -> None:
    print("| " + " | ".join(cells) + " |", flush=True)


def _fit(model, checked, data, steps: int, args) -> tuple[float, object]:
    """Train ``steps`` steps; the process CPU seconds it took and the result."""
    flags = argparse.Namespace(steps=steps, batch_size=None, lr=None, eval_every=None)
    settings = train_settings(checked, flags)
    settings["eval_every"] = settings["log_every"] = settings["checkpoint_every"] = steps
    t0 = time.process_time()
    with tempfile.TemporaryDirectory() as out:
        result = fit(model, data, out_dir=out, progress=False, device="cpu", **settings)
    return time.process_time() - t0, result


def _compiled(name: str, seed: int):
    checked = load_checked(str(EXAMPLES / f"{name}.gen"), None)
    torch.manual_seed(seed)
    return checked, compile_model(checked, bindings={})


def _sample(model, n: int, seed: int, batch: int = 250) -> tuple[torch.Tensor, float]:
    g = torch.Generator().manual_seed(seed)
    t0 = time.process_time()
    with torch.no_grad():
        parts = [model.sample(min(batch, n - i), generator=g) for i in range(0, n, batch)]
    return torch.cat(parts), time.process_time() - t0


def _budgeted(name: str, ae, data, args) -> list[str]:
    """Train ``name`` for the CPU budget (steps from a probe), sample, score."""
    checked, model = _compiled(name, args.seed)
    if ae is not None:
        model.use_autoencoder(ae)
    model.set_data_levels(256)
    probe, _ = _fit(model, checked, data, args.probe, args)
    steps = max(1, round(args.budget / (probe / args.probe)) - args.probe)
    seconds, result = _fit(model, checked, data, steps, args)
    if result.ema is not None:
        result.ema.copy_to(model)
    model.eval()
    samples, sample_s = _sample(model, args.n, args.seed)
    save_grid(samples, args.out / f"{name}.png")
    total, cpu = steps + args.probe, seconds + probe
    cells = [name, str(total), f"{cpu:.0f}", f"{cpu / total:.3f}", f"{sample_s:.0f}"]
    return [*cells, *sample_quality(samples, args.test)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ae-steps", type=int, default=1500)
    parser.add_argument("--budget", type=float, default=480.0, help="CPU seconds per model")
    parser.add_argument("--probe", type=int, default=10, help="steps of the probe run")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_latent_diffusion"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_dataset("fontdigits", split="train")
    args.test = as_float(load_dataset("fontdigits", split="test", n=args.n, seed=args.seed).x)
    print(
        f"fontdigits, CPU, {torch.get_num_threads()} thread(s), n = {args.n}, budget "
        f"{args.budget:.0f} CPU s per model, VQ-VAE {args.ae_steps} steps"
    )
    _row(HEADER)
    print("|" + " --- |" * len(HEADER))
    pick = torch.randperm(len(data.x), generator=torch.Generator().manual_seed(args.seed))
    real = as_float(data.x[pick[: args.n]])
    _row(["real training images", "-", "-", "-", "-", *sample_quality(real, args.test)])

    checked, ae = _compiled("vqvae_fontdigits", args.seed)
    ae.set_data_levels(256)
    ae_s, result = _fit(ae, checked, data.x, args.ae_steps, args)
    if result.ema is not None:
        result.ema.copy_to(ae)
    ae.eval()
    recon = decode(ae, encode(ae, real)).clamp(0, 1)  # of the training images scored above
    save_grid(recon, args.out / "vqvae_reconstructions.png")
    cells = [f"{args.ae_steps}", f"{ae_s:.0f}", f"{ae_s / args.ae_steps:.3f}"]
    _row(["VQ-VAE reconstructions of them", *cells, "-", *sample_quality(recon, args.test)])
    prior, prior_s = _sample(ae, args.n, args.seed)
    save_grid(prior, args.out / "vqvae_prior.png")
    scores = sample_quality(prior, args.test)
    _row(["VQ-VAE, PixelCNN prior samples", *cells, f"{prior_s:.0f}", *scores])
    _row(_budgeted("latent_diffusion", ae, data.x, args))
    _row(_budgeted("vp_sde_fontdigits_unet", None, data.x, args))


if __name__ == "__main__":
    main()
