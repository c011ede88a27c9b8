"""``train { compile = true }`` / ``--compile``: the training step under ``torch.compile``.

What is compiled is the model's loss (the forward pass; AOTAutograd derives the backward pass)
for the one-optimiser families, and the model's ``training_step`` for the several-optimiser
ones (dynamo splits it at each ``backward()`` and optimiser step and compiles the pieces).
Shapes are dynamic (``dynamic=True``: one graph for every batch size; random draws take symbolic
sizes, see :mod:`gendsl.objectives.draws`), except on CUDA with a fixed batch, where the step is
compiled for that shape with CUDA graphs (``mode="reduce-overhead"``), which removes the launch
overhead of small networks.

The backend is TorchInductor by default (it generates C++ on the CPU, so it needs a C++
compiler; Triton kernels on CUDA); ``compile`` may name another dynamo backend, e.g.
``"aot_eager"`` (tracing and autograd without code generation, which the tests use).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

import torch
import torch._functorch.config as functorch_config

from gendsl.errors import UsageError
from gendsl.objectives.eager import arm

__all__ = ["BACKENDS", "compile_step", "resolve_backend"]

#: dynamo backends a run may name; True means "inductor"
BACKENDS = ("inductor", "aot_eager", "eager")


def resolve_backend(compile: bool | str, device: torch.device) -> str | None:
    """The backend of ``compile`` (None: not compiled).

    :raises UsageError: an unknown backend, or inductor on the CPU without a C++ compiler.
    """
    if compile is False or compile is None:
        return None
    backend = "inductor" if compile is True else compile
    if backend not in BACKENDS:
        raise UsageError(
            f"compile must be true, false or one of {', '.join(BACKENDS)}, got {compile!r}"
        )
    if (
        backend == "inductor"
        and device.type == "cpu"
        and not shutil.which("g++")
        and not (shutil.which("clang++") or shutil.which("c++"))
    ):
        raise UsageError(
            "compile = true on the CPU needs a C++ compiler (g++ or clang++) for TorchInductor; "
            "install one, or train without --compile"
        )
    if device.type == "mps" and backend == "inductor":
        raise UsageError("compile = true is not supported on MPS; train without --compile")
    return backend


def compile_step(
    fn: Callable, *, backend: str, device: torch.device, cuda_graphs: bool = False
) -> Callable:
    """``fn`` under ``torch.compile``: dynamic shapes, or, when ``cuda_graphs`` (a fixed batch
    and a loss without optimiser steps inside) on CUDA with inductor, CUDA graphs.

    Losses that differentiate twice (gradient penalties, score matching, FFJORD's trace
    estimator) call ``backward(create_graph=True)`` inside the compiled graph, which AOTAutograd's
    donated buffers forbid; they are switched off for the process (a small memory cost).
    """
    functorch_config.donated_buffer = False
    arm()
    if device.type == "cuda" and cuda_graphs and backend == "inductor":
        return torch.compile(fn, backend=backend, mode="reduce-overhead", dynamic=False)
    return torch.compile(fn, backend=backend, dynamic=True)
