"""The distribution table of the language: one home for its facts, read by the checker
(:mod:`gendsl.analysis`, without torch), the docs and the densities of the back ends
(:mod:`gendsl.objectives.densities`, which adds only the torch constructors).

Each row gives a distribution's parameters in positional order, the keyword its torch class
takes for each (``Beta(a, b)`` is ``torch.distributions.Beta(concentration1, concentration0)``),
which parameters must be positive, the support of its values, and whether a single network
output may carry all of its parameters (``z ~ Normal(enc(x))``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["DISTRIBUTIONS", "PACKED_SCALE_MIN", "SUPPORTS", "DistInfo"]

#: Support kinds: the values a distribution puts its mass on.
SUPPORTS: Mapping[str, str] = MappingProxyType(
    {
        "real": "the real line",
        "interval": "the interval [low, high]",
        "positive": "(0, ∞)",
        "unit": "[0, 1]",
        "binary": "{0, 1}",
        "label": "{0, ..., K-1}",
    }
)

#: The lower bound added to a packed positive parameter: ``scale = softplus(out[:, 1]) + 1e-5``.
PACKED_SCALE_MIN = 1e-5


@dataclass(frozen=True)
class DistInfo:
    """A distribution: positional parameter names, its support, and parameterisation choices.

    ``support`` is one of :data:`SUPPORTS`.  ``alternatives`` are mutually exclusive
    parameterisations (``probs`` or ``logits``); the first is the one a positional argument
    means, the last the one a packed network output means.  ``positive`` names the parameters
    that must be > 0; ``torch_names`` maps a parameter to its keyword in the torch class where
    the two differ; ``packable`` says whether one network output may carry every parameter;
    ``mixture`` marks a mixture whose parameters end in the component axis ``K`` (its density
    is over the whole event, not a product over coordinates).
    """

    name: str
    params: tuple[str, ...]
    support: str
    alternatives: tuple[str, ...] = ()
    positive: tuple[str, ...] = ()
    torch_names: Mapping[str, str] = field(default_factory=dict)
    packable: bool = True
    mixture: bool = False

    def n_params(self) -> int:
        """How many tensors a packed network output holds (``Normal(enc(x))``: 2)."""
        return 1 if self.alternatives else len(self.params)

    def packed_names(self) -> tuple[str, ...]:
        """The parameters a packed network output gives, in order (``logits`` for a
        probs-or-logits distribution)."""
        return self.alternatives[-1:] if self.alternatives else self.params

    def torch_name(self, param: str) -> str:
        """The keyword of ``param`` in the torch class."""
        return self.torch_names.get(param, param)


def _table(*rows: DistInfo) -> Mapping[str, DistInfo]:
    return MappingProxyType({d.name: d for d in rows})


_PROBS = ("probs", "logits")

DISTRIBUTIONS: Mapping[str, DistInfo] = _table(
    DistInfo("Normal", ("loc", "scale"), "real", positive=("scale",)),
    DistInfo("Laplace", ("loc", "scale"), "real", positive=("scale",)),
    DistInfo("StudentT", ("df", "loc", "scale"), "real", positive=("df", "scale")),
    DistInfo("LogNormal", ("loc", "scale"), "positive", positive=("scale",)),
    DistInfo("Uniform", ("low", "high"), "interval", packable=False),
    DistInfo(
        "Beta",
        ("a", "b"),
        "unit",
        positive=("a", "b"),
        torch_names=MappingProxyType({"a": "concentration1", "b": "concentration0"}),
    ),
    # the density β^α x^(α-1) e^(-βx) / Γ(α) needs α > 0 (Γ and integrability at 0) and β > 0
    # (integrability at ∞)
    DistInfo("Gamma", ("concentration", "rate"), "positive", positive=("concentration", "rate")),
    DistInfo("Exponential", ("rate",), "positive", positive=("rate",)),
    DistInfo("Bernoulli", (), "binary", _PROBS),
    DistInfo("Categorical", (), "label", _PROBS),
    DistInfo("ContinuousBernoulli", (), "unit", _PROBS),
    # Σ_k w_k N(x; μ_k, σ_k² I) / Σ_k w_k: every parameter ends in the component axis K, so
    # ``locs = [[-2, 0], [2, 0]]`` lists two components of a 2-d variable
    DistInfo(
        "GaussianMixture",
        ("weights", "locs", "scales"),
        "real",
        positive=("weights", "scales"),
        packable=False,
        mixture=True,
    ),
)
