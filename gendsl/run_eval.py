"""``gendsl eval``: likelihood and sample-quality metrics of a trained run on held-out data.

A conditional model is evaluated on the data's own conditions: its likelihood (or ELBO) is the
conditional one, log p(x | y), and its samples are drawn for the held-out labels; on digits
with a 10-class label the bundled digits classifier (:mod:`gendsl.metrics.digits_fd`) reports
how often a sample is recognised as the class it was drawn for (``class_agreement``), next to
how often it recognises the real held-out digits (``class_agreement_data``, the ceiling).
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

from gendsl.data import Dataset, as_float
from gendsl.errors import UsageError
from gendsl.lower.base import Model
from gendsl.lower.sizes import bind_sizes
from gendsl.run_sampling import draw, set_guidance_scale
from gendsl.runs import dataset_for, open_run
from gendsl.train import resolve_device

__all__ = ["eval_run", "evaluate"]


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
) -> dict[str, float]:
    """Likelihood and sample-quality metrics of ``model`` against held-out ``data`` (for a
    conditional model: on the data's own labels, see the module docstring).  A guided model
    is evaluated at ``guidance_scale`` (default: its declared scale): the NLL is that of the
    guided probability-flow ODE, the distribution its samples come from.  FID, IS and LPIPS
    come with ``feature_networks`` (:func:`gendsl.metrics.feature_networks.load_network`)."""
    if guidance_scale is not None:  # the likelihood of the guided PF-ODE too
        set_guidance_scale(model, guidance_scale)
    real = as_float(data.x[:n])
    results: dict[str, float] = {"n": float(len(real))}
    conditions = _data_conditions(model, data, len(real))
    batch = (real, *conditions.values()) if conditions else real
    results.update(_likelihoods(model, data, batch, seed))
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
    )
    results.update(_sample_metrics(fake, real, data, seed))
    if feature_networks:
        from gendsl.metrics.feature_networks import feature_metrics

        images = fake.reshape(real.shape).clamp(0, 1)
        results.update(feature_metrics(feature_networks, real.float(), images))
    if _is_digits(real, data):
        results.update(_class_agreement(model, fake, real, conditions))
    if model.capabilities.steps and model.last_nfe is not None:
        results["nfe"] = float(model.last_nfe)
    return results


def _is_digits(real: Tensor, data: Dataset) -> bool:
    return real[0].numel() == 64 and data.name.startswith("digits")


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
    if real[0].numel() == 784 and data.name == "fontdigits":
        results.update(metrics.fontdigits_scores(fake, reference=flat))
    return results


def _class_agreement(
    model: Model, fake: Tensor, real: Tensor, conditions: dict[str, Tensor]
) -> dict[str, float]:
    """How often the digits classifier recognises each sample as the class it was drawn for,
    and each held-out digit as its own label (the ceiling of the first)."""
    if len(conditions) != 1:
        return {}
    ((name, labels),) = conditions.items()
    if model.classes_of(name) != 10:
        return {}
    from gendsl.metrics import digits_classifier

    classifier = digits_classifier()
    with torch.no_grad():
        said_fake = classifier(fake.reshape(len(fake), 64).float().clamp(0, 1)).argmax(-1)
        said_real = classifier(real.reshape(len(real), 64).float()).argmax(-1)
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


def eval_run(args: argparse.Namespace) -> dict[str, float]:
    """``gendsl eval``: print the metrics table (or JSON with ``--json``)."""
    networks = _feature_networks(getattr(args, "features", None) or [], args.device)
    model, config = open_run(args.run, device=args.device)
    data_name = args.data or config.get("data")
    if not data_name:
        raise UsageError("--data is required: the run does not record its data set")
    data = dataset_for(model.checked, data_name, split="test", seed=args.seed, n=args.n)
    bind_sizes(model.checked, data, dict(config.get("bindings") or {}))  # the run's shapes
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
