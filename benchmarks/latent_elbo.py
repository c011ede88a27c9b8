"""Held-out ELBO of latent-variable models on binarised digits, trained with ``gendsl.train.fit``.

Trains vae, beta_vae, iwae and hvae (Bernoulli decoders on the 64 binarised pixels) and a vqvae
(reconstruction of the binarised pixels), then prints per model the held-out ELBO in nats
(the IWAE bound L_64 too) — for the vqvae the reconstruction NLL and code perplexity.

    python benchmarks/latent_elbo.py [--steps 3000] [--batch 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from gendsl.data import load_dataset
from gendsl.lower import load
from gendsl.train.loop import fit

HEAD = """
  data x : binary[D]
  net enc = MLP(hidden = [128])
  net dec = MLP(hidden = [128])
"""
FLAT = (
    HEAD
    + """
  latent z : real[8]
  z ~ Normal(0, 1)
  x | z ~ Bernoulli(logits = dec(z))
  guide { z | x ~ Normal(enc(x)) }
"""
)
SPECS = {
    "vae": f"model vae {{ {FLAT} loss elbo }}",
    "beta_vae": f"model beta_vae {{ {FLAT} loss elbo(beta = 4) }}",
    "iwae": f"model iwae {{ {FLAT} loss iwae(k = 8) }}",
    "hvae": """model hvae {"""
    + HEAD
    + """
  latent z2 : real[4]
  latent z1 : real[8]
  net top = MLP(hidden = [64])
  net enc2 = MLP(hidden = [64])
  z2 ~ Normal(0, 1)
  z1 | z2 ~ Normal(top(z2))
  x | z1 ~ Bernoulli(logits = dec(z1))
  guide {
    z2 | x ~ Normal(enc2(x))
    z1 | x, z2 ~ Normal(enc(x, z2))
  }
  loss elbo
}""",
    "vqvae": """model vqvae {"""
    + HEAD
    + """
  latent e : code[K = 32, dim = 8]
  e = quantize(enc(x))
  x | e ~ Bernoulli(logits = dec(e))
  loss vq(commitment = 0.25, codebook = ema(decay = 0.99))
}""",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", default=",".join(SPECS))
    args = parser.parse_args()
    torch.set_num_threads(1)
    train = load_dataset("digits_binary", split="train")
    test = load_dataset("digits_binary", split="test").x.to(args.device)
    print(
        f"command: python benchmarks/latent_elbo.py --steps {args.steps} --batch {args.batch} "
        f"--lr {args.lr} --device {args.device} --models {args.models}"
    )
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = load(SPECS[name], data=train)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as out:
            fit(
                model,
                train.x,
                steps=args.steps,
                batch_size=args.batch,
                lr=args.lr,
                out_dir=out,
                device=args.device,
                ema=None,
                progress=False,
                eval_every=10**9,
                checkpoint_every=10**9,
            )
        seconds = time.perf_counter() - start
        model.eval()
        with torch.no_grad():
            torch.manual_seed(1)
            if name == "vqvae":
                d = model.diagnostics(test)
                result = f"recon NLL {d['nll']:.2f} nats, perplexity {d['perplexity']:.1f}"
            else:
                elbo = float(model.elbo(test).mean())
                iwae = float(model.iwae(test, 64).mean())
                result = f"ELBO {elbo:.2f} nats, L_64 {iwae:.2f} nats"
        print(f"{name:9s} held-out {result}   ({seconds:.0f} s)")


if __name__ == "__main__":
    main()
