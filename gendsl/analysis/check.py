"""The checker: from a parsed file to one :class:`~gendsl.analysis.model.CheckedModel` per model.

It resolves imports and ``extends``, then :func:`check_model` runs the checker's passes on each
merged model, sharing one :class:`~gendsl.analysis.context.Context`: :mod:`~.scope` (names and
the types of variables), :mod:`~.types` (expressions, statements, distributions and their
arguments), :mod:`~.family_rules` (the family; whether the loss, sampler, predict, coupling and
guidance fit it), :mod:`~.shapes` (network shapes, from how each network is used) and
:mod:`~.graph` (the model graph: no cycles, evaluation order).  Options are checked against
:mod:`gendsl.analysis.library` throughout.  It collects every error of a file before raising
:class:`~gendsl.errors.SpecErrors`.  ``docs/checker.md`` describes the passes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import networkx as nx

from gendsl.analysis import family_rules, latent_space, let_constants, shapes, types
from gendsl.analysis import scope as scope_pass
from gendsl.analysis.consistency_init import starts_from_teacher, teacher_start
from gendsl.analysis.context import Context
from gendsl.analysis.graph import build_graph, find_cycle, topological
from gendsl.analysis.model import CheckedModel
from gendsl.analysis.resolve import Scope, closest, load, merged_model
from gendsl.analysis.supported import unsupported
from gendsl.analysis.to_ir import to_ir
from gendsl.analysis.usage import one_data_variable, path_source, unused_latents
from gendsl.errors import Diagnostic, SpecError, SpecErrors, UsageError
from gendsl.frontend import ast
from gendsl.frontend.printer import format_statement
from gendsl.ir import Variable, VarType
from gendsl.source import Span

__all__ = [
    "check_file",
    "check_model",
    "check_text",
    "checked_model",
    "load_checked",
    "model_graph",
    "report",
]


def check_model(scope: Scope, model: ast.Model) -> tuple[CheckedModel | None, list[Diagnostic]]:
    """Run the checker's passes on one merged model: its checked form (``None`` if it has
    errors) and its errors, in the order the passes found them.

    scope (names, types of variables) -> types (expressions, statements, sampling sites) ->
    family (recognition, train, loss, sampler, the family's rules) -> shapes (network
    signatures) -> graph (the model graph, unused latents, one data variable, cycles).
    """
    cx = Context(scope, let_constants.substitute(model))
    written = cx.model
    pending, go_on = latent_space.run(cx)
    if not go_on:
        return None, cx.errors
    scope_pass.run(cx)
    space = latent_space.finish(cx, pending, scope_pass.ScopePass(cx).vartype)
    types.run(cx)
    cx.family = family_rules.recognise(cx)
    cx.train = types.check_train(cx)
    family_rules.run(cx)
    latent_space.check_family(cx, pending)
    shapes.run(cx)
    graph = build_graph(cx)
    unused_latents(cx.variables, cx.sampled, graph, cx.error)
    if cx.family is not None:
        one_data_variable(cx.variables, cx.family, cx.error, source=path_source(model))
    cycle = find_cycle(graph)
    if cycle is not None:
        names, span = cycle
        cx.error(f"cycle in the model: {' -> '.join(names)}", span)
    if cx.errors or cx.family is None or cx.loss is None or cx.sampler is None:
        return None, cx.errors
    checked = to_ir(checked_model(cx, graph))
    if space is not None:  # the model as written: its derivation depends on every statement
        statements = tuple(format_statement(s) for s in written.body)
        checked = dataclasses.replace(checked, latent_space=space, statements=statements)
        latent_space.add_to_graph(checked.graph, space)
    return checked, cx.errors


def checked_model(cx: Context, graph: nx.DiGraph) -> CheckedModel:
    """The :class:`CheckedModel` of a model whose passes found no error."""
    assert cx.family is not None and cx.loss is not None and cx.sampler is not None
    variables = {
        n: Variable(v.name, v.role, VarType(v.type.kind, cx.shapes[n], v.type.classes), v.span)
        if v.role == "derived" and n in cx.shapes
        else v
        for n, v in cx.variables.items()
    }
    targets = [s.name for s in cx.sites]
    assigns = [s for s in cx.model.body if isinstance(s, ast.Assign)]
    order = topological(graph, [*targets, *(a.target for a in assigns)], guide=False)
    by_name = {s.name: s for s in cx.sites}
    by_assign = {a.target: a for a in assigns}
    guide_order = topological(graph, [s.name for s in cx.guide_sites], guide=True)
    guide_by = {s.name: s for s in cx.guide_sites}
    return CheckedModel(
        name=cx.model.name,
        family=cx.family,
        source=cx.scope.sources[cx.model.name_span.file],
        ast=cx.model,
        variables=variables,
        lets=dict(cx.lets),
        nets=dict(cx.nets),
        sites=tuple(by_name[n] for n in order if n in by_name),
        guide=tuple(guide_by[n] for n in guide_order),
        assigns=tuple(by_assign[n] for n in order if n in by_assign),
        flows=dict(cx.flows),
        process=cx.one(ast.SDE) or cx.one(ast.Chain),
        path=cx.one(ast.Path),
        couple=cx.one(ast.Couple),
        predict=cx.one(ast.Predict),
        critic=cx.one(ast.Critic),
        energy=cx.one(ast.Energy),
        guidance=cx.one(ast.Guidance),
        loss=cx.loss,
        sampler=cx.sampler,
        train=cx.train,
        sizes=dict(cx.sizes),
        graph=graph,
        conditional=any(v.role == "condition" for v in variables.values()),
        base=cx.model.base,
    )


# ---------------------------------------------------------------------------------- entry points


def _validate(model: CheckedModel) -> list[Diagnostic]:
    """The symbolic core's checks (SDE affinity, chain form, path) of a model.

    Imported here, not at the top, so that checking a model without a process never loads
    sympy.
    """
    from gendsl.symbolic import validate

    return list(validate(model))


def _start_from_teacher(
    scope: Scope, model: CheckedModel
) -> tuple[CheckedModel, list[Diagnostic]]:
    """``model`` with its teacher's ``predict`` when it starts from its teacher
    (:mod:`.consistency_init`), and the errors that prevent it."""
    if not starts_from_teacher(model):
        return model, []
    name = model.loss.kwargs.get("teacher")
    written = scope.models.get(name) if isinstance(name, str) else None
    merged = merged_model(scope, written) if written is not None else None
    teacher = check_model(scope, merged)[0] if merged is not None else None
    problems: list[Diagnostic] = []

    def report(message: str, span: Span) -> None:
        problems.append(SpecError(message, span, scope.sources.get(span.file)))

    start = teacher_start(model, teacher, report)
    return dataclasses.replace(model, teacher_predict=start), problems


def _check_scope(scope: Scope) -> list[CheckedModel]:
    errors = list(scope.errors)
    if not scope.program.models:
        span = Span.point(scope.main.name, 1, 1)
        errors.append(
            SpecError(
                "the file declares no model; expected 'model NAME { ... }'", span, scope.main
            )
        )
    checked: list[CheckedModel] = []
    for model in scope.program.models:
        if scope.models.get(model.name) is not model:
            continue
        merged = merged_model(scope, model)
        if merged is None:
            errors.extend(e for e in scope.errors if e not in errors)
            continue
        result, model_errors = check_model(scope, merged)
        errors.extend(e for e in scope.errors if e not in errors)
        errors.extend(model_errors)
        if result is not None:
            problems = unsupported(result, scope) or _validate(result)
            if not problems:
                result, problems = _start_from_teacher(scope, result)
            errors.extend(problems)
            if not problems:
                checked.append(result)
    unique: list[Diagnostic] = []
    seen: set[str] = set()
    for e in errors:
        text = e.render()
        if text not in seen:
            seen.add(text)
            unique.append(e)
    if unique:
        raise SpecErrors(unique)
    return checked


def check_text(
    text: str | bytes, name: str = "<string>", *, search_dir: str | Path | None = None
) -> list[CheckedModel]:
    """Check a whole spec given as text; one :class:`CheckedModel` per model, in file order.

    Imports are resolved relative to ``search_dir`` (default: the folder of ``name`` if it names
    a file, else the current folder), then in the standard library.

    :raises SpecSyntaxError: the text does not parse.
    :raises SpecErrors: every error found in the file.
    """
    folder = Path(search_dir) if search_dir is not None else Path(name).parent
    return _check_scope(load(text, name, folder))


def check_file(path: str | Path) -> list[CheckedModel]:
    """Check the spec file at ``path`` (reported under the path as given)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"no such file: {path.as_posix()}") from None
    except IsADirectoryError:
        raise UsageError(f"{path.as_posix()} is a folder, expected a .gen file") from None
    except OSError as err:
        raise UsageError(f"cannot read {path.as_posix()}: {err.strerror}") from None
    return check_text(raw, path.as_posix(), search_dir=path.parent)


def load_checked(path_or_text: str | Path, model: str | None = None) -> CheckedModel:
    """The checked model named ``model`` (default: the file's last) of a path or a spec text."""
    is_path = isinstance(path_or_text, Path) or (
        "{" not in path_or_text and "\n" not in path_or_text
    )
    models = check_file(path_or_text) if is_path else check_text(path_or_text)
    if model is None:
        return models[-1]
    for m in models:
        if m.name == model:
            return m
    names = [m.name for m in models]
    raise SpecErrors(
        [
            SpecError(
                f"no model named '{model}'{closest(model, names)}; the file defines "
                f"{', '.join(names)}",
                None,
                models[0].source,
            )
        ]
    )


def model_graph(model: CheckedModel) -> nx.DiGraph:
    """The model graph (see :mod:`gendsl.analysis.graph`)."""
    return model.graph


def report(errors: BaseException | list[Diagnostic]) -> str:
    """The text a command-line tool prints for an error: every diagnostic, one after another."""
    if isinstance(errors, SpecErrors):
        items: list[Any] = errors.errors
    elif isinstance(errors, list):
        items = errors
    else:
        items = [errors]
    return "\n".join(e.render() if isinstance(e, Diagnostic) else str(e) for e in items) + "\n"
