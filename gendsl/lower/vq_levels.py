"""The code levels of a VQ-VAE: one per ``e = quantize(enc(...))`` of the spec, each with its
own codebook and its own prior over its grid of codes.  One level is the VQ-VAE of van den
Oord et al. 2017; two (a coarse top grid ``t`` and a finer bottom grid ``b`` whose encoder and
decoder see the top codes) are VQ-VAE-2 (Razavi et al. 2019, sec. 3.1–3.2).

Each level's loss is its codebook term (unless the codebook is an EMA), β_c times its
commitment term and its prior's NLL on the stop-gradient codes; a PixelCNN prior of a level
after the first is conditioned on the codes of the level before it (the bottom prior given
the top codes, Razavi et al. 2019, sec. 3.3).  Sampling draws every level's codes from its
prior, in the order the spec quantises them, each given the level before, and decodes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from gendsl.lower.expr import Compiled, Scope
from gendsl.objectives.code_prior import CodePrior
from gendsl.objectives.vq import VectorQuantizer, codebook_loss, commitment_loss, perplexity

__all__ = ["CodeLevel", "LevelTerms", "level_diagnostics", "level_terms", "quantizing"]


@dataclass(frozen=True)
class CodeLevel:
    """One quantised code ``name``: its codebook and the prior over its grid ``[*grid]``."""

    name: str
    quantizer: VectorQuantizer
    prior: CodePrior


@dataclass(frozen=True)
class LevelTerms:
    """A level's terms per data point after a run: ‖sg[z_e] − e‖², ‖z_e − sg[e]‖² and the code
    indices ``[B, *grid]``."""

    codebook: Tensor
    commitment: Tensor
    index: Tensor


def quantizing(quantizer: VectorQuantizer, operand: Compiled) -> Callable[[Scope], Tensor]:
    """The assignment ``e = quantize(enc(...))`` evaluated by this level's own codebook."""
    return lambda scope: quantizer(operand(scope))


def level_terms(level: CodeLevel) -> LevelTerms:
    """The terms of ``level`` from its quantizer's last call."""
    last = level.quantizer.last
    return LevelTerms(
        codebook_loss(last["z_e"], last["z_q"]),
        commitment_loss(last["z_e"], last["z_q"]),
        last["index"],
    )


def level_diagnostics(level: CodeLevel, terms: LevelTerms, suffix: str) -> dict[str, float]:
    """Codebook and commitment terms, code perplexity and usage of one level (keys end in
    ``suffix``)."""
    K = level.quantizer.K
    used = torch.unique(terms.index).numel()
    return {
        f"codebook{suffix}": float(terms.codebook.mean()),
        f"commitment{suffix}": float(terms.commitment.mean()),
        f"perplexity{suffix}": float(perplexity(terms.index, K)),
        f"codebook_usage{suffix}": used / K,
    }
