"""The symbolic checks the checker runs on a model's sde, chain or path.

The checks are the ``symbolic_check`` hook of the model's family (:mod:`gendsl.families`); they
import sympy when they run, and only the diffusion and matching families have any, so checking
a latent, flow, adversarial or energy model stays fast.  Importing sympy and running its
algebra costs most of a second, so a process that passed the checks once is remembered on disk (in
``$GENDSL_CACHE`` or ``~/.cache/gendsl``) by a hash of its canonical text and of every ``let``:
checking it again imports no sympy at all.  Failures are never cached (their diagnostics are
re-derived with fresh locations).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from gendsl.cache import read_json, write_json
from gendsl.errors import SpecError
from gendsl.families import family
from gendsl.families.base import SymbolicCheck
from gendsl.ir import CheckedModel
from gendsl.ir.printer import format_statement
from gendsl.source import Source

__all__ = ["validate"]


def _source_of(err: SpecError, model: CheckedModel) -> Source | None:
    """The source the error's span points into (an imported base model lives in another file)."""
    if err.span is None or err.span.file == model.source.name:
        return model.source
    try:
        return Source(err.span.file, Path(err.span.file).read_text(encoding="utf-8"))
    except OSError:
        return None


#: validate() results by the statements they depend on (canonical text and spans, so that an
#: error found once is reported at the same place): models that extend one base share its process.
_CACHE: dict[tuple, list[SpecError]] = {}


def _key(model: CheckedModel) -> tuple:
    """The canonical text of the checked statements and where they are (hashing the text, not
    the tree, so that a long flat sum does not recurse)."""
    nodes = [model.process, model.path, *(model.lets[n] for n in sorted(model.lets))]
    return fingerprint(model), tuple(getattr(n, "span", None) for n in nodes)


#: Bump when the checks change, so that old cache entries stop counting.
CHECKS_VERSION = "2"
_CACHE_FILE = "symbolic-checks.json"
_CACHE_SIZE = 4096


def fingerprint(model: CheckedModel) -> str:
    """A hash of everything the checks read: the process/path statements and every let."""
    parts = [CHECKS_VERSION]
    parts += [format_statement(n) for n in (model.process, model.path) if n is not None]
    parts += sorted(format_statement(let) for let in model.lets.values())
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _passed() -> list[str]:
    value = read_json(_CACHE_FILE)
    return [str(v) for v in value] if isinstance(value, list) else []


def _remember(digest: str) -> None:
    """Add ``digest`` to the on-disk list of processes that passed."""
    entries = [*[d for d in _passed() if d != digest][-(_CACHE_SIZE - 1) :], digest]
    write_json(_CACHE_FILE, entries)


def validate(model: CheckedModel) -> list[SpecError]:
    """Errors of the symbolic checks of the model's family (its plugin's ``symbolic_check``):
    the sde (affine drift, x-free diffusion, dt/dw terms, time range), chain
    (variance-preserving Gaussian AR(1) step) or path (linear, right ends); [] if none."""
    check = family(model.family).symbolic_check
    if check is None:
        return []
    key = _key(model)
    if key not in _CACHE:
        digest = key[0]
        if digest in _passed():
            _CACHE[key] = []
        else:
            _CACHE[key] = _validate(model, check)
            if not _CACHE[key]:
                _remember(digest)
    return list(_CACHE[key])


def _validate(model: CheckedModel, check: SymbolicCheck) -> list[SpecError]:
    try:
        check(model)
    except SpecError as err:
        err.source = err.source or _source_of(err, model)
        return [err]
    return []
