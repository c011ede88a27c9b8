"""Runs: what ``gendsl train``, ``sample``, ``eval`` and ``compile`` do, as plain functions.

A *run directory* holds ``checkpoint.pt`` (written atomically by :func:`gendsl.train.fit`; it
carries the weights, the spec text and the run's configuration), ``metrics.jsonl`` and a copy of
the spec.  Everything needed to rebuild the model travels inside the checkpoint, so
``gendsl sample RUN`` works on a checkpoint file copied anywhere.  Checkpoints are read with
``torch.load(weights_only=True)``: a run directory cannot execute code.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gendsl.analysis import load_checked
from gendsl.analysis.model import CheckedModel, Opt
from gendsl.data import BUNDLED, Dataset, as_float, check_against, load_dataset, toy
from gendsl.errors import DataError, UsageError
from gendsl.lower import compile_model
from gendsl.lower.base import Model
from gendsl.train import CHECKPOINT, fit, load_checkpoint, load_weights, resolve_device

__all__ = [
    "RunConfig",
    "build_model",
    "eval_run",
    "evaluate",
    "open_run",
    "sample_run",
    "train_run",
]

RunConfig = dict[str, Any]

# train { } keys -> fit() keywords (those spelled differently)
_TRAIN_DEFAULTS = {"steps": 2000, "batch": 128, "lr": 1e-3}


# ----------------------------------------------------------------------------- building


def _decl(checked: CheckedModel, name: str) -> dict[str, Any]:
    var = checked.variables[name]
    shape = list(var.type.shape)
    if var.type.kind == "label":
        shape = [var.type.classes]
    return {"name": name, "type": var.type.kind, "shape": shape, "span": var.span}


def _dataset(
    checked: CheckedModel, data: str | Dataset, *, split: str, seed: int, n: int | None = None
) -> Dataset:
    """Load ``data`` shaped as the spec declares it (an ``image`` declaration gets images)."""
    if isinstance(data, Dataset):
        return data
    declared = checked.data_vars()
    as_image = True if declared and declared[0].type.kind == "image" else None
    if data in toy.NAMES:  # a toy set draws as many fresh points as asked
        return load_dataset(data, split=split, seed=seed, n=n, as_image=as_image)
    dataset = load_dataset(data, split=split, seed=seed, as_image=as_image)
    return dataset if n is None or n >= len(dataset) else dataset.subset(torch.arange(n))


def bind_sizes(
    checked: CheckedModel, dataset: Dataset | None, bindings: Mapping[str, int] | None = None
) -> dict[str, int]:
    """Bind the spec's symbolic sizes from ``bindings`` and from the data set."""
    bound = dict(bindings or {})
    if dataset is None:
        return bound
    data_vars = checked.data_vars()
    if len(data_vars) != 1:
        raise UsageError(
            f"model {checked.name} declares {len(data_vars)} data variables; training from one "
            "data set needs exactly one"
        )
    bound = check_against(dataset, _decl(checked, data_vars[0].name), bindings=bound)
    for cond in checked.condition_vars():
        if cond.type.kind == "label":
            if dataset.y is None:
                raise UsageError(
                    f"model {checked.name} is conditioned on the label {cond.name}, but "
                    f"{dataset.name} has no labels"
                )
            bound = check_against(dataset, _decl(checked, cond.name), bindings=bound)
    return bound


def build_model(
    spec: str,
    *,
    model_name: str | None = None,
    data: str | Dataset | None = None,
    bindings: Mapping[str, int] | None = None,
    seed: int = 0,
) -> Model:
    """Check ``spec`` (a path or text), bind sizes from ``data``/``bindings``, compile it."""
    checked = load_checked(spec, model_name)
    dataset = None if data is None else _dataset(checked, data, split="train", seed=seed)
    bound = bind_sizes(checked, dataset, bindings)
    torch.manual_seed(seed)
    return compile_model(checked, bindings=bound)


def _train_settings(checked: CheckedModel, args: argparse.Namespace) -> dict[str, Any]:
    """``fit`` keywords from the spec's ``train { }`` block, overridden by command-line flags."""
    spec = dict(checked.train)
    out: dict[str, Any] = {k: spec.get(k, v) for k, v in _TRAIN_DEFAULTS.items()}
    opt = spec.get("optimizer")
    if isinstance(opt, Opt):
        out["optimizer"] = opt.name
        out.update({k: v for k, v in opt.kwargs.items() if k in ("lr", "weight_decay")})
        if "betas" in opt.kwargs:
            out["betas"] = tuple(opt.kwargs["betas"])
    elif isinstance(opt, str):
        out["optimizer"] = opt
    for key in ("ema", "grad_clip", "eval_every", "weight_decay", "hflip"):
        if key in spec:
            out[key] = spec[key]
    if out.get("ema") == 0:
        out["ema"] = None
    for flag, key in (
        ("steps", "steps"),
        ("batch_size", "batch"),
        ("lr", "lr"),
        ("eval_every", "eval_every"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            out[key] = value
    out["batch_size"] = int(out.pop("batch"))
    out["steps"] = int(out["steps"])
    return out


def _tensors(checked: CheckedModel, dataset: Dataset) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The training tensors: ``x``, or ``(x, y)`` for a conditional model."""
    if checked.condition_vars() and dataset.y is not None:
        return dataset.x, dataset.y
    return dataset.x


def train_run(args: argparse.Namespace) -> Path:
    """``gendsl train``: check, bind, compile, and fit; returns the run directory."""
    spec_path = Path(args.spec)
    if not spec_path.is_file():
        raise UsageError(f"no such spec file: {args.spec}")
    checked = load_checked(str(spec_path), args.model)
    out = Path(args.out or f"runs/{checked.name}")
    config: RunConfig = {
        "spec_path": str(spec_path.resolve()),
        "model": checked.name,
        "data": args.data,
        "seed": args.seed,
    }
    previous = _read_config(out / CHECKPOINT) if args.resume else {}
    config["data"] = config["data"] or previous.get("data")
    for key in ("teacher", "base"):  # pretrained parts are re-attached on --resume
        value = getattr(args, key, None) or previous.get(key)
        config[key] = str(Path(value).resolve()) if value else None
    if not config["data"]:
        raise UsageError(
            "--data is required: a bundled set (" + ", ".join(BUNDLED) + ") or a file/folder"
        )
    train = _dataset(checked, config["data"], split="train", seed=args.seed)
    held_out = _dataset(
        checked, config["data"], split="test", seed=args.seed, n=min(2000, len(train))
    )
    bindings = bind_sizes(checked, train)
    config["bindings"] = bindings
    if args.resume and args.lr is not None:
        raise UsageError(
            "--lr cannot change on --resume: the optimiser state, learning rate included, "
            "comes from the checkpoint"
        )
    torch.manual_seed(args.seed)  # the initial weights (fit seeds the rest of the run)
    model = compile_model(checked, bindings=bindings)
    _attach(
        model,
        "set_teacher",
        config["teacher"],
        "--teacher",
        "a consistency model distilled from a teacher",
    )
    _attach(model, "set_base", config["base"], "--base", "a ControlNet (guidance control)")
    config["levels"] = train.levels
    _set_levels(model, train.levels)
    settings = _train_settings(checked, args)
    if settings.get("hflip") and train.kind != "image":
        raise DataError(
            f"train {{ hflip = true }} mirrors images, but {train.name} holds samples of shape "
            f"{list(train.shape)}; declare the data as image[C, H, W] or drop hflip"
        )
    config["settings"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "spec.gen").write_text(checked.source.text)
    result = fit(
        model,
        _tensors(checked, train),
        eval_data=_tensors(checked, held_out),
        out_dir=out,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        spec_text=checked.source.text,
        config=config,
        progress=not getattr(args, "no_progress", False),
        checkpoint_every=args.checkpoint_every or max(100, settings["steps"] // 10),
        **settings,
    )
    print(
        f"trained {checked.name} for {result.step} steps: loss {result.loss:.4f}; "
        f"checkpoint {result.checkpoint}"
    )
    return out


def _set_levels(model: Model, levels: int | None) -> None:
    """Tell a model that trains on dequantised data (a flow on images) the data's levels."""
    if levels and hasattr(model, "levels"):
        model.levels = levels


def _attach(model: Model, method: str, run: str | None, flag: str, what: str) -> None:
    """Give ``model`` a pretrained part from another run (a teacher, a ControlNet base)."""
    if run is None:
        return
    if not hasattr(model, method):
        raise UsageError(f"{flag} applies only to {what}; model {model.checked.name} is not one")
    getattr(model, method)(_checkpoint_path(run))


# ----------------------------------------------------------------------------- loading runs


def _checkpoint_path(run: str | Path) -> Path:
    path = Path(run)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise UsageError(f"no checkpoint at {path}; train first with gendsl train")
    return path


def _read_config(path: Path) -> RunConfig:
    if not path.is_file():
        raise UsageError(f"--resume: no checkpoint at {path}")
    return dict(load_checkpoint(path).get("config") or {})


def open_run(run: str | Path, *, device: str = "auto") -> tuple[Model, RunConfig]:
    """Rebuild a trained model from a run directory or checkpoint (EMA weights, eval mode)."""
    path = _checkpoint_path(run)
    state = load_checkpoint(path)
    config: RunConfig = dict(state.get("config") or {})
    spec_text = str(state["spec"])
    spec_path = Path(config.get("spec_path", path.parent / "spec.gen"))
    from gendsl.analysis import check_text

    models = check_text(spec_text, str(spec_path), search_dir=spec_path.parent)
    checked = next((m for m in models if m.name == config.get("model")), models[-1])
    model = compile_model(checked, bindings=dict(config.get("bindings") or {}))
    load_weights(path, model, ema=True)
    _set_levels(model, config.get("levels"))
    model.to(resolve_device(device))
    model.eval()
    return model, config


# ----------------------------------------------------------------------------- sampling


def _generator(seed: int, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def _draw(model: Model, n: int, args: argparse.Namespace) -> torch.Tensor:
    device = model.like.device
    opts: dict[str, Any] = {}
    if args.method:
        opts["method"] = args.method
    if args.steps:
        opts["steps"] = args.steps
    if getattr(args, "schedule", None):
        opts["schedule"] = args.schedule
    with torch.no_grad():
        return model.sample(n, generator=_generator(args.seed, device), **opts).detach().cpu()


def _plot(samples: np.ndarray, data: np.ndarray | None, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    flat = samples.reshape(len(samples), -1)
    if flat.shape[1] == 2:
        fig, ax = plt.subplots(figsize=(5, 5))
        if data is not None:
            d = data.reshape(len(data), -1)
            ax.scatter(d[:, 0], d[:, 1], s=2, c="lightgray", label="data")
        ax.scatter(flat[:, 0], flat[:, 1], s=2, c="tab:blue", label="samples")
        ax.legend(loc="upper right", markerscale=4)
        ax.set_aspect("equal")
    else:
        side = round(math.sqrt(flat.shape[1] / (samples.shape[1] if samples.ndim == 4 else 1)))
        images = (
            samples.reshape(len(samples), -1, side, side)[:, 0]
            if samples.ndim == 4
            else flat.reshape(len(flat), side, side)
        )
        k = min(len(images), 64)
        cols = math.ceil(math.sqrt(k))
        rows = math.ceil(k / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(cols, rows))
        for i, ax in enumerate(np.atleast_1d(axes).ravel()):
            ax.axis("off")
            if i < k:
                ax.imshow(images[i], cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def sample_run(args: argparse.Namespace) -> np.ndarray:
    """``gendsl sample``: draw ``-n`` samples; save ``--out`` (.npy) and/or ``--plot`` (.png)."""
    if args.n < 1:
        raise UsageError(f"-n must be at least 1, got {args.n}")
    model, config = open_run(args.run, device=args.device)
    samples = _draw(model, args.n, args).numpy()
    if args.out:
        np.save(args.out, samples)
        print(f"wrote {len(samples)} samples to {args.out}")
    if args.plot:
        data = None
        if config.get("data"):
            test = _dataset(
                model.checked, config["data"], split="test", seed=0, n=min(2000, max(args.n, 500))
            )
            data = as_float(test.x).numpy()
        _plot(samples, data, Path(args.plot), f"{model.checked.name}: {len(samples)} samples")
        print(f"wrote {args.plot}")
    if not args.out and not args.plot:
        print(
            f"drew {len(samples)} samples of shape {list(samples.shape[1:])}; mean "
            f"{samples.mean():.4f}, std {samples.std():.4f} (use --out or --plot to keep them)"
        )
    return samples


# ----------------------------------------------------------------------------- evaluation


def evaluate(
    model: Model,
    data: Dataset,
    *,
    n: int = 1000,
    seed: int = 0,
    method: str | None = None,
    steps: int | None = None,
    schedule: str | None = None,
    feature_networks: Mapping[str, torch.nn.Module] | None = None,
) -> dict[str, float]:
    """Likelihood and sample-quality metrics of ``model`` against held-out ``data``; FID, IS and
    LPIPS with ``feature_networks`` (:func:`gendsl.metrics.feature_networks.load_network`)."""
    from gendsl import metrics

    device = model.like.device
    real = as_float(data.x[:n])
    results: dict[str, float] = {"n": float(len(real))}
    dims = int(np.prod(real.shape[1:]))
    batch = (real, data.y[:n]) if (model.checked.condition_vars() and data.y is not None) else real
    for name, fn in (("log_prob", "log_prob"), ("elbo", "elbo")):
        if type(model).__dict__.get(fn) is None and not _overrides(model, fn):
            continue
        method_fn = getattr(model, fn)
        if data.levels and "dequantize" in inspect.signature(method_fn).parameters:
            # quantised data: the bound for uniformly dequantised data (Theis et al. 2016)
            method_fn = functools.partial(method_fn, dequantize=data.levels)
            results["dequantized_levels"] = float(data.levels)
        with torch.no_grad():
            torch.manual_seed(seed)
            values = _batched(method_fn, batch, device)
        nats = -float(values.mean())
        key = "nll" if name == "log_prob" else "neg_elbo"
        results[f"{key}_nats"] = nats
        results[f"{key}_bits_per_dim"] = nats / (dims * math.log(2))
    args = argparse.Namespace(method=method, steps=steps, seed=seed, schedule=schedule)
    fake = _draw(model, len(real), args).reshape(len(real), -1).float()
    flat = real.reshape(len(real), -1).float()
    results["w2"] = metrics.w2(fake, flat)
    results["sliced_w2"] = metrics.sliced_w2(
        fake, flat, generator=torch.Generator().manual_seed(seed)
    )
    results["mmd"] = metrics.mmd(fake, flat)
    precision, recall = metrics.precision_recall(flat, fake)
    results["precision"], results["recall"] = precision, recall
    if dims == 64 and data.name.startswith("digits"):
        results["digits_fd"] = metrics.digits_fd(fake.clamp(0, 1), reference=flat)
    if dims == 784 and data.name == "fontdigits":
        results.update(metrics.fontdigits_scores(fake, reference=flat))
    if feature_networks:
        from gendsl.metrics.feature_networks import feature_metrics

        images = fake.reshape(real.shape).clamp(0, 1)
        results.update(feature_metrics(feature_networks, real.float(), images))
    nfe = getattr(model, "last_nfe", None)
    if nfe is not None:
        results["nfe"] = float(nfe)
    return results


def _overrides(model: Model, name: str) -> bool:
    return getattr(type(model), name) is not getattr(Model, name)


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
    return {
        name: load_network(name, path).to(resolve_device(device)) for name, path in paths.items()
    }


def eval_run(args: argparse.Namespace) -> dict[str, float]:
    """``gendsl eval``: print the metrics table (or JSON with ``--json``)."""
    networks = _feature_networks(getattr(args, "features", None) or [], args.device)
    model, config = open_run(args.run, device=args.device)
    data_name = args.data or config.get("data")
    if not data_name:
        raise UsageError("--data is required: the run does not record its data set")
    data = _dataset(model.checked, data_name, split="test", seed=args.seed, n=args.n)
    results = evaluate(
        model,
        data,
        n=args.n,
        seed=args.seed,
        method=args.method,
        steps=args.steps,
        schedule=args.schedule,
        feature_networks=networks,
    )
    if args.json:
        print(json.dumps(results, indent=2, sort_keys=True))
    else:
        print(f"{model.checked.name} on {data.name} (test split, n = {int(results['n'])})")
        print("| metric | value |")
        print("|---|---:|")
        for key, value in results.items():
            if key != "n":
                print(f"| {key} | {value:.5g} |")
    return results
