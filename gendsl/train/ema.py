"""Exponential moving average of model weights.

The averaged weights θ̄ are used for evaluation and sampling (Polyak & Juditsky 1992; for
generative models Song & Ermon 2020, "Improved Techniques for Training Score-Based Generative
Models", section 3.5, and Ho et al. 2020).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from gendsl.errors import UsageError

__all__ = ["EMA", "ema_update"]


@torch.no_grad()
def ema_update(shadow: Tensor, theta: Tensor, decay: float) -> None:
    """θ̄ ← β θ̄ + (1 − β) θ, in place on ``shadow`` (β = ``decay``)."""
    shadow.mul_(decay).add_(theta.detach(), alpha=1.0 - decay)


class EMA:
    """Shadow copies of a model's floating-point parameters, averaged after every step.

    The decay warms up as min(β, (1 + n)/(10 + n)) after n updates (the num_updates rule of
    TensorFlow's ExponentialMovingAverage, used by Song et al. 2021's score_sde code), so a short
    run's average is not dominated by the initial weights.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise UsageError(f"ema decay must lie in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.shadow = {
            name: p.detach().clone()
            for name, p in model.named_parameters()
            if p.is_floating_point()
        }

    def current_decay(self) -> float:
        """The decay of the next update: min(β, (1 + n)/(10 + n))."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One averaging step toward the model's current parameters, θ̄ ← θ̄ + (1 − β)(θ − θ̄)
        (the formula of :func:`ema_update`), as one fused kernel per dtype and device."""
        pairs = [(self.shadow[n], p) for n, p in model.named_parameters() if n in self.shadow]
        if pairs:
            shadows, params = zip(*pairs, strict=True)
            torch._foreach_lerp_(
                list(shadows), [p.detach() for p in params], 1.0 - self.current_decay()
            )
        self.updates += 1

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite the model's parameters with the averaged ones."""
        for name, p in model.named_parameters():
            if name in self.shadow:
                p.copy_(self.shadow[name])

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[nn.Module]:
        """Run a block with the averaged weights in ``model``, then restore the trained ones."""
        saved = {name: p.detach().clone() for name, p in model.named_parameters()}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(saved[name])

    def state_dict(self) -> dict[str, object]:
        """The decay and the averaged tensors (plain types, safe for ``weights_only`` loads)."""
        return {"decay": self.decay, "updates": self.updates, "shadow": dict(self.shadow)}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict` output, keeping the shadows on their current device."""
        shadow = state["shadow"]
        self.updates = int(state.get("updates", 0))
        missing = sorted(set(self.shadow) - set(shadow))
        if missing:
            raise UsageError(f"EMA state lacks parameters {missing}")
        for name, value in self.shadow.items():
            value.copy_(shadow[name])
