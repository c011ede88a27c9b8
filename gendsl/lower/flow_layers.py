"""The invertible layers of a ``flow { }`` block: small bijections with a log-Jacobian.

Every layer is a :class:`Transform` T from the *data side* to the *base side* (the direction in
which Dinh et al. 2017 and Kingma & Dhariwal 2018 write their layers), with

* ``forward(x) -> y``, ``inverse(y) -> x`` and ``log_abs_det_jacobian(x, y)`` = log|det ∂y/∂x|
  per sample (the Zuko / ``torch.distributions.Transform`` contract);
* ``call_and_ladj(x) -> (y, ladj)``, both at once (couplings share the network call);
* ``call_and_ladj_term(x) -> (y, term)``: the same with log|det| as a term of the flow's sum,
  per sample [B], a 0-d tensor where it is the same for every sample (actnorm, invconv) or
  ``None`` where it is 0 (permutations, squeeze), so :class:`Flow` adds no zeros and expands
  nothing per layer;
* ``out_shape(shape)``: the per-sample shape of ``y`` for a per-sample input ``shape``.

Shapes: a per-sample shape ``(C, *S)`` has ``C`` *channels* (the features of a vector, the
colour channels of an image) and ``prod(S)`` spatial positions.  ``actnorm``, ``invconv``,
``reverse``, ``permute`` and ``batchnorm`` act on the channel axis and are shared over positions,
so the same code serves vectors ``real[D]`` (one position) and images ``image[C, H, W]``
(Glow's 1x1 convolution).  ``squeeze`` and ``split`` exist only for images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = [
    "ActNorm",
    "AdditiveCoupling",
    "AffineCoupling",
    "BatchNorm",
    "Flow",
    "InvConv",
    "Permute",
    "Reverse",
    "Split",
    "SplitPriorHook",
    "Squeeze",
    "Transform",
    "coupling_mask",
    "per_channel",
]

Shape = tuple[int, ...]


def per_channel(v: Tensor, shape: Shape) -> Tensor:
    """A channel vector ``v`` [C] viewed to broadcast against a batch of ``shape`` = (C, *S)
    (``v`` itself for vectors, S = ())."""
    return v if len(shape) == 1 else v.reshape(-1, *([1] * (len(shape) - 1)))


def _per_sample_sum(v: Tensor) -> Tensor:
    """``v`` [B, ...] summed over every axis but the first."""
    return v.sum(1) if v.dim() == 2 else v.reshape(v.shape[0], -1).sum(1)


def _like(buffer: Tensor, x: Tensor) -> Tensor:
    """``buffer`` in ``x``'s dtype (itself when it already is)."""
    return buffer if buffer.dtype == x.dtype else buffer.to(x.dtype)


def _shared(shape: Shape, log_det: Tensor) -> Tensor:
    """prod(S) log_det: the log|det| of a map shared over the positions S of (C, *S)."""
    positions = _spatial(shape)
    return log_det if positions == 1 else positions * log_det


def _per_sample(term: Tensor | None, x: Tensor) -> Tensor:
    """A log|det| term (see the module docstring) as a per-sample tensor [B]."""
    if term is None:
        return torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
    return term.expand(x.shape[0]) if term.dim() == 0 else term


def _spatial(shape: Shape) -> int:
    """Positions per channel: prod(S) of a shape (C, *S)."""
    return math.prod(shape[1:])


class Transform(nn.Module):
    """A bijection from the data side to the base side (see the module docstring)."""

    def __init__(self, shape: Sequence[int]):
        super().__init__()
        self.shape: Shape = tuple(int(s) for s in shape)

    def out_shape(self, shape: Shape) -> Shape:
        """The per-sample shape of the output for input ``shape`` (the same by default)."""
        return shape

    def forward(self, x: Tensor) -> Tensor:
        """y = T(x)."""
        return self.call_and_ladj(x)[0]

    def inverse(self, y: Tensor) -> Tensor:
        """x = T⁻¹(y)."""
        raise NotImplementedError

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """log|det ∂T(x)/∂x| per sample, shape [B]."""
        raise NotImplementedError

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(T(x), log|det ∂T/∂x|)."""
        y = self.forward(x)
        return y, self.log_abs_det_jacobian(x, y)

    def call_and_ladj_term(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """(T(x), log|det ∂T/∂x| as a term: [B], 0-d when shared, None when 0)."""
        return self.call_and_ladj(x)

    def _zero_ladj(self, x: Tensor) -> Tensor:
        return _per_sample(None, x)


# ---------------------------------------------------------------------------- couplings


def coupling_mask(shape: Shape, kind: str) -> Tensor:
    """The binary mask b of a coupling layer (1 = passed through and fed to the network).

    ``alternate``: a checkerboard, b = 1 where the index sum over the *spatial* axes is even
    (over the features of a vector); ``half``: b = 1 on the first ⌊C/2⌋ channels (Dinh et al.
    2017, Sec. 3.4, "checkerboard" and "channel-wise" masking).
    """
    if kind == "half":
        b = (torch.arange(shape[0]) < shape[0] // 2).reshape(-1, *([1] * (len(shape) - 1)))
        return b.expand(shape).float()
    axes = shape[1:] if len(shape) > 1 else shape
    grids = torch.meshgrid(*(torch.arange(n) for n in axes), indexing="ij")
    b = (sum(grids) % 2 == 0).float()
    return b.expand(shape) if len(shape) > 1 else b


class _Coupling(Transform):
    """y = b ⊙ x + (1 - b) ⊙ (x ⊙ exp(s) + t) with (s, t) = params(net(b ⊙ x)) (Dinh et al.
    2017, eq. 9); variants override :meth:`shift_and_log_scale`."""

    def __init__(self, shape: Sequence[int], net: nn.Module, mask: str):
        super().__init__(shape)
        self.net = net
        self.register_buffer("mask", coupling_mask(self.shape, mask).contiguous())
        self.register_buffer("free", 1 - self.mask, persistent=False)  # the transformed part

    def shift_and_log_scale(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """(t, s) from the network output ``h``, each of the data shape."""
        raise NotImplementedError

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t, s = self.shift_and_log_scale(self.net(x * _like(self.mask, x)))
        free = _like(self.free, x)
        return t * free, s * free

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t, s = self._params(x)
        y = x * torch.exp(s) + t
        return y, _per_sample_sum(s)

    def inverse(self, y: Tensor) -> Tensor:
        t, s = self._params(y)
        return (y - t) * torch.exp(-s)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """Σ (1 - b) ⊙ s(b ⊙ x): the Jacobian is triangular (Dinh et al. 2017, eq. 6)."""
        return _per_sample_sum(self._params(x)[1])


class AffineCoupling(_Coupling):
    """RealNVP affine coupling; the network outputs (2, *shape): s = scale ⊙ tanh(h₀), t = h₁,
    with a learned per-element ``scale`` (Dinh et al. 2017, Sec. 4.1)."""

    def __init__(self, shape: Sequence[int], net: nn.Module, mask: str):
        super().__init__(shape, net, mask)
        self.scale = nn.Parameter(torch.ones(self.shape))

    def shift_and_log_scale(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return h[:, 1], self.scale * torch.tanh(h[:, 0])


class AdditiveCoupling(_Coupling):
    """NICE additive coupling y = b ⊙ x + (1 - b) ⊙ (x + t(b ⊙ x)), volume preserving (Dinh et
    al. 2015, eq. 6); the network outputs t with the data shape."""

    def shift_and_log_scale(self, h: Tensor) -> tuple[Tensor, Tensor]:
        return h, torch.zeros_like(h)


# ------------------------------------------------------------------------ channel maps


class ActNorm(Transform):
    """y = x ⊙ exp(log_s) + b per channel; on the first training batch log_s and b are set so
    that y has zero mean and unit variance per channel (Kingma & Dhariwal 2018, Sec. 3.1).
    log|det| = prod(S) Σ log_s."""

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape)
        self.log_s = nn.Parameter(torch.zeros(self.shape[0]))
        self.bias = nn.Parameter(torch.zeros(self.shape[0]))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        #: The buffer ``initialized`` was seen True (so training steps read it no more).
        self.seen_initialized = False

    @torch.no_grad()
    def initialize(self, x: Tensor) -> None:
        """Data-dependent init: b = -mean/std, log_s = -log std over batch and positions."""
        flat = x.transpose(0, 1).reshape(self.shape[0], -1)
        mean, std = flat.mean(1), flat.std(1, unbiased=False).clamp_min(1e-6)
        self.log_s.copy_(-torch.log(std))
        self.bias.copy_(-mean / std)
        self.initialized.fill_(True)

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        self.seen_initialized = False  # the loaded ``initialized`` is read again
        super()._load_from_state_dict(*args, **kwargs)

    def _needs_init(self, x: Tensor) -> bool:
        if not self.training or self.seen_initialized or x.shape[0] <= 1:
            return False
        self.seen_initialized = bool(self.initialized)
        return not self.seen_initialized

    def forward(self, x: Tensor) -> Tensor:
        if self._needs_init(x):
            self.initialize(x)
        return x * per_channel(torch.exp(self.log_s), self.shape) + per_channel(
            self.bias, self.shape
        )

    def inverse(self, y: Tensor) -> Tensor:
        return (y - per_channel(self.bias, self.shape)) * per_channel(
            torch.exp(-self.log_s), self.shape
        )

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return _per_sample(_shared(self.shape, self.log_s.sum()), x)

    def call_and_ladj_term(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.forward(x), _shared(self.shape, self.log_s.sum())


class _ChannelPermutation(Transform):
    """y = x with its channels permuted by the buffer ``perm``; log|det| = 0."""

    def __init__(self, shape: Sequence[int], perm: Tensor):
        super().__init__(shape)
        self.register_buffer("perm", perm)
        self.register_buffer("inv_perm", torch.argsort(perm))

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.perm]

    def inverse(self, y: Tensor) -> Tensor:
        return y[:, self.inv_perm]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self._zero_ladj(x)

    def call_and_ladj_term(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.forward(x), None


class Reverse(_ChannelPermutation):
    """Reverse the channel order (Dinh et al. 2017; Kingma & Dhariwal 2018, Sec. 3.2): the
    permutation C-1, ..., 0, applied as a flip of the channel axis."""

    def __init__(self, shape: Sequence[int]):
        super().__init__(shape, torch.arange(shape[0] - 1, -1, -1))

    def forward(self, x: Tensor) -> Tensor:
        return x.flip(1)

    def inverse(self, y: Tensor) -> Tensor:
        return y.flip(1)


class Permute(_ChannelPermutation):
    """A fixed random permutation of the channels drawn from ``seed`` (Kingma & Dhariwal
    2018, Sec. 3.2, "shuffle")."""

    def __init__(self, shape: Sequence[int], seed: int):
        gen = torch.Generator().manual_seed(int(seed))
        super().__init__(shape, torch.randperm(shape[0], generator=gen))


class InvConv(Transform):
    """Invertible 1x1 convolution y = W x over the channels at every position (a linear map for
    vectors), log|det| = prod(S) log|det W| (Kingma & Dhariwal 2018, Sec. 3.2).

    With ``lu`` W = P L (U + diag(sign ⊙ exp(log_s))), P a fixed permutation, L unit lower and U
    strictly upper triangular, so log|det W| = Σ log_s (Glow, eq. 10); else W is a free matrix
    and log|det W| comes from ``slogdet``.  W starts as a random rotation.
    """

    def __init__(self, shape: Sequence[int], lu: bool):
        super().__init__(shape)
        c = self.shape[0]
        w0 = torch.linalg.qr(torch.randn(c, c))[0]
        self.lu = lu
        if not lu:
            self.weight = nn.Parameter(w0)
            return
        p, lower, upper = torch.linalg.lu(w0)
        diag = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(diag))
        self.register_buffer("l_mask", torch.tril(torch.ones(c, c), -1))
        self.register_buffer("eye", torch.eye(c))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(diag.abs()))

    def weight_matrix(self) -> Tensor:
        """W (see the class docstring)."""
        if not self.lu:
            return self.weight
        lower = self.lower * self.l_mask + self.eye
        upper = self.upper * self.l_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def log_abs_det_w(self) -> Tensor:
        """log|det W|."""
        if self.lu:
            return self.log_s.sum()
        return torch.linalg.slogdet(self.weight)[1]

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("ij,bj...->bi...", self.weight_matrix(), x)

    def inverse(self, y: Tensor) -> Tensor:
        return torch.einsum("ij,bj...->bi...", torch.linalg.inv(self.weight_matrix()), y)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return _per_sample(_shared(self.shape, self.log_abs_det_w()), x)

    def call_and_ladj_term(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.forward(x), _shared(self.shape, self.log_abs_det_w())


class BatchNorm(Transform):
    """Batch normalisation as a bijection, y = (x - μ)/√(σ² + ε) ⊙ exp(log_γ) + β per channel,
    log|det| = prod(S) Σ (log_γ - ½ log(σ² + ε)) (Dinh et al. 2017, Sec. 3.7, eq. 13).

    In training μ, σ² are the batch statistics (and the running averages are updated with
    ``momentum``); in eval mode and in :meth:`inverse` the running averages are used.
    """

    eps = 1e-5

    def __init__(self, shape: Sequence[int], momentum: float):
        super().__init__(shape)
        c = self.shape[0]
        self.momentum = float(momentum)
        self.log_gamma = nn.Parameter(torch.zeros(c))
        self.beta = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if not self.training:
            return self.running_mean, self.running_var
        flat = x.transpose(0, 1).reshape(self.shape[0], -1)
        mean, var = flat.mean(1), flat.var(1, unbiased=False)
        with torch.no_grad():
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(var.detach(), self.momentum)
        return mean, var

    def _log_scale(self, var: Tensor) -> Tensor:
        return self.log_gamma - 0.5 * torch.log(var + self.eps)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, var = self._stats(x)
        log_scale = self._log_scale(var)
        y = (x - per_channel(mean, self.shape)) * per_channel(
            torch.exp(log_scale), self.shape
        ) + per_channel(self.beta, self.shape)
        return y, (_spatial(self.shape) * log_scale.sum()).expand(x.shape[0])

    def inverse(self, y: Tensor) -> Tensor:
        log_scale = self._log_scale(self.running_var)
        return (y - per_channel(self.beta, self.shape)) * per_channel(
            torch.exp(-log_scale), self.shape
        ) + per_channel(self.running_mean, self.shape)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        """With the statistics of eval mode (training mode's depend on the whole batch)."""
        log_scale = self._log_scale(self.running_var)
        return (_spatial(self.shape) * log_scale.sum()).expand(x.shape[0])


# ------------------------------------------------------------------------ multi-scale


class Squeeze(Transform):
    """Space-to-depth: (C, H, W) -> (4C, H/2, W/2), each 2x2 block into channels (Dinh et al.
    2017, Sec. 3.6); a permutation, log|det| = 0."""

    def out_shape(self, shape: Shape) -> Shape:
        c, h, w = shape
        return (4 * c, h // 2, w // 2)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
        return x.reshape(b, 4 * c, h // 2, w // 2)

    def inverse(self, y: Tensor) -> Tensor:
        b, c4, h2, w2 = y.shape
        y = y.reshape(b, c4 // 4, 2, 2, h2, w2).permute(0, 1, 4, 2, 5, 3)
        return y.reshape(b, c4 // 4, 2 * h2, 2 * w2)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self._zero_ladj(x)

    def call_and_ladj_term(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        return self.forward(x), None


class Flow(Transform):
    """The composition T = T_n ∘ ... ∘ T_1 of ``layers`` (listed from the data side);
    log|det ∂T/∂x| is the sum of the layers' (chain rule)."""

    def __init__(self, shape: Sequence[int], layers: Sequence[Transform]):
        super().__init__(shape)
        self.layers = nn.ModuleList(layers)

    def out_shape(self, shape: Shape) -> Shape:
        for layer in self.layers:
            shape = layer.out_shape(shape)
        return shape

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        y, total = self.call_and_ladj_term(x)
        return y, _per_sample(total, x)

    def call_and_ladj_term(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """The layers in turn, their log|det| terms summed in order (None while all are 0)."""
        total: Tensor | None = None
        for layer in self.layers:
            x, term = layer.call_and_ladj_term(x)
            if term is not None:
                total = term if total is None else total + term
        return x, total

    def inverse(self, y: Tensor) -> Tensor:
        for layer in reversed(self.layers):
            y = layer.inverse(y)
        return y

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]


class SplitPriorHook(Protocol):
    """The prior of a split's factored-out half x₂ given the kept x₁, as a bijection onto the
    base: ``standardize(x1, x2) -> (ε₂, log|det ∂ε₂/∂x₂|)`` and ``unstandardize(x1, ε₂) -> x₂``
    (:class:`gendsl.lower.flow_priors.SplitPrior`)."""

    def standardize(self, x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]: ...

    def unstandardize(self, x1: Tensor, eps2: Tensor) -> Tensor: ...


class Split(Transform):
    """Multi-scale factoring-out (Dinh et al. 2017, Sec. 3.6): the first C - ⌊C/2⌋ channels go
    through the rest of the flow (``inner``), the other ⌊C/2⌋ go to the base.  The output is the
    flat concatenation [inner(x₁), x₂]; log|det| = that of ``inner``.  With a ``prior`` hook x₂
    goes to the base standardised by its learned conditional prior given x₁ (Glow's
    ``split2d``), which adds that map's log|det|."""

    def __init__(self, shape: Sequence[int], inner: Flow, prior: SplitPriorHook | None = None):
        super().__init__(shape)
        self.inner = inner
        self.keep = self.shape[0] - self.shape[0] // 2
        self.prior = prior

    def out_shape(self, shape: Shape) -> Shape:
        return (math.prod(shape),)

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        x1, x2 = x[:, : self.keep], x[:, self.keep :]
        y1, ladj = self.inner.call_and_ladj(x1)
        if self.prior is not None:
            x2, ladj_prior = self.prior.standardize(x1, x2)
            ladj = ladj + ladj_prior
        return torch.cat([y1.reshape(x.shape[0], -1), x2.reshape(x.shape[0], -1)], 1), ladj

    def inverse(self, y: Tensor) -> Tensor:
        inner_in = (self.keep, *self.shape[1:])
        inner_out = self.inner.out_shape(inner_in)
        n1 = math.prod(inner_out)
        x1 = self.inner.inverse(y[:, :n1].reshape(-1, *inner_out))
        x2 = y[:, n1:].reshape(-1, self.shape[0] - self.keep, *self.shape[1:])
        if self.prior is not None:
            x2 = self.prior.unstandardize(x1, x2)
        return torch.cat([x1, x2], 1)

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]
