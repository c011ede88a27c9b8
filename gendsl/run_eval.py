"""``gendsl eval``: likelihood and sample-quality metrics of a trained run on held-out data.

A conditional model is evaluated on the data's own conditions: its likelihood (or ELBO) is the
conditional one, log p(x | y), and its samples are drawn for the held-out labels; on the
bundled ``digits`` (8×8) or ``fontdigits`` (28×28) with a 10-class label, the set's classifier
(:mod:`gendsl.metrics.digits_fd`, :mod:`gendsl.metrics.fontdigits_metrics`) reports how often a
sample is recognised as the class it was drawn for (``class_agreement``), next to how often it
recognises the real held-out digits (``class_agreement_data``, the ceiling).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import _SpectralNorm as SpectralNorm

from gendsl.cli_checks import parse_list
from gendsl.data import Dataset, as_float
from gendsl.errors import UsageError
from gendsl.lower.base import Model
from gendsl.lower.sizes import bind_sizes
from gendsl.run_sampling import draw, set_guidance_scale
from gendsl.runs import dataset_for, open_run
from gendsl.train import resolve_device

__all__ = ["eval_run", "evaluate", "lipschitz_constraint", "sweep_run"]


def evaluate(
    model: Model,
    data: Dataset,
    *,
    n: int = 1000,
    seed: int = 0,
    method: str | None = None,
    steps: int | None = None,
    schedule: str | None = None,
    guidance_scale: float | None = None,
    feature_networks: Mapping[str, torch.nn.Module] | None = None,
    temperature: float | None = None,
    likelihood: bool = True,
) -> dict[str, float]:
    """Likelihood and sample-quality metrics of ``model`` against held-out ``data`` (for a
    conditional model: on the data's own labels, see the module docstring).  A guided model
    is evaluated at ``guidance_scale`` (default: its declared scale): the NLL is that of the
    guided probability-flow ODE, the distribution its samples come from.  FID, IS and LPIPS
    come with ``feature_networks`` (:func:`gendsl.metrics.feature_networks.load_network`).
    ``temperature`` draws a flow's samples at that temperature (its likelihoods stay the
    model's).  ``likelihood = False`` leaves out the NLL/ELBO (for a score-based SDE on 28-px
    images its PF-ODE NLL and SDE ELBO take minutes on a CPU): sample metrics only."""
    if guidance_scale is not None:  # the likelihood of the guided PF-ODE too
        set_guidance_scale(model, guidance_scale)
    real = as_float(data.x[:n])
    results: dict[str, float] = {"n": float(len(real))}
    conditions = _data_conditions(model, data, len(real))
    batch = (real, *conditions.values()) if conditions else real
    if likelihood:
        results.update(_likelihoods(model, data, batch, seed))
        results.update(_sde_bound(model, data, real, conditions, seed))
    if len(conditions) < len(model.checked.condition_vars()):
        return results  # a condition the data cannot give (not a label): no samples to compare
    fake = draw(
        model,
        len(real),
        seed=seed,
        method=method,
        steps=steps,
        schedule=schedule,
        conditions=conditions,
        temperature=temperature,
    )
    results.update(_sample_metrics(fake, real, data, seed))
    results.update(_experiment_metrics(model, fake, real, data, seed))
    if feature_networks:
        from gendsl.metrics.feature_networks import feature_metrics

        images = fake.reshape(real.shape).clamp(0, 1)
        results.update(feature_metrics(feature_networks, real.float(), images))
    classifier = _digit_classifier(real, data)
    if classifier is not None:
        results.update(_class_agreement(model, fake, real, conditions, classifier))
    if model.capabilities.steps and model.last_nfe is not None:
        results["nfe"] = float(model.last_nfe)
    return results


def _is_digits(real: Tensor, data: Dataset) -> bool:
    return real[0].numel() == 64 and data.name.startswith("digits")


def _is_fontdigits(real: Tensor, data: Dataset) -> bool:
    return real[0].numel() == 784 and data.name == "fontdigits"


def _digit_classifier(real: Tensor, data: Dataset) -> torch.nn.Module | None:
    """The bundled classifier of the data's digits (8×8 ``digits``, 28×28 ``fontdigits``), or
    ``None`` for other data."""
    from gendsl.metrics import digits_classifier
    from gendsl.metrics.fontdigits_metrics import fontdigits_classifier

    if _is_digits(real, data):
        return digits_classifier()
    if _is_fontdigits(real, data):
        return fontdigits_classifier()
    return None


def _data_conditions(model: Model, data: Dataset, n: int) -> dict[str, Tensor]:
    """The held-out labels for the model's ``label`` condition (the data set has one label)."""
    labels = [v.name for v in model.checked.condition_vars() if v.type.kind == "label"]
    if not labels or data.y is None:
        return {}
    return {labels[0]: data.y[:n]}


def _likelihoods(model: Model, data: Dataset, batch, seed: int) -> dict[str, float]:
    """NLL (exact families) and negative ELBO (latent ones), nats and bits per dimension."""
    results: dict[str, float] = {}
    dims = int(np.prod(data.x.shape[1:]))
    can = model.capabilities
    bounds: list[tuple[str, Callable[..., Tensor]]] = []
    if can.likelihood:
        log_prob: Callable[..., Tensor] = model.log_prob
        if data.levels and can.dequantized_likelihood:
            # quantised data: the bound for uniformly dequantised data (Theis et al. 2016)
            log_prob = functools.partial(model.log_prob, dequantize=data.levels)
            results["dequantized_levels"] = float(data.levels)
        bounds.append(("nll", log_prob))
    if can.elbo:
        bounds.append(("neg_elbo", model.elbo))
    for key, method_fn in bounds:
        with torch.no_grad():
            torch.manual_seed(seed)
            values = _batched(method_fn, batch, model.like.device)
        nats = -float(values.mean())
        results[f"{key}_nats"] = nats
        results[f"{key}_bits_per_dim"] = nats / (dims * math.log(2))
    return results


def _sde_bound(
    model: Model, data: Dataset, real: Tensor, conditions: dict[str, Tensor], seed: int
) -> dict[str, float]:
    """A score-based SDE model's variational bound on −log p(x) (:mod:`gendsl.metrics.sde_elbo`,
    Song et al. 2021b), next to its PF-ODE NLL; quantised data dequantised as for the NLL."""
    from gendsl.metrics import pf_ode
    from gendsl.metrics.sde_elbo import sde_neg_elbo
    from gendsl.processes.chain import DiscreteChain

    process = getattr(model, "process", None)
    if model.family != "diffusion" or process is None or isinstance(process, DiscreteChain):
        return {}
    device = model.like.device
    gen = torch.Generator(device=device).manual_seed(seed)
    dims = int(np.prod(data.x.shape[1:]))
    levels = data.levels if model.capabilities.dequantized_likelihood else None
    parts = []
    for i in range(0, len(real), 256):
        x0 = real[i : i + 256].to(device)
        if levels:
            x0 = pf_ode.dequantize(x0, levels=levels, generator=gen)
        cond = {k: v[i : i + 256].to(device) for k, v in conditions.items()}
        score_fn = model.sampling_score_fn(cond, scale=model.guidance_scale)
        with torch.no_grad():
            parts.append(sde_neg_elbo(process, score_fn, x0, generator=gen).cpu())
    nats = float(torch.cat(parts).mean()) + (dims * math.log(levels) if levels else 0.0)
    return {"sde_neg_elbo_nats": nats, "sde_neg_elbo_bits_per_dim": nats / (dims * math.log(2))}


def _sample_metrics(fake: Tensor, real: Tensor, data: Dataset, seed: int) -> dict[str, float]:
    """W2, sliced W2, MMD, precision/recall and (digits) digits-FD of samples vs data."""
    from gendsl import metrics

    fake = fake.reshape(len(fake), -1).float()
    flat = real.reshape(len(real), -1).float()
    results = {
        "w2": metrics.w2(fake, flat),
        "sliced_w2": metrics.sliced_w2(fake, flat, generator=torch.Generator().manual_seed(seed)),
        "mmd": metrics.mmd(fake, flat),
    }
    results["precision"], results["recall"] = metrics.precision_recall(flat, fake)
    if _is_digits(real, data):
        results["digits_fd"] = metrics.digits_fd(fake.clamp(0, 1), reference=flat)
    if _is_fontdigits(real, data):
        results.update(metrics.fontdigits_scores(fake, reference=flat))
    return results


def _experiment_metrics(
    model: Model, fake: Tensor, real: Tensor, data: Dataset, seed: int
) -> dict[str, float]:
    """Mode coverage on the Gaussian-mixture toy sets (:mod:`gendsl.metrics.modes`) and, for a
    Lipschitz-constrained critic, the Kantorovich–Rubinstein gap next to the exact W1
    (:mod:`gendsl.metrics.duality`)."""
    from gendsl.data import toy

    results: dict[str, float] = {}
    flat = fake.reshape(len(fake), -1).float().cpu()
    if data.name in toy.MIXTURES and flat.shape[1] == 2:
        from gendsl.metrics.modes import mode_coverage

        centres, std = toy.mixture_modes(data.name)
        results.update(mode_coverage(flat, centres, std).as_metrics())
    constraint = lipschitz_constraint(model)
    # a conditional critic scores (x, y) pairs: its gap is no estimate of W1 between the x laws
    if constraint is not None and not model.checked.conditional:
        from gendsl.metrics.duality import kr_duality

        device = model.like.device
        gen = torch.Generator().manual_seed(seed)
        was_training = model.training
        model.eval()
        try:
            results.update(
                kr_duality(
                    model.critic,
                    real.reshape(flat.shape).float().to(device),
                    flat.to(device),
                    generator=gen,
                )
            )
        finally:
            model.train(was_training)
    return results


def lipschitz_constraint(model: Model) -> str | None:
    """How an adversarial model's critic is kept Lipschitz — ``clip``, ``gradient``,
    ``dragan`` (wasserstein losses) or ``spectral_norm`` — or None (no such critic)."""
    if getattr(model, "family", None) != "adversarial":
        return None
    if model.loss_name == "wasserstein" and model.penalty != "none":
        return str(model.penalty)
    critic_modules = (m for n in model.critic_nets for m in model.nets[n].modules())
    if any(_spectrally_normalised(m) for m in critic_modules):
        return "spectral_norm"
    return None


def _spectrally_normalised(module: torch.nn.Module) -> bool:
    """Whether ``module``'s weight is parametrised by ``torch``'s spectral normalisation."""
    if not parametrize.is_parametrized(module, "weight"):
        return False
    return any(isinstance(p, SpectralNorm) for p in module.parametrizations["weight"])


def _class_agreement(
    model: Model,
    fake: Tensor,
    real: Tensor,
    conditions: dict[str, Tensor],
    classifier: torch.nn.Module,
) -> dict[str, float]:
    """How often the digits ``classifier`` recognises each sample as the class it was drawn
    for, and each held-out digit as its own label (the ceiling of the first)."""
    if len(conditions) != 1:
        return {}
    ((name, labels),) = conditions.items()
    if model.classes_of(name) != 10:
        return {}
    size = real[0].numel()
    with torch.no_grad():
        said_fake = classifier(fake.reshape(len(fake), size).float().clamp(0, 1)).argmax(-1)
        said_real = classifier(real.reshape(len(real), size).float()).argmax(-1)
    labels = labels.cpu()
    return {
        "class_agreement": float((said_fake == labels).float().mean()),
        "class_agreement_data": float((said_real == labels).float().mean()),
    }


def _batched(fn, batch, device, size: int = 256) -> torch.Tensor:
    if isinstance(batch, tuple):
        n = len(batch[0])
        parts = [fn(tuple(b[i : i + size].to(device) for b in batch)) for i in range(0, n, size)]
    else:
        parts = [fn(batch[i : i + size].to(device)) for i in range(0, len(batch), size)]
    return torch.cat([p.detach().cpu().reshape(-1) for p in parts])


def _feature_networks(pairs: Sequence[str], device: str) -> dict[str, torch.nn.Module]:
    """The ``--features NAME=PATH`` networks, loaded from their local weights files."""
    from gendsl.metrics.feature_networks import load_network, parse_features

    paths = parse_features(pairs)
    dev = resolve_device(device)
    return {name: load_network(name, path).to(dev) for name, path in paths.items()}


def sweep_run(args: argparse.Namespace, model: Model, data: Dataset) -> list[dict]:
    """``gendsl eval --nfe-sweep`` / ``--guidance-sweep``: the rows of
    :mod:`gendsl.metrics.sweeps`, printed (Markdown or ``--json``) and plotted with ``--plot``."""
    from gendsl.metrics import sweeps

    real = as_float(data.x[: args.n])
    extra = _digits_fd if _is_digits(real, data) else None
    fd = ["digits_fd"] if extra else []
    if args.nfe_sweep:
        budgets = parse_list("--nfe-sweep", args.nfe_sweep, int)
        chosen = [s for s in (args.samplers or "").split(",") if s]
        rows = sweeps.nfe_sweep(model, real, budgets, seed=args.seed, samplers=chosen, extra=extra)
        plot = {"x": "nfe", "ys": ["w2", *fd], "group": "sampler", "log_x": True}
        plot.update(log_y=True, ticks=budgets)
    else:
        scales = parse_list("--guidance-sweep", args.guidance_sweep, float)
        conditions = _data_conditions(model, data, len(real))
        rows = sweeps.guidance_sweep(model, real, conditions, scales, seed=args.seed, extra=extra)
        plot = {"x": "guidance_scale", "ys": ["w2", "precision", "recall", *fd]}
    if args.plot:
        sweeps.plot_rows(rows, args.plot, title=f"{model.checked.name} on {data.name}", **plot)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(f"{model.checked.name} on {data.name} (test split, n = {len(real)})")
        print(sweeps.rows_table(rows))
    return rows


def _digits_fd(fake: Tensor, real: Tensor) -> dict[str, float]:
    from gendsl import metrics

    return {"digits_fd": metrics.digits_fd(fake.clamp(0, 1), reference=real)}


def eval_run(args: argparse.Namespace) -> dict[str, float] | list[dict]:
    """``gendsl eval``: print the metrics table (or JSON with ``--json``), or a sweep's."""
    networks = _feature_networks(getattr(args, "features", None) or [], args.device)
    model, config = open_run(args.run, device=args.device)
    data_name = args.data or config.get("data")
    if not data_name:
        raise UsageError("--data is required: the run does not record its data set")
    data = dataset_for(model.checked, data_name, split="test", seed=args.seed, n=args.n)
    bind_sizes(model.checked, data, dict(config.get("bindings") or {}))  # the run's shapes
    if getattr(args, "nfe_sweep", None) or getattr(args, "guidance_sweep", None):
        return sweep_run(args, model, data)
    results = evaluate(
        model,
        data,
        n=args.n,
        seed=args.seed,
        method=args.method,
        steps=args.steps,
        schedule=args.schedule,
        guidance_scale=getattr(args, "guidance_scale", None),
        feature_networks=networks,
        temperature=getattr(args, "temperature", None),
        likelihood=not getattr(args, "no_likelihood", False),
    )
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
        return results
    given = " given its labels" if model.checked.condition_vars() else ""
    print(f"{model.checked.name} on {data.name}{given} (test split, n = {int(results['n'])})")
    print("| metric | value |")
    print("|---|---:|")
    for key, value in results.items():
        if key != "n":
            print(f"| {key} | {value:.5g} |")
    return results
