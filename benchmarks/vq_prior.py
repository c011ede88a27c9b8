"""The VQ-VAE's prior over its 7x7 code grid, side by side: ``examples/vqvae_fontdigits.gen``
is trained once on ``fontdigits`` (its PixelCNN prior fitted to the codes with a
stop-gradient, so the autoencoder is the same as without it), then sampled with the uniform
prior and with the learned PixelCNN.  Columns: the prior's NLL of the test codes in nats per
grid (uniform: 49 log 64), and fontdigits-FD / IS / precision / recall of ``--n`` samples
against ``--n`` test images (:mod:`gendsl.metrics.fontdigits_metrics`); the first row is
``--n`` real training images.

    OMP_NUM_THREADS=1 python benchmarks/vq_prior.py --steps 1000 --n 500
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from gendsl.analysis import load_checked
from gendsl.data import load_dataset
from gendsl.data.dataset import as_float
from gendsl.lower import compile_model
from gendsl.metrics import fontdigits_scores
from gendsl.runs import train_settings
from gendsl.train import fit

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "vqvae_fontdigits.gen"


def _row(name: str, nll: str, samples: torch.Tensor, test: torch.Tensor) -> str:
    q = fontdigits_scores(samples, reference=test)
    return (
        f"| {name} | {nll} | {q['fontdigits_fd']:.2f} | {q['fontdigits_is']:.2f} ± "
        f"{q['fontdigits_is_stderr']:.2f} | {q['fontdigits_precision']:.2f} | "
        f"{q['fontdigits_recall']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = load_dataset("fontdigits", split="train")
    test = as_float(load_dataset("fontdigits", split="test", n=args.n).x)
    real = as_float(load_dataset("fontdigits", n=args.n).x)
    checked = load_checked(str(EXAMPLE), None)
    torch.manual_seed(args.seed)
    model = compile_model(checked, bindings={})
    if hasattr(model, "levels"):
        model.levels = data.levels
    flags = argparse.Namespace(steps=args.steps, batch_size=None, lr=None, eval_every=None)
    settings = train_settings(checked, flags)
    settings["eval_every"] = settings["log_every"] = settings["checkpoint_every"] = args.steps
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        fit(model, data.x, out_dir=Path(out), progress=False, device="cpu", **settings)
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        model.loss(test)
        codes = model.quantizer.last["index"]
        learned = float(-model.prior.log_prob(codes).mean())
        net, model.prior.net = model.prior.net, None
        uniform = float(-model.prior.log_prob(codes).mean())
        g = torch.Generator().manual_seed(args.seed)
        flat = model.sample(args.n, generator=g)
        model.prior.net = net
        g = torch.Generator().manual_seed(args.seed)
        pixel = model.sample(args.n, generator=g)
    print(f"vqvae_fontdigits: {args.steps} steps in {seconds:.0f} s, n = {args.n}\n")
    print("| samples | prior NLL of test codes (nats/grid) | FD | IS | precision | recall |")
    print("|---|---|---|---|---|---|")
    print(_row("real training images", "-", real, test))
    print(_row("uniform prior", f"{uniform:.1f}", flat, test))
    print(_row("PixelCNN prior", f"{learned:.1f}", pixel, test))


if __name__ == "__main__":
    main()
