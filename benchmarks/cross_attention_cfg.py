"""Text-conditioned diffusion on the 8x8 digits: examples/cross_attention_cfg.gen trained on
caption embeddings (gendsl.data.captions), then sampled for each digit's caption at several
classifier-free guidance scales; the digits classifier (gendsl.metrics.digits_classifier)
says how often a sample shows the digit its caption names (chance: 0.10).

    OMP_NUM_THREADS=1 python benchmarks/cross_attention_cfg.py [--steps 1500] [--per-digit 20]

Prints one row per guidance scale: class agreement, and the mean entropy of the classifier's
prediction.  One training run; the scales are compared on the same model and the same noise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch

from gendsl.cli import main as cli
from gendsl.data import load_dataset
from gendsl.data.captions import caption_embeddings, write_conditioned
from gendsl.metrics import digits_classifier

SPEC = Path(__file__).resolve().parents[1] / "examples" / "cross_attention_cfg.gen"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--per-digit", type=int, default=20)
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0])
    args = parser.parse_args()
    torch.set_num_threads(1)
    root = Path(tempfile.mkdtemp(prefix="xattn-bench-"))
    digits = load_dataset("digits_image", split="train")
    y = digits.y.numpy()
    data = write_conditioned(root / "captions.npz", digits.x.numpy(), caption_embeddings(y), y)
    run = root / "run"
    train = ["train", str(SPEC), "--data", str(data), "--out", str(run), "--no-progress"]
    assert cli([*train, "--steps", str(args.steps)]) == 0
    classifier = digits_classifier()
    labels = np.repeat(np.arange(10), args.per_digit)
    prompts = root / "prompts.npy"
    np.save(prompts, caption_embeddings(labels, seed=1))
    print(f"\nsteps {args.steps}, {len(labels)} samples ({args.per_digit} per digit)")
    print("| guidance scale | class agreement | mean entropy (nats) |")
    print("|---|---|---|")
    for scale in args.scales:
        out = root / f"s{scale}.npy"
        argv = ["sample", str(run), "-n", str(len(labels)), "--seed", "0", "--out", str(out)]
        argv += ["--condition", f"c={prompts}", "--guidance-scale", str(scale)]
        assert cli(argv) == 0
        x = torch.from_numpy(np.load(out)).float().clamp(0, 1).reshape(len(labels), -1)
        with torch.no_grad():
            p = torch.softmax(classifier(x), dim=-1)
        agree = float((p.argmax(-1).numpy() == labels).mean())
        entropy = float(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
        print(f"| {scale:g} | {agree:.3f} | {entropy:.3f} |")


if __name__ == "__main__":
    main()
