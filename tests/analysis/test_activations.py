"""One table of activations: every name the checker accepts builds the right torch module."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gendsl.activations import ACTIVATIONS
from gendsl.analysis.library import NETWORKS
from gendsl.nn.layers import activation

_REFERENCE = {
    "silu": F.silu,
    "relu": F.relu,
    "tanh": torch.tanh,
    "gelu": F.gelu,
    "softplus": F.softplus,
    "elu": F.elu,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    "sigmoid": torch.sigmoid,
}


def test_the_reference_covers_the_table():
    assert set(_REFERENCE) == set(ACTIVATIONS)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_documented_activation_builds_and_computes(name):
    x = torch.linspace(-3, 3, 13)
    torch.testing.assert_close(activation(name)(x), _REFERENCE[name](x), rtol=0, atol=0)


@pytest.mark.parametrize("net", [n for n, spec in NETWORKS.items() if "activation" in spec.params])
def test_every_network_offers_exactly_the_table(net):
    assert NETWORKS[net].params["activation"].choices == ACTIVATIONS


def test_an_unknown_activation_is_refused_by_the_library_too():
    with pytest.raises(ValueError, match="activation must be one of silu, relu"):
        activation("softmax")
