"""Couplings of a flow-matching model: how a minibatch of source points x0 is paired with a
minibatch of data x1 before the conditional path between them is drawn.

A coupling is an object with one hook, :meth:`Coupling.pair`, which returns index tensors
``(i, j)``: the training pairs are ``(x0[i], x1[j])`` (and any condition of x1 travels with
``j``).  The plans are computed on the squared Euclidean cost C_ij = ‖x0_i − x1_j‖² of the
flattened points, in float64 on the CPU with POT (Flamary et al. 2021, "POT: Python Optimal
Transport", JMLR), then moved to the batch's device.

* ``independent``: π = p0 ⊗ p1, the pairs as drawn (Lipman et al. 2023).
* ``ot(exact)``: the exact minibatch OT plan; with equal batch sizes and uniform weights it is a
  permutation, which is used as it is (Pooladian et al. 2023, "Multisample Flow Matching",
  Sec. 3.2; Tong et al. 2024, "Improving and Generalizing Flow-Based Generative Models with
  Minibatch Optimal Transport", Alg. 3).
* ``ot(sinkhorn, reg = ε)``: the entropic plan of ``ot.sinkhorn``, pairs drawn from it.
* ``schrodinger(sigma = σ)``: the entropic plan with ε = 2σ², the static Schrödinger bridge
  between the minibatches for Brownian motion of variance σ² (Tong et al. 2024, "Simulation-Free
  Schrödinger Bridges via Score and Flow Matching", AISTATS, Sec. 3.2).
* ``reflow``: pairs (x0, Φ(x0)) where Φ is the ODE flow of a previously trained model (Liu,
  Gong & Liu 2023, "Flow Straight and Fast", Alg. 1); it lives in :mod:`gendsl.lower.matching`
  because it needs a compiled model.
"""

from __future__ import annotations

import numpy as np
import ot
import torch
from torch import Tensor

__all__ = [
    "LOG_DOMAIN_RATIO",
    "Coupling",
    "EntropicOT",
    "ExactOT",
    "Independent",
    "SchrodingerBridge",
    "draw_pairs",
    "exact_ot_plan",
    "plan_cost",
    "schrodinger_reg",
    "sinkhorn_plan",
    "squared_cost",
]


def squared_cost(x0: Tensor, x1: Tensor) -> Tensor:
    """C_ij = ‖x0_i − x1_j‖² for the flattened points: [B0, B1]."""
    a, b = x0.reshape(x0.shape[0], -1), x1.reshape(x1.shape[0], -1)
    return torch.cdist(a, b) ** 2


def _uniform(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n)


def exact_ot_plan(cost: Tensor) -> Tensor:
    """π* = argmin_{π ∈ Π(a, b)} ⟨π, C⟩ with uniform marginals a = 1/B0, b = 1/B1, by the network
    simplex of ``ot.emd`` (Bonneel et al. 2011); returned on ``cost``'s device and dtype."""
    c = cost.detach().to("cpu", torch.float64).numpy()
    plan = ot.emd(_uniform(c.shape[0]), _uniform(c.shape[1]), c)
    return torch.as_tensor(plan, device=cost.device, dtype=cost.dtype)


#: Above this max C/ε the Gibbs kernel exp(−C/ε) underflows float64 (e^−745 ≈ 5e−324), so
#: Sinkhorn runs in the log domain (about 20x slower).
LOG_DOMAIN_RATIO = 600.0


def sinkhorn_plan(cost: Tensor, *, reg: float) -> Tensor:
    """π_ε = argmin_{π ∈ Π(a, b)} ⟨π, C⟩ − ε H(π) with uniform marginals, by Sinkhorn's
    matrix scaling (Cuturi 2013, "Sinkhorn Distances"), in the log domain when C/ε is too large
    for exp(−C/ε) (Peyré & Cuturi 2019, "Computational Optimal Transport", Sec. 4.4)."""
    if reg <= 0:
        raise ValueError(f"reg must be > 0, got {reg}")
    c = cost.detach().to("cpu", torch.float64).numpy()
    method = "sinkhorn_log" if c.max() / reg > LOG_DOMAIN_RATIO else "sinkhorn"
    plan = ot.sinkhorn(
        _uniform(c.shape[0]), _uniform(c.shape[1]), c, reg, method=method, warn=False
    )
    return torch.as_tensor(plan, device=cost.device, dtype=cost.dtype)


def schrodinger_reg(sigma: float) -> float:
    """ε = 2σ²: the entropic regularisation whose OT plan is the static Schrödinger bridge of
    Brownian motion with variance σ² per unit time (Tong et al. 2024, AISTATS, Prop. 3.1)."""
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    return 2.0 * sigma**2


def plan_cost(plan: Tensor, cost: Tensor) -> Tensor:
    """⟨π, C⟩ = Σ_ij π_ij C_ij."""
    return (plan * cost).sum()


def draw_pairs(
    plan: Tensor, n: int, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``n`` index pairs (i, j) ~ π drawn with replacement from the (normalised) plan
    (Tong et al. 2024, TMLR, Alg. 3, "(x0, x1) ~ π")."""
    flat = plan.reshape(-1).clamp_min(0)
    k = torch.multinomial(flat / flat.sum(), n, replacement=True, generator=generator)
    return k // plan.shape[1], k % plan.shape[1]


class Coupling:
    """Pairs x0 with x1: subclasses override :meth:`pair` and :meth:`describe`."""

    name = ""

    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        """Index tensors (i, j): the pairs are (x0[i], x1[j])."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for ``gendsl compile``."""
        raise NotImplementedError


class Independent(Coupling):
    """π = p0 ⊗ p1: the pairs as drawn."""

    name = "independent"

    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        idx = torch.arange(x1.shape[0], device=x1.device)
        return idx, idx

    def describe(self) -> str:
        return "independent: (x0, x1) ~ p0 x p1"


class ExactOT(Coupling):
    """The exact minibatch OT plan; a permutation for equal batches (module docstring)."""

    name = "ot(exact)"

    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        plan = exact_ot_plan(squared_cost(x0, x1))
        if x0.shape[0] == x1.shape[0]:
            idx = torch.arange(x0.shape[0], device=x0.device)
            return idx, plan.argmax(dim=1)
        return draw_pairs(plan, x1.shape[0], generator=generator)

    def describe(self) -> str:
        return "ot(exact): minibatch optimal transport, cost |x0 - x1|^2 (Tong et al. 2024)"


class EntropicOT(Coupling):
    """Pairs drawn from the Sinkhorn plan with regularisation ``reg``."""

    name = "ot(sinkhorn)"

    def __init__(self, reg: float):
        if reg <= 0:
            raise ValueError(f"reg must be > 0, got {reg}")
        self.reg = float(reg)

    def pair(
        self, x0: Tensor, x1: Tensor, *, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        plan = sinkhorn_plan(squared_cost(x0, x1), reg=self.reg)
        return draw_pairs(plan, x1.shape[0], generator=generator)

    def describe(self) -> str:
        return f"ot(sinkhorn, reg = {self.reg:g}): entropic minibatch OT (Cuturi 2013)"


class SchrodingerBridge(EntropicOT):
    """The entropic plan with ε = 2σ² (:func:`schrodinger_reg`)."""

    name = "schrodinger"

    def __init__(self, sigma: float):
        super().__init__(schrodinger_reg(sigma))
        self.sigma = float(sigma)

    def describe(self) -> str:
        return (
            f"schrodinger(sigma = {self.sigma:g}): entropic OT with reg = 2 sigma^2 = "
            f"{self.reg:g} (Tong et al. 2024)"
        )
