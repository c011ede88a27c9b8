"""The family rules pass: which family a model is, and the checks that depend on it.

Every fact about a family comes from its plugin in the family table (:mod:`gendsl.families`).
:func:`recognise` decides the family from the statements that make one (the plugins'
``recognise``: ``sde``/``chain``: diffusion, ``path``: matching, ``flow``, ``critic``:
adversarial, ``energy``; none: latent) and reports a model that mixes them.
:func:`check_loss` and :func:`check_sampler` check the ``loss`` and ``sample with`` statements
against the family's table in :mod:`gendsl.analysis.library`.  Then the family's own checks
run: each plugin's ``check`` names one function ``check_<family>(cx)`` of this module, built
from the small named checks below, so a new family adds one function and names it.
"""

from __future__ import annotations

from gendsl.analysis import library as lib
from gendsl.analysis.context import Context, is_quantize, where
from gendsl.analysis.options import describe
from gendsl.analysis.resolve import unknown
from gendsl.families import table as families
from gendsl.families.base import resolve
from gendsl.frontend import ast
from gendsl.ir import Opt

__all__ = [
    "check_adversarial",
    "check_diffusion",
    "check_energy",
    "check_flow",
    "check_latent",
    "check_loss",
    "check_matching",
    "check_sampler",
    "recognise",
    "run",
]


def run(cx: Context) -> None:
    """Check the loss, the sampler and the family's rules of a model whose family is known."""
    family = cx.family
    if family is None:
        return
    cx.loss = check_loss(cx, family)
    cx.sampler = check_sampler(cx, family)
    rules = families.family(family).check
    if rules is not None:
        resolve(rules)(cx)


# ---------------------------------------------------------------------------------- recognition
def recognise(cx: Context) -> str | None:
    """The model's family (``None``: it mixes two, reported)."""
    found: list[tuple[str, ast.Stmt]] = []
    for stmt in cx.model.body:
        fam = families.family_of_statement(stmt)
        if fam is None:
            continue
        first = next(((f, s) for f, s in found if f != fam), None)
        if first is not None:
            cx.error(
                f"a model has one family: this {families.statement_keyword(stmt)} makes it "
                f"{_words(fam)}, but the {families.statement_keyword(first[1])} "
                f"{where(first[1].span, stmt.span)} makes it {_words(first[0])}",
                stmt.span,
            )
            return None
        same = next((s for f, s in found if type(s) is type(stmt)), None)
        if same is not None and not isinstance(stmt, ast.Flow):
            cx.error(
                f"only one {families.statement_keyword(stmt)} statement is allowed; the first is "
                f"{where(same.span, stmt.span)}",
                stmt.span,
            )
        if isinstance(stmt, ast.SDE | ast.Chain) and any(
            isinstance(s, ast.SDE | ast.Chain) and type(s) is not type(stmt) for _, s in found
        ):
            cx.error("a model has either an sde or a chain, not both", stmt.span)
        found.append((fam, stmt))
    return found[0][0] if found else families.DEFAULT


# ---------------------------------------------------------------------------------- loss, sampler
def check_loss(cx: Context, family: str) -> Opt | None:
    """The model's loss, checked against the family's losses (``None``: missing or wrong)."""
    info = lib.FAMILY_INFO[family]
    stmt = cx.one(ast.Loss)
    if stmt is None:
        cx.error(
            f"expected a loss statement in model '{cx.model.name}', e.g. loss {info.default_loss}",
            cx.model.name_span,
        )
        return None
    opt = stmt.option
    if opt.name not in info.losses:
        if lib.family_of_loss(opt.name):
            cx.error(
                f"loss {opt.name} does not fit {_words(family)}; expected one of "
                f"{', '.join(info.losses)}",
                opt.span,
            )
        else:
            cx.error(unknown(f"unknown loss '{opt.name}'", opt.name, info.losses), opt.span)
        return None
    return cx.opts.check(info.losses[opt.name], opt.args, opt.kwargs, opt.span, f"loss {opt.name}")


def check_sampler(cx: Context, family: str) -> Opt:
    """The model's sampler with its options (the family's default when it names none)."""
    info = lib.FAMILY_INFO[family]
    stmt = cx.one(ast.SamplerDecl)
    if stmt is None:
        name = info.default_sampler
        return Opt(name, (), info.samplers[name].defaults())
    opt = stmt.option
    if opt.name not in info.samplers:
        cx.error(
            unknown(
                f"unknown sampler '{opt.name}' for {_words(family)}",
                opt.name,
                info.samplers,
            ),
            opt.span,
        )
        return Opt(opt.name, (), {}, opt.span)
    return cx.opts.check(
        info.samplers[opt.name],
        opt.args,
        opt.kwargs,
        opt.span,
        f"sampler {opt.name}",
        family=family,
    )


# ---------------------------------------------------------------------------------- families
def check_latent(cx: Context) -> None:
    """A latent-variable model: no predict or couple, and the data is generated."""
    no_predict(cx)
    no_couple(cx)
    loss_rules(cx)
    data_generated(cx)
    common_rules(cx)


def check_diffusion(cx: Context) -> None:
    """A diffusion model: a predict statement with a network of the noised data and t."""
    needs_predict(cx)
    no_couple(cx)
    loss_rules(cx)
    clip_needs_images(cx)
    common_rules(cx)


def clip_needs_images(cx: Context) -> None:
    """``sample with NAME(clip = true)`` clips the denoised estimate to [0, 1], the range only
    ``image`` data declares."""
    stmt = cx.one(ast.SamplerDecl)
    arg = None if stmt is None else stmt.option.kwarg("clip")
    if arg is None or cx.sampler is None or cx.sampler.kwargs.get("clip") is not True:
        return
    data = [v for v in cx.variables.values() if v.role == "data"]
    if data and not any(v.type.kind == "image" for v in data):
        cx.error(
            f"clip = true needs image data (values in [0, 1]); '{data[0].name}' is "
            f"{data[0].type.kind}: declare it 'image[C, H, W]' or drop clip",
            arg.span,
        )


def check_matching(cx: Context) -> None:
    """A flow-matching model: a predict statement, and an optional coupling."""
    needs_predict(cx)
    coupling(cx)
    loss_rules(cx)
    common_rules(cx)


def check_flow(cx: Context) -> None:
    """A normalizing-flow model: no predict or couple, and the data is generated."""
    no_predict(cx)
    no_couple(cx)
    loss_rules(cx)
    data_generated(cx)
    common_rules(cx)


def check_adversarial(cx: Context) -> None:
    """An adversarial model: no predict or couple, and the data is generated."""
    no_predict(cx)
    no_couple(cx)
    loss_rules(cx)
    data_generated(cx)
    common_rules(cx)


def check_energy(cx: Context) -> None:
    """An energy-based model: no predict or couple."""
    no_predict(cx)
    no_couple(cx)
    loss_rules(cx)
    common_rules(cx)


# ---------------------------------------------------------------------------------- the checks
def _words(family: str | None) -> str:
    """How diagnostics name a model of ``family`` (its plugin's ``words``)."""
    return families.family(family or families.DEFAULT).words


def no_predict(cx: Context) -> None:
    """A family without a network prediction has no ``predict`` statement."""
    predict = cx.one(ast.Predict)
    if predict is not None:
        cx.error(f"predict has no meaning in {_words(cx.family)}", predict.span)


def needs_predict(cx: Context) -> None:
    """The family trains a network prediction: ``predict`` is there and well formed (the
    error suggests the plugin's ``predict_example``)."""
    predict = cx.one(ast.Predict)
    if predict is None:
        example = families.family(cx.family or families.DEFAULT).predict_example
        cx.error(
            f"{_words(cx.family)} needs a predict statement, e.g. '{example}'", cx.model.name_span
        )
    else:
        check_predict(cx, predict)


def no_couple(cx: Context) -> None:
    """Only flow matching pairs noise with data."""
    couple = cx.one(ast.Couple)
    if couple is not None:
        cx.error(f"couple has no meaning in {_words(cx.family)}", couple.span)


def coupling(cx: Context) -> None:
    """The options of ``couple x0, x1 by ...``."""
    couple = cx.one(ast.Couple)
    if couple is None:
        return
    opt = cx.opts.option(lib.COUPLINGS, couple.coupling, "coupling")
    gap = couple.coupling.kwarg("gap")
    if opt is not None and gap is not None and opt.kwargs.get("method") == "sinkhorn":
        cx.error(
            "gap bounds the cost of ot(exact)'s pairing; ot(sinkhorn) draws pairs from the "
            "entropic plan: drop gap, or write ot(exact, gap = ...)",
            gap.span,
        )


def data_generated(cx: Context) -> None:
    """Every data variable is sampled or assigned by the model."""
    for v in cx.variables.values():
        if v.role == "data" and v.name not in cx.sampled:
            cx.error(
                f"data '{v.name}' is never generated: sample it ('{v.name} | z ~ ...') "
                f"or assign it ('{v.name} = G(z)')",
                v.span,
            )


def common_rules(cx: Context) -> None:
    """The checks of every family: latents are sampled, codes quantised, guidance fits."""
    for v in cx.variables.values():
        if v.role == "latent" and v.name not in cx.sampled:
            cx.error(
                f"latent '{v.name}' is never sampled: add e.g. '{v.name} ~ Normal(0, 1)'",
                v.span,
            )
    for stmt in cx.model.body:
        if isinstance(stmt, ast.Assign) and is_quantize(stmt):
            var = cx.variables.get(stmt.target)
            if var is None or var.type.kind != "code":
                cx.error(
                    f"quantize(...) must be assigned to a code latent; '{stmt.target}' is "
                    "not one (declare 'latent e : code[K = 64, dim = 16]')",
                    stmt.span,
                )
    guidance(cx)


def loss_rules(cx: Context) -> None:
    """What a loss needs of the model: ddpm a chain, elbo/iwae a guide, vq a quantised code."""
    loss = cx.loss
    if loss is None:
        return
    if loss.name == "ddpm" and not isinstance(cx.one(ast.Chain), ast.Chain):
        cx.error("loss ddpm (L_simple) needs a chain; this model has an sde", loss.span)
    if loss.name in ("elbo", "iwae"):
        needs_guide(cx, loss)
    if loss.name == "vq":
        code = any(v.type.kind == "code" for v in cx.variables.values())
        quant = any(isinstance(s, ast.Assign) and is_quantize(s) for s in cx.model.body)
        if not (code and quant):
            cx.error(
                "loss vq needs a code latent assigned by quantize, e.g. 'latent e : "
                "code[K = 64, dim = 16]' and 'e = quantize(enc(x))'",
                loss.span,
            )


def needs_guide(cx: Context, loss: Opt) -> None:
    """Every sampled latent that is not enumerated has a guide."""
    enumerated = set(loss.kwargs.get("enumerate") or [])
    for v in cx.variables.values():
        if v.role != "latent" or v.name in enumerated or v.name not in cx.sampled:
            continue
        if v.name not in cx.guide_sampled:
            cx.error(
                f"loss {loss.name} needs a guide for latent '{v.name}': add "
                f"'guide {{ {v.name} | x ~ Normal(enc(x)) }}' or enumerate = [{v.name}]",
                loss.span or cx.model.name_span,
            )


def check_predict(cx: Context, stmt: ast.Predict) -> None:
    """``predict KIND = net(x_t, t, ...)`` or ``predict x0 = consistency(f, ...)``."""
    info = lib.FAMILY_INFO[cx.family or families.DEFAULT]
    if stmt.kind not in info.predicts:
        cx.error(
            unknown(
                f"unknown prediction '{stmt.kind}' for {_words(cx.family)}",
                stmt.kind,
                info.predicts,
            ),
            stmt.kind_span,
        )
    call = stmt.value
    if isinstance(call, ast.Call) and call.func == "consistency":
        consistency(cx, stmt, call)
        return
    if not (isinstance(call, ast.Call) and call.func in cx.net_decls):
        cx.error(
            f"predict expects a network call such as eps(x_t, t); found {describe(call)}",
            call.span,
        )
        return
    names = [a.id for a in call.args if isinstance(a, ast.Name)]
    if "t" not in names:
        cx.error("the network in predict must take the time t", call.span)
    if not any(cx.variables.get(n, None) and cx.variables[n].role == "noised" for n in names):
        noised = next((v.name for v in cx.variables.values() if v.role == "noised"), "x_t")
        cx.error(f"the network in predict must take the noised variable {noised}", call.span)


def consistency(cx: Context, stmt: ast.Predict, call: ast.Call) -> None:
    """``predict x0 = consistency(f, sigma_data = 0.5)`` with ``f`` a network."""
    if stmt.kind != "x0":
        cx.error("consistency(...) is only allowed in 'predict x0 = ...'", call.span)
    if not call.args or not isinstance(call.args[0], ast.Name):
        cx.error("expected consistency(f, sigma_data = 0.5) with f a network", call.span)
        return
    cx.opts.check(lib.SPECIAL_FUNCTIONS["consistency"], (), call.kwargs, call.span, "consistency")
    name = call.args[0]
    if name.id not in cx.net_decls:
        cx.not_a_net(name.id, name.span, "consistency")


def guidance(cx: Context) -> None:
    """``guidance ...``: its options, and the condition each kind of guidance needs."""
    stmt = cx.one(ast.Guidance)
    if stmt is None:
        return
    opt = cx.opts.option(lib.GUIDANCE, stmt.option, "guidance")
    if opt is None:
        return
    labels = [v for v in cx.condition_vars() if v.type.kind == "label"]
    predict = cx.one(ast.Predict)
    args = set()
    if predict is not None and isinstance(predict.value, ast.Call):
        args = {a.id for a in predict.value.args if isinstance(a, ast.Name)}
    guided = labels + [v for v in cx.condition_vars() if v.type.kind == "real"]
    if opt.name == "classifier_free" and not any(v.name in args for v in guided):
        cx.error(
            "guidance classifier_free needs a label condition given to the predict network, "
            "e.g. 'condition y : label[10]' and 'predict eps = eps(x_t, t, y)'",
            stmt.span,
        )
    if opt.name == "classifier" and not labels:
        cx.error(
            "guidance classifier needs a label condition, e.g. 'condition y : label[10]'",
            stmt.span,
        )
    if opt.name == "control" and not cx.condition_vars():
        cx.error(
            "guidance control needs a condition, e.g. 'condition c : image[1, 8, 8]'",
            stmt.span,
        )
