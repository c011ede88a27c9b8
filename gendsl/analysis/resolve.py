"""Imports and ``extends``: from a file to the flat statement list of each of its models.

``import "x.gen"`` is looked up relative to the importing file's folder first, then in the
installed standard library (a leading ``stdlib/`` stripped).  ``model b extends a { ... }`` puts
``a``'s statements first; a statement of ``b`` that defines the same name (``net``, ``let``,
``flow``, a declaration, a sampled or assigned variable) or is the same singleton statement
(``predict``, ``loss``, ``sample with``, ``guidance``, ``critic``, ``energy``, ``sde``, ``chain``,
``path``, ``couple``, ``guide``) replaces ``a``'s in place; ``train`` entries merge key by key.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from gendsl.errors import Diagnostic, SpecError
from gendsl.frontend import ast
from gendsl.frontend.parser import parse
from gendsl.resources import stdlib_dir
from gendsl.source import Source, Span

__all__ = ["Scope", "closest", "find_import", "load", "merged_model", "unknown"]


def closest(name: str, candidates: object) -> str:
    """``"; did you mean 'enc'?"`` for the closest candidate, or ``""``."""
    match = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def unknown(head: str, name: str, candidates: object) -> str:
    """``"unknown loss 'elbow'; did you mean 'elbo'? (expected one of elbo, iwae, vq)"``."""
    options = list(dict.fromkeys(candidates))
    listed = ", ".join(options)
    hint = closest(name, options)
    return (
        f"{head}{hint} (expected one of {listed})" if hint else f"{head}; expected one of {listed}"
    )


@dataclass
class Scope:
    """Every file read and every model visible from the main file."""

    main: Source
    program: ast.Program
    sources: dict[str, Source] = field(default_factory=dict)
    models: dict[str, ast.Model] = field(default_factory=dict)
    errors: list[Diagnostic] = field(default_factory=list)
    cycles: set[frozenset[str]] = field(default_factory=set)
    missing_import: bool = False

    def error(self, message: str, span: Span) -> None:
        """Record a located error; the span's file gives the source shown."""
        self.errors.append(SpecError(message, span, self.sources.get(span.file)))


def _read(path: Path, name: str) -> Source:
    data = path.read_bytes()
    try:
        return Source(name, data.decode("utf-8"))
    except UnicodeDecodeError:
        parse(data, name)  # raises the located "not UTF-8" syntax error
        raise


def find_import(target: str, folder: Path) -> tuple[Path, str] | None:
    """The file ``import "target"`` names in a spec of ``folder`` (a file next to it first, then
    the standard library), and the name it is reported under; ``None`` when neither exists."""
    local = folder / target
    if local.is_file():
        return local, os.path.normpath(local.as_posix())
    stripped = target.removeprefix("stdlib/")
    library = stdlib_dir() / stripped
    if library.is_file():
        return library, f"stdlib/{stripped}"
    return None


def load(text: str | bytes, name: str, folder: Path) -> Scope:
    """Parse the main file and, recursively, its imports.

    Syntax errors raise at once (:class:`SpecSyntaxError`); missing files and import cycles are
    recorded in ``Scope.errors``.
    """
    if isinstance(text, bytes):
        program = parse(text, name)
        text = text.decode("utf-8")
    else:
        program = parse(text, name)
    main = Source(name, text)
    scope = Scope(main, program, {name: main})
    _imports(scope, program, folder, [name])
    for model in program.models:
        _define(scope, model)
    return scope


def _define(scope: Scope, model: ast.Model) -> None:
    first = scope.models.get(model.name)
    if first is not None and first.name_span.file == model.name_span.file:
        scope.error(
            f"duplicate model '{model.name}': already defined on line {first.name_span.line}",
            model.name_span,
        )
        return
    scope.models[model.name] = model


def _imports(scope: Scope, program: ast.Program, folder: Path, chain: list[str]) -> None:
    for imp in program.imports:
        found = find_import(imp.path, folder)
        if found is None:
            scope.missing_import = True
            scope.error(
                f'cannot find the imported file "{imp.path}": looked in '
                f"'{folder.as_posix() or '.'}' and in the standard library",
                imp.span,
            )
            continue
        path, name = found
        if name in chain:
            cycle = " -> ".join([*chain[chain.index(name) :], name])
            scope.error(f"import cycle: {cycle}", imp.span)
            continue
        if name in scope.sources:
            continue
        source = _read(path, name)
        scope.sources[name] = source
        sub = parse(source.text, name)
        _imports(scope, sub, path.parent, [*chain, name])
        for model in sub.models:
            _define(scope, model)


# ---------------------------------------------------------------------------------- extends

_SINGLETONS = (
    ast.Predict,
    ast.Loss,
    ast.SamplerDecl,
    ast.Guidance,
    ast.Critic,
    ast.Energy,
    ast.SDE,
    ast.Chain,
    ast.Path,
    ast.Couple,
    ast.Guide,
)


def _key(stmt: ast.Stmt) -> tuple[str, str] | None:
    """What a statement defines, for overriding: two statements with one key replace."""
    if isinstance(stmt, ast.Let | ast.Net | ast.Flow):
        return ("name", stmt.name)
    if isinstance(stmt, ast.Decl):
        return ("decl", stmt.name)
    if isinstance(stmt, ast.Sample | ast.Assign):
        return ("site", stmt.target)
    if isinstance(stmt, _SINGLETONS):
        return ("singleton", type(stmt).__name__)
    return None


def _merge(base: tuple[ast.Stmt, ...], child: tuple[ast.Stmt, ...]) -> tuple[ast.Stmt, ...]:
    body = list(base)
    where = {_key(s): i for i, s in enumerate(body) if _key(s) is not None}
    for stmt in child:
        key = _key(stmt)
        if isinstance(stmt, ast.Train):
            old = next((i for i, s in enumerate(body) if isinstance(s, ast.Train)), None)
            if old is None:
                body.append(stmt)
            else:
                mine = {k.name for k in stmt.items}
                items = tuple(k for k in body[old].items if k.name not in mine) + stmt.items
                body[old] = dataclasses.replace(stmt, items=items)
        elif key is not None and key in where:
            body[where[key]] = stmt
        else:
            body.append(stmt)
    return tuple(body)


def merged_model(scope: Scope, model: ast.Model, chain: tuple[str, ...] = ()) -> ast.Model | None:
    """``model`` with its base's statements merged in (recursively); errors go to ``scope``.

    ``None`` when the base cannot be found or the ``extends`` chain loops.
    """
    if model.base is None:
        return model
    if model.base in (*chain, model.name):
        members = [*chain, model.name]
        if frozenset(members) not in scope.cycles:
            scope.cycles.add(frozenset(members))
            cycle = " -> ".join([*members[members.index(model.base) :], model.base])
            scope.error(f"extends cycle: {cycle}", model.base_span)
        return None
    base = scope.models.get(model.base)
    if base is None:
        known = [m for m in scope.models if m != model.name]
        if not scope.missing_import:  # else the base is most likely in the missing file
            scope.error(
                f"unknown base model '{model.base}'{closest(model.base, known)}",
                model.base_span,
            )
        return None
    merged_base = merged_model(scope, base, (*chain, model.name))
    if merged_base is None:
        return None
    return dataclasses.replace(model, body=_merge(merged_base.body, model.body))
