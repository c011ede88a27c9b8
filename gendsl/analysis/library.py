"""The library of names a spec may use: the single source of truth for the checker, the docs and
the back ends.

Everything here is plain data.  An option written in a spec (``loss elbo(beta = 4)``,
``sample with dpm_solver(order = 2)``, a network's hyper-parameters, a ``train { }`` entry) is
checked against an :class:`OptionSpec`: its parameters, each a :class:`Param` saying what kind
of value it takes and its default.  The samplers of the diffusion and matching families are
built from the sampler registry (:mod:`gendsl.sampler_registry`), which declares them once for
the checker, the docs and the runtime.

Value kinds of a :class:`Param`:

``number``   an int or float literal (``-1.5``, ``1e-4``);
``int``      a whole number >= 0 (``steps = 100``);
``bool``     ``true`` or ``false``;
``string``   a string literal (``"runs/rf1"``);
``choice``   one of the bare names in ``choices``, or one of the calls in ``calls``
             (``weight = min_snr(gamma = 5)``; a call's name given bare takes its defaults);
``ints``     a list of whole numbers (``hidden = [64, 64]``);
``numbers``  a list of numbers (``betas = [0.5, 0.9]``);
``names``    a list of variable names of the model (``enumerate = [c]``);
``model``    the name of a model in scope (``teacher = vp_sde``);
``net``      the name of a network of the model (``classifier(clf)``);
``network``  a network constructor call (``net = MLP(hidden = [64])``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gendsl import sampler_registry as samplers
from gendsl.activations import ACTIVATIONS  # the one table; the network library reads it too
from gendsl.families import TABLE  # the families' samplers and summaries

__all__ = [
    "CONSTANTS",
    "CONSTRUCTORS",
    "COUPLINGS",
    "FAMILY_INFO",
    "FLOW_LAYERS",
    "GUIDANCE",
    "KEYWORDS",
    "MATH_FUNCTIONS",
    "NETWORKS",
    "REDUCTIONS",
    "SPECIAL_FUNCTIONS",
    "TRAIN",
    "TYPES",
    "VALUE_KINDS",
    "FamilyInfo",
    "OptionSpec",
    "Param",
    "TypeInfo",
    "family_of_loss",
]

VALUE_KINDS = (
    "number",
    "int",
    "bool",
    "string",
    "choice",
    "ints",
    "numbers",
    "names",
    "model",
    "net",
    "network",
)

#: Reserved words of the grammar: none may name a variable, network or let.
KEYWORDS = frozenset(
    [
        "model",
        "extends",
        "import",
        "data",
        "latent",
        "condition",
        "use",
        "let",
        "net",
        "guide",
        "flow",
        "repeat",
        "sde",
        "chain",
        "path",
        "couple",
        "by",
        "predict",
        "critic",
        "energy",
        "guidance",
        "loss",
        "sample",
        "with",
        "train",
        "in",
    ]
)


@dataclass(frozen=True)
class Param:
    """One parameter of a library option: the kind of value it takes and its default."""

    kind: str
    default: Any = None
    choices: tuple[str, ...] = ()
    calls: Mapping[str, OptionSpec] = field(default_factory=dict)
    doc: str = ""


@dataclass(frozen=True)
class OptionSpec:
    """A library option: its parameters (in positional order) and a one-line description.

    ``positional`` is how many leading parameters may be given without a name
    (``ot(exact)``, ``clip(0.01)``, ``linear(0, 1, steps = 100)``); ``aliases`` maps another
    name a spec may write to a parameter's name (``ode(method = rk4)`` for ``solver``).
    """

    name: str
    params: Mapping[str, Param] = field(default_factory=dict)
    positional: int = 0
    doc: str = ""
    aliases: Mapping[str, str] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """Every parameter's default value (``None`` where it has none)."""
        return {k: p.default for k, p in self.params.items()}


def _spec(name: str, doc: str = "", positional: int = 0, **params: Param) -> OptionSpec:
    return OptionSpec(name, MappingProxyType(dict(params)), positional, doc)


def _calls(*specs: OptionSpec) -> Mapping[str, OptionSpec]:
    return MappingProxyType({s.name: s for s in specs})


def _choice(default: str, *choices: str, calls: tuple[OptionSpec, ...] = (), doc: str = ""):
    return Param("choice", default, tuple(choices), _calls(*calls), doc)


def _int(default: int | None, doc: str = "") -> Param:
    return Param("int", default, doc=doc)


def _num(default: float | None, doc: str = "") -> Param:
    return Param("number", default, doc=doc)


def _bool(default: bool, doc: str = "") -> Param:
    return Param("bool", default, doc=doc)


# ------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class TypeInfo:
    """A variable type: how many sizes it takes (``None``: any number >= 1) and what it holds."""

    name: str
    sizes: int | None
    doc: str
    keywords: tuple[str, ...] = ()


TYPES: Mapping[str, TypeInfo] = MappingProxyType(
    {
        "real": TypeInfo("real", None, "real-valued tensor of the given shape"),
        "binary": TypeInfo("binary", None, "tensor of 0/1 values"),
        "image": TypeInfo("image", 3, "image[C, H, W] with values in [0, 1]"),
        "label": TypeInfo("label", 1, "an integer class in 0..K-1 (per-sample shape ())"),
        "code": TypeInfo(
            "code", 0, "a VQ latent: a codebook of K vectors of size dim", ("K", "dim")
        ),
    }
)

# --------------------------------------------------------------------------- math and values

_UNARY = ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "softplus", "sigmoid", "abs", "relu")

#: Math functions and their number of arguments.
MATH_FUNCTIONS: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys(_UNARY, 1),
        "min": 2,
        "max": 2,
    }
)

#: Reductions over a value's per-sample (event) axes and their number of arguments: each gives
#: one number per sample (shape ``()``); the batch axis is untouched.
REDUCTIONS: Mapping[str, int] = MappingProxyType({"sum": 1, "mean": 1, "norm": 1, "dot": 2})

#: Named constants.
CONSTANTS: Mapping[str, float] = MappingProxyType({"pi": 3.141592653589793})

#: Constructors of constant vectors: ``zeros(n)``, ``ones(n)``, ``linspace(a, b, n)``.
CONSTRUCTORS: Mapping[str, int] = MappingProxyType({"zeros": 1, "ones": 1, "linspace": 3})

#: Calls with a meaning of their own: ``quantize(x)`` (needs a ``code`` latent),
#: ``consistency(f, sigma_data = ..)`` (only in ``predict x0 = ...``), ``d(E)/dt``.
SPECIAL_FUNCTIONS: Mapping[str, OptionSpec] = MappingProxyType(
    {
        "quantize": _spec("quantize", "nearest codebook entry, straight-through gradient"),
        "consistency": _spec(
            "consistency",
            "c_skip(t) x_t + c_out(t) f(x_t, t) (Song et al. 2023)",
            sigma_data=_num(0.5),
        ),
        "d": _spec("d", "time derivative, written d(E)/dt"),
    }
)

# ---------------------------------------------------------------------------------- networks

_TIME = _choice(
    "concat",
    "concat",
    "fourier",
    "sinusoidal",
    calls=(_spec("fourier", "", 1, dim=_int(32)), _spec("sinusoidal", "", 1, dim=_int(32))),
    doc="how the time t enters",
)
_NET_SHARED = {
    "time": _TIME,
    "time_dim": _int(None, "size of the time features"),
    "time_scale": _num(None, "scale of the Fourier features"),
    "cond_dim": _int(None, "size of the condition embedding"),
}

NETWORKS: Mapping[str, OptionSpec] = MappingProxyType(
    {
        "MLP": _spec(
            "MLP",
            "fully connected network; inputs flattened and concatenated",
            hidden=Param("ints", [64, 64]),
            activation=_choice("silu", *ACTIVATIONS),
            spectral_norm=_bool(False),
            projection=_bool(False, "projection discriminator head (Miyato & Koyama 2018)"),
            film=_bool(False, "the inputs after the first modulate the layers (FiLM)"),
            **_NET_SHARED,
        ),
        "ResNet": _spec(
            "ResNet",
            "residual MLP blocks",
            hidden=_int(128),
            blocks=_int(2),
            activation=_choice("silu", *ACTIVATIONS),
            **_NET_SHARED,
        ),
        "ConvNet": _spec(
            "ConvNet",
            "convolutional encoder, or decoder with transpose = true",
            channels=Param("ints", [32, 64]),
            transpose=_bool(False),
            kernel=_int(3),
            activation=_choice("silu", *ACTIVATIONS),
            spectral_norm=_bool(False),
            norm=_choice("none", "none", "batch", "group", doc="normalisation after each conv"),
            zero_out=_bool(False, "start the output layer at zero (Glow couplings)"),
            down=_int(None, "an encoder's stride-2 stages (default: from the shapes)"),
            up=_int(None, "a decoder's stride-2 transposed stages (default: from the shapes)"),
            **_NET_SHARED,
        ),
        "UNet": _spec(
            "UNet",
            "DDPM / NCSN++ U-Net for image-shaped outputs; pads to a multiple of 2^(levels-1)",
            channels=Param("ints", [32, 64], doc="width of each level"),
            blocks=_int(1, "residual blocks per level"),
            attention=Param("ints", [], doc="resolutions with self-attention, e.g. [16]"),
            cross_attention=Param(
                "ints", [], doc="resolutions attending to a condition real[L, E], e.g. [8]"
            ),
            heads=_int(1, "attention heads"),
            dropout=_num(0.0, "dropout in the residual blocks"),
            groups=_int(8, "GroupNorm groups"),
            activation=_choice("silu", *ACTIVATIONS),
            **_NET_SHARED,
        ),
        "Embedding": _spec("Embedding", "a learned table indexed by a label", classes=_int(None)),
    }
)

# ------------------------------------------------------------------------------ flow layers

_MASK = _choice("alternate", "alternate", "half")
_SOLVERS = tuple(samplers.SOLVER_CALLS)

FLOW_LAYERS: Mapping[str, OptionSpec] = MappingProxyType(
    {
        s.name: s
        for s in (
            _spec(
                "affine_coupling",
                "RealNVP affine coupling (Dinh et al. 2017)",
                mask=_MASK,
                net=Param("network", None),
            ),
            _spec(
                "additive_coupling",
                "NICE additive coupling (Dinh et al. 2015)",
                mask=_MASK,
                net=Param("network", None),
            ),
            _spec("actnorm", "per-channel affine, data-initialised (Kingma & Dhariwal 2018)"),
            _spec("reverse", "reverse the feature order"),
            _spec("permute", "a fixed random permutation", 1, seed=_int(0)),
            _spec("invconv", "invertible 1x1 convolution (Glow)", lu=_bool(True)),
            _spec("squeeze", "space-to-depth 2x2"),
            _spec(
                "split",
                "factor out half of the channels (multi-scale)",
                prior=_choice(
                    "fixed",
                    "fixed",
                    "learned",
                    doc="fixed: the base; learned: N(mu, sigma) from a zero-initialised 3x3 "
                    "conv of the kept half (Glow)",
                ),
            ),
            _spec("learntop", "learned prior mean and scale at the top of the flow (Glow)"),
            _spec("batchnorm", "batch normalisation as a flow layer", momentum=_num(0.1)),
            _spec(
                "cnf",
                "continuous normalising flow (FFJORD, Grathwohl et al. 2019)",
                net=Param("network", None),
                trace=_choice("exact", "exact", "hutchinson"),
                solver=_choice("dopri5", *_SOLVERS),
                rtol=_num(1e-5),
                atol=_num(1e-5),
            ),
        )
    }
)

# ---------------------------------------------------------------------- losses and samplers


def _param(option: samplers.Option) -> Param:
    """A registry option as a library parameter (schedule calls become call choices)."""
    calls = _calls(
        *(OptionSpec(c.name, _params(c.options), c.positional, c.doc) for c in option.calls)
    )
    return Param(option.kind, option.default, option.choices, calls, option.doc)


def _params(options: Mapping[str, samplers.Option]) -> Mapping[str, Param]:
    return MappingProxyType({k: _param(o) for k, o in options.items()})


def _sampler(family: str, name: str) -> OptionSpec:
    """The options of ``family``'s sampler ``name``: the sampler registry's declaration
    (:mod:`gendsl.sampler_registry`), or the library's own for a sampler without one."""
    declared = samplers.of_family(family)
    if name not in declared:
        return _UNREGISTERED[name]
    d = declared[name]
    return OptionSpec(name, _params(d.options), 0, f"{d.doc} ({d.cite})", d.aliases)


_LANGEVIN = _spec(
    "langevin",
    "unadjusted Langevin dynamics",
    3,
    steps=_int(60),
    step=_num(0.01),
    noise=_num(None, "noise scale; default sqrt(2 * step), Langevin dynamics targeting exp(-E)"),
)


@dataclass(frozen=True)
class FamilyInfo:
    """A model family: its losses and samplers (first = default) and what it predicts.

    The sampler names, their order and the family's summary are its plugin's
    (:mod:`gendsl.families`); the options of the samplers are the sampler registry's."""

    name: str
    losses: Mapping[str, OptionSpec]
    samplers: Mapping[str, OptionSpec]
    predicts: tuple[str, ...] = ()

    @property
    def doc(self) -> str:
        """The plugin's one-line summary of the family."""
        return TABLE[self.name].summary

    @property
    def default_loss(self) -> str:
        """The first loss of the table."""
        return next(iter(self.losses))

    @property
    def default_sampler(self) -> str:
        """The first sampler of the table."""
        return next(iter(self.samplers))


def _table(*specs: OptionSpec) -> Mapping[str, OptionSpec]:
    return MappingProxyType({s.name: s for s in specs})


_ANCESTRAL = _spec("ancestral", "sample every site in topological order")
#: Samplers the sampler registry does not declare (their families sample without steps).
_UNREGISTERED = _table(_ANCESTRAL, _LANGEVIN)


def _family(
    name: str, losses: Mapping[str, OptionSpec], predicts: tuple[str, ...] = ()
) -> FamilyInfo:
    """The entry of family ``name``: ``losses``, ``predicts`` and the samplers its plugin
    names, in its order."""
    options = {s: _sampler(name, s) for s in TABLE[name].samplers}
    return FamilyInfo(name, losses, MappingProxyType(options), predicts)


_PIXELCNN = _spec("pixelcnn", "", 0, channels=_int(64), layers=_int(5), after=_int(0))

FAMILY_INFO: Mapping[str, FamilyInfo] = MappingProxyType(
    {
        "latent": _family(
            "latent",
            _table(
                _spec(
                    "elbo",
                    "evidence lower bound (Kingma & Welling 2014)",
                    beta=_num(1),
                    anneal=_choice(
                        "none",
                        "none",
                        calls=(
                            _spec("linear", "", 3, start=_num(0), end=_num(1), steps=_int(10000)),
                        ),
                    ),
                    free_bits=_num(0.0),
                    enumerate=Param("names", []),
                    kl=_choice("analytic", "analytic", "mc"),
                    residual=_bool(False, "guide Normals relative to the prior (NVAE)"),
                ),
                _spec("iwae", "importance-weighted bound (Burda et al. 2016)", k=_int(16)),
                _spec(
                    "vq",
                    "VQ-VAE loss (van den Oord et al. 2017)",
                    commitment=_num(0.25),
                    codebook=_choice(
                        "ema", "loss", "ema", calls=(_spec("ema", "", 1, decay=_num(0.99)),)
                    ),
                    prior=_choice("uniform", "uniform", "pixelcnn", calls=(_PIXELCNN,)),
                ),
            ),
        ),
        "diffusion": _family(
            "diffusion",
            _table(
                _spec(
                    "dsm",
                    "denoising score matching with the SDE's kernel (Song et al. 2021)",
                    weight=_choice(
                        "none",
                        "none",
                        "likelihood",
                        "sigma2",
                        "min_snr",
                        calls=(_spec("min_snr", "", 1, gamma=_num(5)),),
                    ),
                    time=_choice("uniform", "uniform", "importance"),
                ),
                _spec("ddpm", "L_simple of Ho et al. 2020 (chain only)"),
                _spec(
                    "consistency",
                    "consistency distillation / training (Song et al. 2023)",
                    teacher=Param("model", None),
                    solver=_choice("heun", "euler", "heun"),
                    steps=_int(18),
                    metric=_choice("l2", "l2", "pseudo_huber"),
                    init=_choice(
                        "random",
                        "random",
                        "teacher",
                        doc="teacher: f starts as the teacher's network (distillation only)",
                    ),
                ),
            ),
            ("eps", "x0", "v", "score"),
        ),
        "matching": _family(
            "matching",
            _table(_spec("flow_matching", "conditional flow matching (Lipman et al. 2023)")),
            ("velocity",),
        ),
        "flow": _family(
            "flow",
            _table(_spec("nll", "exact negative log-likelihood by change of variables")),
        ),
        "adversarial": _family(
            "adversarial",
            _table(
                _spec(
                    "gan",
                    "Goodfellow et al. 2014",
                    form=_choice("nonsaturating", "minimax", "nonsaturating"),
                ),
                _spec(
                    "wasserstein",
                    "WGAN (Arjovsky et al. 2017), WGAN-GP (Gulrajani et al. 2017)",
                    penalty=_choice(
                        "gradient",
                        "none",
                        "clip",
                        "gradient",
                        "dragan",
                        calls=(
                            _spec("clip", "", 1, c=_num(0.01)),
                            _spec("gradient", "", 1, weight=_num(10)),
                            _spec("dragan", "", 1, weight=_num(10)),
                        ),
                    ),
                ),
                _spec("hinge", "hinge loss (Lim & Ye 2017; Miyato et al. 2018)"),
            ),
        ),
        "energy": _family(
            "energy",
            _table(
                _spec(
                    "contrastive_divergence",
                    "persistent contrastive divergence (Du & Mordatch 2019)",
                    sampler=_choice("langevin", "langevin", calls=(_LANGEVIN,)),
                    buffer=_int(10000),
                    reinit=_num(0.05),
                ),
                _spec("dsm", "denoising score matching (Vincent 2011)", sigma=_num(0.1)),
                _spec("ssm", "sliced score matching (Song et al. 2019)", projections=_int(1)),
            ),
        ),
    }
)


def family_of_loss(loss: str) -> list[str]:
    """The families that have a loss named ``loss``."""
    return [f for f, info in FAMILY_INFO.items() if loss in info.losses]


# ---------------------------------------------------------------- couplings, guidance, train

COUPLINGS: Mapping[str, OptionSpec] = _table(
    _spec("independent", "x0 and x1 drawn independently"),
    _spec(
        "ot",
        "minibatch optimal transport (Tong et al. 2023)",
        1,
        method=_choice("exact", "exact", "sinkhorn"),
        reg=_num(0.05),
        gap=_num(
            0.0,
            "exact: accept a pairing whose certified relative gap to the optimal cost is at "
            "most this (0: exact up to rounding)",
        ),
    ),
    _spec("schrodinger", "entropic OT / Schrodinger bridge", sigma=_num(1.0)),
    _spec("reflow", "rectified flow (Liu et al. 2023)", previous=Param("string", None)),
)

GUIDANCE: Mapping[str, OptionSpec] = _table(
    _spec(
        "classifier_free",
        "classifier-free guidance (Ho & Salimans 2022)",
        scale=_num(3),
        drop=_num(0.1),
    ),
    _spec(
        "classifier",
        "classifier guidance (Dhariwal & Nichol 2021)",
        1,
        clf=Param("net", None),
        scale=_num(1),
    ),
    _spec(
        "control",
        "ControlNet (Zhang et al. 2023)",
        base=Param("model", None),
        branch=_choice("copy", calls=(_spec("copy", "", 1, net=Param("net", None)),)),
        zero_init=_bool(True),
    ),
)

_OPTIMIZER = dict(lr=_num(None), betas=Param("numbers", None), weight_decay=_num(0.0))

TRAIN: Mapping[str, Param] = MappingProxyType(
    {
        "steps": _int(10000),
        "batch": _int(128),
        "lr": _num(1e-3),
        "optimizer": _choice(
            "adam",
            "adam",
            "adamw",
            "sgd",
            calls=(
                _spec("adam", "", 0, **_OPTIMIZER),
                _spec("adamw", "", 0, **_OPTIMIZER),
                _spec("sgd", "", 0, lr=_num(None), momentum=_num(0.0)),
            ),
        ),
        "ema": _num(None),
        "grad_clip": _num(None),
        "critic_steps": _int(1),
        "eval_every": _int(1000),
        "warmup": _int(0),
        "compile": _bool(False),
        "hflip": _bool(False, doc="mirror training images left-right at random"),
    }
)
