"""What the back ends need from a process or a path, remembered by the spec's canonical text.

Compiling, training, sampling and evaluating a diffusion model need its process kind and
parameters (VP, sub-VP, VE recognition) and its closed forms f, g, a, s; a matching model needs
α, β, γ and their derivatives; a chain model its β_k.  The first time, sympy derives them
(:mod:`gendsl.symbolic.kernel`, :mod:`~gendsl.symbolic.path`, :mod:`~gendsl.symbolic.chain`);
they are kept in the cache folder (``$GENDSL_CACHE``, file ``closed_forms.json``) keyed by a hash
of the statement and every ``let`` printed canonically and of the deriving modules' source,
each closed form as expression text that :mod:`gendsl.symbolic.safe_expr` reads back without
sympy.  A stored entry that does not read back (damaged, or outside that small language) counts
as missing: sympy derives it again.  This module imports no sympy (only when deriving).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from gendsl import ir
from gendsl.cache import read_json, write_json
from gendsl.ir.printer import format_statement
from gendsl.symbolic.safe_expr import check_expr

__all__ = [
    "PATH_NAMES",
    "SDE_NAMES",
    "PathForms",
    "SDEForms",
    "chain_betas",
    "path_forms",
    "sde_forms",
]

_FILE = "closed_forms.json"
_SIZE = 512
_VERSION = "1"
#: The modules whose code decides the stored results.
_CODE = ("kernel", "path", "chain", "expr", "tidy", "store", "closed_forms", "safe_expr")

#: The closed forms of an SDE kernel (``a``, ``s`` may be absent) and of a path.
SDE_NAMES = ("f", "g", "a", "s")
PATH_NAMES = ("alpha", "beta", "gamma", "d_alpha", "d_beta", "d_gamma")


@dataclass
class _Forms:
    exprs: dict[str, str | None]
    texts: dict[str, str | None]
    recompute: Callable[[], Any] = field(repr=False, compare=False)
    computed: Any = field(default=None, repr=False, compare=False)

    @property
    def kernel(self) -> Any:
        """The sympy kernel object, derived on first use when the forms came from the cache."""
        if self.computed is None:
            self.computed = self.recompute()
        return self.computed


F = TypeVar("F", bound=_Forms)


@dataclass
class SDEForms(_Forms):
    """dx = f(t) x dt + g(t) dw on [0, T] with kernel N(a x0, s² I): ``exprs`` holds f, g, a, s
    as stored text (a, s None without a closed form), ``texts`` f, g, a, s2 as printed; ``kind``
    and ``params`` as :func:`gendsl.symbolic.kernel.recognise` names them."""

    var: str = "x"
    T: float = 1.0
    kind: str = "affine"
    params: dict[str, float] = field(default_factory=dict)


@dataclass
class PathForms(_Forms):
    """x_t = α x0 + β x1 + γ w: ``exprs`` and ``texts`` hold α, β, γ and their derivatives."""

    target: str = "x_t"
    x0: str = "x0"
    x1: str = "x1"
    noiseless: bool = True


def _key(family: str, statement: ir.Stmt, lets: Mapping[str, ir.Let]) -> str:
    here = Path(__file__).parent
    parts = [_VERSION, family]
    parts += [(here / f"{name}.py").read_text(encoding="utf-8") for name in _CODE]
    parts += [format_statement(statement), *sorted(format_statement(v) for v in lets.values())]
    return hashlib.sha256("\n\x00".join(parts).encode()).hexdigest()


def _lookup(key: str) -> dict[str, Any] | None:
    entries = read_json(_FILE)
    value = entries.get(key) if isinstance(entries, dict) else None
    return value if isinstance(value, dict) else None


def _keep(key: str, value: dict[str, Any]) -> None:
    entries = read_json(_FILE)
    entries = dict(entries) if isinstance(entries, dict) else {}
    entries.pop(key, None)
    entries[key] = value
    write_json(_FILE, dict(list(entries.items())[-_SIZE:]))


def _readable(exprs: object, names: tuple[str, ...], optional: tuple[str, ...] = ()) -> bool:
    return (
        isinstance(exprs, dict)
        and set(exprs) == set(names)
        and all(
            (exprs.get(n) is None and n in optional) or check_expr(exprs.get(n)) for n in names
        )
    )


def _printed(e: Any) -> str | None:
    """A sympy expression as stored text: ``str`` with its numbers (π and e inside functions
    too) as 17-digit floats."""
    import sympy as sp

    if e is None:
        return None
    constants = {c: sp.Float(sp.N(c, 17), 17) for c in e.atoms(sp.NumberSymbol)}
    return str(sp.N(e.xreplace(constants), 17))


def _sde_of(kernel: Any, recompute: Callable[[], Any]) -> SDEForms:
    import sympy as sp

    from gendsl.symbolic.expr import to_text

    closed = kernel.a is not None and kernel.s2 is not None
    exprs = {
        "f": _printed(kernel.f),
        "g": _printed(kernel.g),
        "a": _printed(kernel.a) if closed else None,
        "s": _printed(sp.sqrt(kernel.s2)) if closed else None,
    }
    texts = {
        n: None if e is None else to_text(e)
        for n, e in (("f", kernel.f), ("g", kernel.g), ("a", kernel.a), ("s2", kernel.s2))
    }
    return SDEForms(
        exprs, texts, recompute, kernel, kernel.var, kernel.T, kernel.kind, dict(kernel.params)
    )


def _stored_fields(forms: _Forms) -> dict[str, Any]:
    return {f.name: getattr(forms, f.name) for f in fields(forms) if f.name not in _DERIVED}


_DERIVED = ("recompute", "computed")


def _from_entry(
    cls: type[F],
    v: object,
    recompute: Callable[[], Any],
    names: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> F | None:
    """The forms stored in ``v``, or None when ``v`` is not a well-formed entry of ``cls``."""
    wanted = {f.name: f for f in fields(cls) if f.name not in _DERIVED}
    if (
        not isinstance(v, dict)
        or set(v) != set(wanted)
        or not _readable(v["exprs"], names, optional)
    ):
        return None
    texts, params = v["texts"], v.get("params", {})
    well_typed = (
        isinstance(texts, dict)
        and all(isinstance(x, str) or x is None for x in texts.values())
        and isinstance(params, dict)
        and all(type(x) is float for x in params.values())
        and all(
            isinstance(v[n], type(f.default))
            for n, f in wanted.items()
            if f.default is not MISSING
        )
    )
    return cls(recompute=recompute, **v) if well_typed else None


def _remembered(
    cls: type[F],
    statement: ir.Stmt,
    lets: Mapping[str, ir.Let],
    recompute: Callable[[], Any],
    convert: Callable[[Any], F],
    names: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> F:
    key = _key(cls.__name__, statement, lets)
    stored = _from_entry(cls, _lookup(key), recompute, names, optional)
    if stored is not None:
        return stored
    forms = convert(recompute())
    if _readable(forms.exprs, names, optional):
        _keep(key, _stored_fields(forms))
    return forms


def sde_forms(sde: ir.SDE, lets: Mapping[str, ir.Let]) -> SDEForms:
    """The closed forms of ``sde``'s kernel (module docstring); a located SpecError if it has
    none (derived by :func:`gendsl.symbolic.kernel.sde_kernel`)."""

    def recompute() -> Any:
        from gendsl.symbolic.kernel import sde_kernel

        return sde_kernel(sde, lets)

    return _remembered(
        SDEForms, sde, lets, recompute, lambda k: _sde_of(k, recompute), SDE_NAMES, ("a", "s")
    )


def path_forms(path: ir.Path, lets: Mapping[str, ir.Let]) -> PathForms:
    """α, β, γ and their derivatives of ``path`` (derived by
    :func:`gendsl.symbolic.path.path_velocity`)."""

    def recompute() -> Any:
        from gendsl.symbolic.path import path_velocity

        return path_velocity(path, lets)

    return _remembered(
        PathForms, path, lets, recompute, lambda k: _path_of(k, recompute), PATH_NAMES
    )


def _path_of(k: Any, recompute: Callable[[], Any]) -> PathForms:
    from gendsl.symbolic.expr import to_text

    exprs = {n: _printed(getattr(k, n)) for n in PATH_NAMES}
    texts: dict[str, str | None] = {n: to_text(getattr(k, n)) for n in PATH_NAMES}
    noiseless = bool(k.gamma == 0 and k.d_gamma == 0)
    return PathForms(exprs, texts, recompute, k, k.target, k.x0, k.x1, noiseless)


def chain_betas(chain: ir.Chain, lets: Mapping[str, ir.Let]) -> list[float]:
    """The β_k of ``chain`` (derived by :func:`gendsl.symbolic.chain.chain_kernel`)."""
    key = _key("ChainKernel", chain, lets)
    v = _lookup(key)
    if isinstance(v, dict) and isinstance(v.get("betas"), list) and v["betas"]:
        betas = v["betas"]
        if all(type(b) is float and 0.0 < b < 1.0 for b in betas):
            return list(betas)
    from gendsl.symbolic.chain import chain_kernel

    betas = [float(b) for b in chain_kernel(chain, lets).betas]
    _keep(key, {"betas": betas})
    return betas
