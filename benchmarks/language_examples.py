"""The language's newer examples, each trained from the command line beside its plain baseline
(same data, same steps, same run), scored by what the example is for:

- ``gmm_prior_vae`` (a mixture-of-Gaussians prior) against the same VAE with p(z) = N(0, I):
  held-out ELBO and the importance-weighted bound L_64 (Burda et al. 2016), nats per digit;
- ``nvae_residual_digits`` (NVAE's residual normal cells) against ``hvae_digits`` (the same
  hierarchical VAE without them): held-out ELBO and L_64;
- ``vqvae2_fontdigits`` (two code levels) against ``vqvae_fontdigits`` (one): reconstruction NLL
  of the test digits under the Gaussian likelihood of scale 0.1 both declare (nats per image),
  fontdigits-FD and -IS of samples drawn from the learned PixelCNN priors;
- ``cgan_digits`` (projection discriminator): class agreement of samples with the labels they
  were drawn for, per the bundled digits classifier (as ``gendsl eval`` reports it), and
  digits-FD; against the same GAN with the label removed (chance: 0.1) and the real test
  digits (the ceiling);
- ``conditional_ebm_digits`` (JEM): test accuracy of its classifier p(y | x) = softmax f(x)
  (the digits classifier's accuracy, in the real-digits row, is the reference), and class
  agreement and digits-FD of its Langevin samples.

FD is biased upward at small n; the rows of real data (training against test images) are what a
perfect model scores at the same n.  Grids of 64 samples of the VQ-VAEs, GANs and the JEM
(label = column index mod 10 for the conditional models) are written to ``--out``.
``--fraction f`` trains every model f times its budget (``STEPS``), ``--only`` picks examples.

    OMP_NUM_THREADS=1 python benchmarks/language_examples.py
    OMP_NUM_THREADS=1 python benchmarks/language_examples.py --fraction 0.1 --only cgan_digits
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch
from images import sample_quality, save_grid, selected
from torch import Tensor

from gendsl.cli import main as cli
from gendsl.data import Dataset, as_float, load_dataset
from gendsl.lower.base import Model
from gendsl.metrics import digits_classifier, digits_fd
from gendsl.resources import stdlib_dir
from gendsl.run_eval import evaluate
from gendsl.run_sampling import draw
from gendsl.runs import open_run

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

#: Training steps per example (its baseline gets the same): the spec's own ``steps`` where the
#: whole run stays under 15 minutes with one thread on a shared machine; fewer for the two
#: convolutional VQ-VAEs on 28x28 images.
STEPS = {
    "gmm_prior_vae": 3000,
    "nvae_residual_digits": 3000,
    "vqvae2_fontdigits": 300,
    "cgan_digits": 2000,
    "conditional_ebm_digits": 1000,
}


def _replace(text: str, pattern: str, new: str) -> str:
    """``text`` with the one match of regex ``pattern`` replaced (a baseline edits its example)."""
    out, count = re.subn(pattern, new, text)
    if count != 1:
        raise RuntimeError(f"expected one match of {pattern!r}, found {count}")
    return out


def normal_prior_vae() -> str:
    """examples/gmm_prior_vae.gen with the standard Normal prior in place of the mixture."""
    text = (EXAMPLES / "gmm_prior_vae.gen").read_text()
    text = _replace(text, r"model gmm_prior_vae", "model normal_prior_vae")
    return _replace(text, r"z ~ GaussianMixture\(.*\)", "z ~ Normal(0, 1)")


def unconditional_gan() -> str:
    """stdlib/cgan.gen (which examples/cgan_digits.gen extends) without its label: G(z), an
    unprojected spectrally normalised critic D(x), the same hinge loss and optimiser."""
    text = (stdlib_dir() / "cgan.gen").read_text()
    text = _replace(text, r"model cgan", "model gan_digits")
    text = _replace(text, r"  condition y : label\[K\]\n", "")
    text = _replace(text, r"(?m)^  x = G\(z, y\).*", "  x = G(z)")
    text = _replace(text, r"(?m)^  critic D\(x, y\).*", "  critic D")
    return _replace(text, r", projection = true", "")


@dataclass(frozen=True)
class Entry:
    """One trained model of the table: its row label, spec (a path, or a function writing the
    text), data set, and how it is scored."""

    label: str
    spec: Path | Callable[[], str]
    data: str
    score: Callable[[Model, Dataset, argparse.Namespace, Path], dict[str, str]]


HEADER = ["model", "data", "steps", "train s", "ELBO", "L_64", "recon NLL"]
HEADER += ["FD", "IS", "class agreement", "test accuracy"]


def latent_bounds(model: Model, test: Dataset, args, grid: Path) -> dict[str, str]:
    """Held-out ELBO and L_64 (nats per data point), as benchmarks/latent_elbo.py reports."""
    x = as_float(test.x)
    with torch.no_grad():
        torch.manual_seed(args.seed)
        elbo = float(model.elbo(x).mean())
        l64 = float(model.iwae(x, 64).mean())
    return {"ELBO": f"{elbo:.2f}", "L_64": f"{l64:.2f}"}


def vq_quality(model: Model, test: Dataset, args, grid: Path) -> dict[str, str]:
    """Reconstruction NLL of ``--n`` test images and fontdigits-FD/IS of ``--n`` samples."""
    x = as_float(test.x[: args.n])
    nll = sum(float(model.diagnostics(part)["nll"]) * len(part) for part in x.split(250))
    samples = torch.cat(
        [draw(model, len(part), seed=args.seed + i) for i, part in enumerate(x.split(250))]
    )
    save_grid(samples, grid)
    fd, inception, *_ = sample_quality(samples, x)
    return {"recon NLL": f"{nll / len(x):.1f}", "FD": fd, "IS": inception}


def _grid_of_classes(model: Model, grid: Path, seed: int) -> None:
    """64 samples, the i-th drawn for label i mod 10, as an 8x8 grid of 8x8 digits."""
    labels = torch.arange(64) % 10
    conditions = {"y": labels} if model.checked.condition_vars() else None
    samples = draw(model, 64, seed=seed, conditions=conditions)
    save_grid(samples.reshape(64, 1, 8, 8), grid, scale=4)


def conditional_quality(model: Model, test: Dataset, args, grid: Path) -> dict[str, str]:
    """``gendsl eval``'s class agreement and digits-FD of samples drawn for the test labels;
    for a JEM energy also the accuracy of its classifier p(y | x) on the test digits."""
    results = evaluate(model, test, n=len(test.x), seed=args.seed)
    _grid_of_classes(model, grid, args.seed)
    row = {"FD": f"{results['digits_fd']:.2f}"}
    row["class agreement"] = f"{results['class_agreement']:.3f}"
    if hasattr(model, "class_log_probs"):
        with torch.no_grad():
            said = model.class_log_probs(as_float(test.x)).argmax(-1)
        row["test accuracy"] = f"{float((said == test.y).float().mean()):.3f}"
    return row


def agreement(samples: Tensor, labels: Tensor) -> float:
    """Share of ``samples`` the digits classifier names as ``labels`` (as ``gendsl eval``)."""
    with torch.no_grad():
        said = digits_classifier()(samples.reshape(len(samples), 64).float().clamp(0, 1))
    return float((said.argmax(-1) == labels).float().mean())


def unconditional_quality(model: Model, test: Dataset, args, grid: Path) -> dict[str, str]:
    """An unconditional model's samples against the test labels (chance) and digits-FD."""
    samples = draw(model, len(test.x), seed=args.seed)
    _grid_of_classes(model, grid, args.seed)
    real = as_float(test.x)
    return {
        "FD": f"{digits_fd(samples.clamp(0, 1), reference=real):.2f}",
        "class agreement": f"{agreement(samples, test.y):.3f}",
    }


def real_digits_row(args) -> list[str]:
    """The ceiling: ``len(test)`` training digits scored like samples against the test digits,
    and the digits classifier's accuracy on the test digits."""
    train = load_dataset("digits", split="train")
    test = load_dataset("digits", split="test")
    pick = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(args.seed))
    real = as_float(train.x[pick[: len(test.x)]])
    fd = digits_fd(real, reference=as_float(test.x))
    accuracy = agreement(as_float(test.x), test.y)
    cells = {
        "FD": f"{fd:.2f}",
        "class agreement": f"{accuracy:.3f}",
        "test accuracy": f"{accuracy:.3f}",
    }
    return _row("real digits (classifier on test split)", "digits", "-", "-", cells)


def real_fontdigits_row(args) -> list[str]:
    """``--n`` training images scored like samples against ``--n`` test images."""
    train = load_dataset("fontdigits", split="train")
    test = as_float(load_dataset("fontdigits", split="test").x[: args.n])
    pick = torch.randperm(len(train.x), generator=torch.Generator().manual_seed(args.seed))
    fd, inception, *_ = sample_quality(as_float(train.x[pick[: args.n]]), test)
    return _row(
        "real fontdigits (training images)", "fontdigits", "-", "-", {"FD": fd, "IS": inception}
    )


#: Per example, the example and its baseline (the JEM's reference is the real-digits row).
ENTRIES = {
    "gmm_prior_vae": [
        Entry("gmm_prior_vae", EXAMPLES / "gmm_prior_vae.gen", "digits_binary", latent_bounds),
        Entry("VAE, N(0, I) prior", normal_prior_vae, "digits_binary", latent_bounds),
    ],
    "nvae_residual_digits": [
        Entry(
            "nvae_residual_digits", EXAMPLES / "nvae_residual_digits.gen", "digits", latent_bounds
        ),
        Entry(
            "hvae_digits (no residual cells)",
            EXAMPLES / "hvae_digits.gen",
            "digits",
            latent_bounds,
        ),
    ],
    "vqvae2_fontdigits": [
        Entry("vqvae2_fontdigits", EXAMPLES / "vqvae2_fontdigits.gen", "fontdigits", vq_quality),
        Entry(
            "vqvae_fontdigits (one level)",
            EXAMPLES / "vqvae_fontdigits.gen",
            "fontdigits",
            vq_quality,
        ),
    ],
    "cgan_digits": [
        Entry("cgan_digits", EXAMPLES / "cgan_digits.gen", "digits", conditional_quality),
        Entry("GAN without the label", unconditional_gan, "digits", unconditional_quality),
    ],
    "conditional_ebm_digits": [
        Entry(
            "conditional_ebm_digits",
            EXAMPLES / "conditional_ebm_digits.gen",
            "digits",
            conditional_quality,
        ),
    ],
}


def _row(label: str, data: str, steps: str, seconds: str, cells: dict[str, str]) -> list[str]:
    return [label, data, steps, seconds, *(cells.get(h, "-") for h in HEADER[4:])]


def train_and_score(entry: Entry, steps: int, test: Dataset, args, work: Path) -> list[str]:
    """Train ``entry`` with ``gendsl train`` for ``steps`` steps, then score the trained run."""
    name = re.sub(r"\W+", "_", entry.label).strip("_")
    spec = entry.spec
    if not isinstance(spec, Path):
        spec = work / f"{name}.gen"
        spec.write_text(entry.spec())
    run = work / name
    argv = ["train", str(spec), "--data", entry.data, "--out", str(run), "--no-progress"]
    argv += ["--steps", str(steps), "--eval-every", str(steps), "--seed", str(args.seed)]
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        if cli(argv) != 0:
            raise RuntimeError(f"gendsl {' '.join(argv)} failed")
    seconds = time.perf_counter() - t0
    model, _ = open_run(run, device="cpu")
    cells = entry.score(model, test, args, args.out / f"{name}.png")
    return _row(entry.label, entry.data, str(steps), f"{seconds:.0f}", cells)


def _print_row(row: list[str]) -> None:
    print("| " + " | ".join(row) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fraction", type=float, default=1.0, help="train each model this share of its budget"
    )
    parser.add_argument("--only", nargs="*", default=None, help="examples to run (file stems)")
    parser.add_argument("--n", type=int, default=500, help="fontdigits samples and test images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/bench_language_examples"))
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    args.out.mkdir(parents=True, exist_ok=True)
    names = selected(args.only, STEPS)
    print(f"CPU, {torch.get_num_threads()} thread(s); sample grids in {args.out}")
    print("| " + " | ".join(HEADER) + " |")
    print("|" + " --- |" * len(HEADER))
    if {"cgan_digits", "conditional_ebm_digits"} & set(names):
        _print_row(real_digits_row(args))
    if "vqvae2_fontdigits" in names:
        _print_row(real_fontdigits_row(args))
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            steps = max(1, round(args.fraction * STEPS[name]))
            for entry in ENTRIES[name]:
                test = load_dataset(entry.data, split="test")
                _print_row(train_and_score(entry, steps, test, args, Path(tmp)))
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
