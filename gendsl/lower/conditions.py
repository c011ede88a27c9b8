"""Conditions of the conditional adversarial and energy families: the labels a generator is
trained on and the values a conditional model samples for.

A conditional GAN's generator is trained on labels drawn **uniformly** over the classes, as the
reference implementations do (Miyato & Koyama 2018's ``sngan_projection``: ``sample_categorical``
over ``n_classes``; Brock et al. 2019's BigGAN-PyTorch: ``prepare_z_y``, a categorical of equal
weights), so every class gets the same share of generated samples whatever the data's label
frequencies; a condition that is not a label (a number, a vector) has no such uniform law and is
drawn from the data's own marginal: the batch's values in a random order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from gendsl.errors import UsageError
from gendsl.ir import CheckedModel
from gendsl.objectives import draws

__all__ = [
    "Conditions",
    "LabelledCall",
    "generator_conditions",
    "net_calls",
    "sampling_conditions",
]

#: Condition values by name, one row per sample.
Conditions = Mapping[str, Tensor]


def generator_conditions(
    checked: CheckedModel,
    cond: Conditions,
    classes_of: Callable[[str], int | None],
    *,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """The conditions of one generated batch as large as the real batch ``cond``: each label
    uniform on 0..K-1, each other condition the batch's own values permuted (see the module
    docstring)."""
    out: dict[str, Tensor] = {}
    for v in checked.condition_vars():
        real = cond[v.name]
        k = classes_of(v.name)
        if k is not None:
            labels = draws.randint(k, real.shape[:1], generator=generator, device=real.device)
            out[v.name] = labels.to(real.dtype)
        else:  # a random permutation: the order of uniform draws
            perm = draws.rand(real.shape[:1], generator=generator, device=real.device).argsort()
            out[v.name] = real[perm]
    return out


def sampling_conditions(
    checked: CheckedModel, y: Any, n: int, device: torch.device
) -> dict[str, Tensor]:
    """The conditions of ``n`` samples: ``y`` is the only condition's value or a mapping from
    condition names to values; a scalar (or one row) is used for every sample."""
    known = [v.name for v in checked.condition_vars()]
    if y is None:
        if known:
            raise UsageError(
                f"model {checked.name} is conditional: sampling needs {known[0]}=... "
                f"(e.g. --condition {known[0]}=0)"
            )
        return {}
    if not known:
        raise UsageError(f"model {checked.name} has no condition, but y was given")
    given = dict(y) if isinstance(y, Mapping) else {known[0]: y}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise UsageError(f"model {checked.name} has no condition {', '.join(unknown)}")
    out = {}
    for name in known:
        if name not in given:
            raise UsageError(f"sampling model {checked.name} needs its condition {name}")
        value = torch.as_tensor(given[name], device=device)
        if value.dim() == 0 or value.shape[0] == 1:
            value = value.reshape(1, *value.shape[1:]).expand(n, *value.shape[1:])
        out[name] = value
    return out


class LabelledCall:
    """A network as the interpreter calls it in the adversarial and energy families: the
    arguments that are ``label`` variables enter the network's label embedding as ``y=``
    (:class:`gendsl.nn.base.ShapedNet`), the others positionally, in call order."""

    def __init__(self, net: torch.nn.Module, labels: Sequence[bool]):
        self.net, self.labels = net, tuple(labels)

    def __call__(self, *args: Tensor) -> Tensor:
        if not any(self.labels):
            return self.net(*args)
        y = next(a for a, is_label in zip(args, self.labels, strict=True) if is_label)
        tensors = [a for a, is_label in zip(args, self.labels, strict=True) if not is_label]
        return self.net(*tensors, y=y)


def net_calls(checked: CheckedModel, nets: Mapping[str, torch.nn.Module]) -> dict[str, Any]:
    """The interpreter's callable of each network: :class:`LabelledCall` where a network takes
    a label, the network itself otherwise."""
    calls: dict[str, Any] = {}
    for name, net in nets.items():
        spec = checked.nets[name]
        labels = [
            (v := checked.variables.get(i)) is not None and v.type.kind == "label"
            for i in spec.inputs
        ]
        calls[name] = LabelledCall(net, labels) if any(labels) else net
    return calls
