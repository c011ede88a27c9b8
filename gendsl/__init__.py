"""gendsl: a declarative language for deep generative models.

A ``.gen`` spec declares the generative process; gendsl parses and checks it, derives the
objective (ELBO, denoising score matching from the SDE's kernel, flow matching from the path, ...)
and compiles it to PyTorch, Pyro, torchsde and torchdiffeq.

Front end (no torch): :func:`parse`, :func:`format_source`, :func:`check`.
Back end (imports torch on first use): :func:`load` returns a compiled ``torch.nn.Module``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gendsl.errors import (
    DataError,
    GendslError,
    InternalError,
    SpecError,
    SpecErrors,
    SpecSyntaxError,
    TrainingError,
    UsageError,
)
from gendsl.frontend.parser import parse
from gendsl.frontend.printer import format_source

if TYPE_CHECKING:
    from gendsl.ir import CheckedModel

__all__ = [
    "DataError",
    "GendslError",
    "InternalError",
    "SpecError",
    "SpecErrors",
    "SpecSyntaxError",
    "TrainingError",
    "UsageError",
    "__version__",
    "check",
    "format_source",
    "load",
    "parse",
]

__version__ = "0.1.0"


def check(path_or_text: str, model: str | None = None) -> CheckedModel:
    """Parse and check a spec (a path to a ``.gen`` file, or spec text); return the model.

    Raises :class:`SpecSyntaxError` or :class:`SpecErrors` (every error found) on a bad spec.
    """
    from gendsl.analysis import load_checked

    return load_checked(path_or_text, model)


def load(path_or_text: str, *, model: str | None = None, data: Any = None, **bindings: int):
    """Compile a spec to a ``torch.nn.Module`` (see :class:`gendsl.lower.base.Model`).

    Symbolic sizes are bound from ``bindings`` (``D=2``) or from ``data`` (a data set name, path
    or :class:`gendsl.data.Dataset`).
    """
    from gendsl.lower import load as _load

    return _load(path_or_text, model=model, data=data, **bindings)
