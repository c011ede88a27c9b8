"""Write the 8x8 digits with caption embeddings as an .npz for examples/cross_attention_cfg.gen:

    python examples/digit_captions.py digit_captions.npz [--dim 16]

Each image gets a procedurally generated caption ("a handwritten seven", "the digit seven",
"a digit 7", "seven") encoded by a fixed word-embedding table (gendsl.data.captions).  To use
CLIP instead, save your own embeddings the same way: np.savez(path, x=images, c=clip_tokens)
with clip_tokens of shape [n, 77, 768] and declare 'condition c : real[L, E]'.
"""

from __future__ import annotations

import argparse

from gendsl.data import load_dataset
from gendsl.data.captions import caption_embeddings, write_conditioned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--dim", type=int, default=16, help="embedding size E")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    digits = load_dataset("digits_image", split="all")
    y = digits.y.numpy()
    c = caption_embeddings(y, dim=args.dim, seed=args.seed)
    print(write_conditioned(args.out, digits.x.numpy(), c, y))


if __name__ == "__main__":
    main()
