"""The spatial sizes of stride-2 convolution stages: one set of formulas, read by the checker
(:mod:`gendsl.analysis.shapes`, without torch) and by the networks (:mod:`gendsl.nn.conv`).

An encoder stage is a convolution of odd kernel k, padding k // 2 and stride 2, so an n-pixel
axis becomes ⌊(n − 1) / 2⌋ + 1 = ⌈n / 2⌉ pixels: an odd size is padded, as the reference
implementations do (28 → 14 → 7 → 4).  A decoder stage mirrors it: a 4×4 stride-2 transposed
convolution doubles an axis, or gives 2n − 1 where the encoder rounded up (see
:func:`transposed_padding`), so a decoder maps the encoder's grid back to the exact image size.
"""

from __future__ import annotations

__all__ = [
    "Size",
    "halved",
    "halvings",
    "size_chain",
    "stride_stages",
    "transposed_padding",
]

Size = tuple[int, int]


def halved(size: Size, k: int) -> Size:
    """The size after ``k`` stride-2 stages: ⌈n / 2^k⌉ per axis (⌈⌈n/2⌉/2⌉ = ⌈n/4⌉)."""
    return (-(-size[0] // 2**k), -(-size[1] // 2**k))


def halvings(size: Size, target: Size, limit: int) -> int | None:
    """The fewest stages k ≤ ``limit`` with :func:`halved` (size, k) = target, or ``None``."""
    for k in range(limit + 1):
        if halved(size, k) == tuple(target):
            return k
    return None


def size_chain(size: Size, k: int) -> list[Size]:
    """``[size, halved(size, 1), ..., halved(size, k)]``: the grid after each encoder stage,
    read backwards the grid after each decoder stage."""
    return [halved(size, i) for i in range(k + 1)]


def stride_stages(
    size: Size, out: Size, limit: int, declared: int | None, *, transpose: bool
) -> int:
    """The stride-2 stages of a network from grid ``size`` to grid ``out`` (an encoder halves,
    a ``transpose``-d one doubles): ``declared`` (its ``down`` or ``up``) when given, else the
    fewest that reach it, at most ``limit``; a ``ValueError`` says why none does."""
    big, small = (out, size) if transpose else (size, out)
    if declared is None:
        k = halvings(big, small, limit)
        if k is None:
            kind = "stride-2 transposed stages" if transpose else "stride-2 stages"
            raise ValueError(
                f"cannot map spatial size {size} to {out} with at most {limit} {kind} "
                "(one per width in channels)"
            )
        return k
    if halved(big, declared) != tuple(small):
        if transpose:
            raise ValueError(
                f"up = {declared} maps spatial size {halved(out, declared)} to {out}, "
                f"but the input is {size}"
            )
        raise ValueError(
            f"down = {declared} maps spatial size {size} to {halved(size, declared)}, not {out}"
        )
    return declared


def transposed_padding(n: int, target: int) -> tuple[int, int]:
    """(padding, output_padding) of a kernel-4 stride-2 transposed convolution from ``n`` to
    ``target`` pixels along one axis: out = 2(n − 1) − 2p + 4 + q, so (1, 0) gives 2n and
    (2, 1) gives 2n − 1 (the full 2n + 2 outputs less two at the start and one at the end)."""
    if target == 2 * n:
        return 1, 0
    if target == 2 * n - 1:
        return 2, 1
    raise ValueError(
        f"a stride-2 transposed convolution maps {n} pixels to 2n or 2n - 1, not {target}"
    )
