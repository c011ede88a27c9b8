"""The bundled fontdigits set: its statistics, its generation time, and what real images score.

Prints two tables: per split the number of images, images per class, pixel mean and standard
deviation and the share of pixels above 0.5; then fontdigits-FD, fontdigits-IS (± standard error)
and precision/recall of real images against real images at the sample sizes worth comparing with
(`gendsl eval` uses n = 1000). Also the time to generate the set and to train the classifier
(each from an empty cache folder, so run it with a fresh ``GENDSL_CACHE`` to time them).

    OMP_NUM_THREADS=1 GENDSL_CACHE=$(mktemp -d) python benchmarks/fontdigits_reference.py
"""

from __future__ import annotations

import os
import time

import torch

from gendsl.data import load_dataset
from gendsl.data.fontdigits import fonts_used
from gendsl.metrics import fontdigits_scores
from gendsl.metrics.fontdigits_metrics import fontdigits_classifier


def main() -> None:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.perf_counter()
    train, test = load_dataset("fontdigits"), load_dataset("fontdigits", split="test")
    generated = time.perf_counter() - start
    print(f"fontdigits: {len(fonts_used())} fonts; loaded or generated in {generated:.1f} s\n")
    print("| split | images | per class | mean | std | pixels > 0.5 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, data in (("train", train), ("test", test)):
        x = data.x.double() / 255
        counts = sorted(set(torch.bincount(data.y).tolist()))
        print(
            f"| {name} | {len(data)} | {'/'.join(map(str, counts))} | {float(x.mean()):.4f} | "
            f"{float(x.std()):.4f} | {float((x > 0.5).double().mean()):.1%} |"
        )
    start = time.perf_counter()
    model = fontdigits_classifier()
    with torch.no_grad():
        accuracy = float((model(test.x).argmax(1) == test.y).double().mean())
    trained = time.perf_counter() - start
    print(f"\nclassifier: test accuracy {accuracy:.2%}; loaded or trained in {trained:.1f} s\n")
    print("| real vs real | fontdigits-FD | fontdigits-IS | precision | recall |")
    print("|---|---:|---:|---:|---:|")
    for label, fake, reference in (
        ("train[:1000] vs test[:1000]", train.x[:1000], test.x[:1000]),
        ("test[:5000] vs test[5000:]", test.x[:5000], test.x[5000:]),
        ("train[:10000] vs test (10000)", train.x[:10000], test.x),
    ):
        s = fontdigits_scores(fake, reference=reference)
        print(
            f"| {label} | {s['fontdigits_fd']:.2f} | {s['fontdigits_is']:.2f} ± "
            f"{s['fontdigits_is_stderr']:.2f} | {s['fontdigits_precision']:.3f} | "
            f"{s['fontdigits_recall']:.3f} |"
        )


if __name__ == "__main__":
    main()
