"""``build_network``: from a spec's network constructor and the inferred shapes to a module."""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

from gendsl.nn.base import ShapedNet
from gendsl.nn.conv import ConvNet
from gendsl.nn.mlp import MLP, ResNet
from gendsl.nn.tables import Embedding, TimeFeatures
from gendsl.nn.unet import UNet

__all__ = ["NETWORKS", "build_network"]

NETWORKS: dict[str, type[ShapedNet]] = {
    "MLP": MLP,
    "ResNet": ResNet,
    "ConvNet": ConvNet,
    "UNet": UNet,
    "Embedding": Embedding,
}
_TIME_FEATURES = ("fourier", "sinusoidal")
_SHARED = ("time", "time_dim", "time_scale", "cond_dim")


def build_network(
    kind: str,
    kwargs: Mapping[str, object],
    *,
    in_shapes: Sequence[tuple[int, ...]],
    out_shape: tuple[int, ...],
    time: str | None = None,
    cond_classes: int | None = None,
) -> ShapedNet:
    """Build the network ``kind(**kwargs)`` for the shapes the compiler inferred.

    :param kind: ``MLP``, ``ResNet``, ``ConvNet``, ``UNet``, ``Embedding``, ``fourier`` or
        ``sinusoidal`` (case-insensitive).
    :param kwargs: the user's hyper-parameters.  ``time`` may be a kind (``"fourier"``) or a
        kind and size (``("fourier", 32)``); it overrides the ``time`` argument.
    :param in_shapes: per-sample shape of every positional input, in call order.
    :param out_shape: per-sample shape of the output.
    :param time: the time embedding to use when the network is called with a time ``t``
        (``None``: it is not, unless ``kwargs`` says otherwise).
    :param cond_classes: number of classes of a label ``y`` the network is conditioned on.
    :raises ValueError: an unknown kind or argument, or hyper-parameters that cannot fit the
        shapes; the message quotes the bad value.
    """
    options = dict(kwargs)
    shapes = {"in_shapes": list(in_shapes), "out_shape": tuple(out_shape)}
    lower = kind.lower() if isinstance(kind, str) else kind
    if lower in _TIME_FEATURES:
        _check_names(kind, options, ("dim", "scale"))
        return TimeFeatures(kind=lower, **options, **shapes)
    cls = {name.lower(): c for name, c in NETWORKS.items()}.get(lower)
    if cls is None:
        known = ", ".join([*NETWORKS, *_TIME_FEATURES])
        raise ValueError(f"unknown network {kind!r}; expected one of {known}")
    if cls is Embedding:
        _check_names(kind, options, ("classes",))
        return Embedding(**options, cond_classes=cond_classes, **shapes)
    own = [
        name
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    ]
    _check_names(kind, options, (*own, *_SHARED))
    options.setdefault("time", time)
    return cls(**options, cond_classes=cond_classes, **shapes)


def _check_names(kind: str, options: Mapping[str, object], allowed: Sequence[str]) -> None:
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"{kind} got unknown argument(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
