"""``gendsl sample``: draw from a trained run, conditioned and guided as asked, and save or plot.

``--condition NAME=VALUE`` gives a declared ``condition``: a class index for a ``label``, a
number or a ``.npy`` file (one vector for every sample, or one row per sample) for the others;
an ``.npz`` gives its array ``NAME``, else ``c`` (the embeddings of a data file, e.g. a caption's
sequence ``[L, E]``).
``--guidance-scale S`` overrides a guided model's scale; ``--temperature T`` samples a flow at
temperature T (its sampler's option, :mod:`gendsl.sampling.flow`).  Samples are written as
``.npy``, ``.npz`` (array ``samples``, plus the conditions) or ``.pt`` (a tensor), by the
suffix.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gendsl import sampler_registry
from gendsl.data import as_float
from gendsl.data.files import CONDITION_KEY
from gendsl.errors import UsageError
from gendsl.ir import Variable
from gendsl.lower.base import Model
from gendsl.runs import dataset_for, open_run

__all__ = [
    "check_sampler_option",
    "draw",
    "parse_conditions",
    "sample_run",
    "save_samples",
    "set_guidance_scale",
]


def _read_array(name: str, text: str) -> np.ndarray:
    """The array of a ``.npy`` file, or of an ``.npz``'s entry ``name`` (else ``c``: the
    conditions of a data file, :data:`gendsl.data.files.CONDITION_KEY`)."""
    try:
        loaded = np.load(text, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            return np.asarray(loaded)
        with loaded:
            key = next((k for k in (name, CONDITION_KEY) if k in loaded.files), None)
            if key is None:
                raise UsageError(
                    f"--condition {name}={text}: the archive holds no array {name!r} or "
                    f"{CONDITION_KEY!r} (it holds {', '.join(loaded.files) or 'nothing'})"
                )
            return np.asarray(loaded[key])
    except (OSError, ValueError) as err:
        raise UsageError(f"--condition {name}={text}: cannot read the array: {err}") from None


def _condition_value(
    var: Variable, classes: int | None, shape: Sequence[int], text: str, n: int
) -> Tensor:
    """The tensor of one ``--condition`` for ``n`` samples (checked against its declaration)."""
    name = var.name
    if text.endswith((".npy", ".npz")):
        value = torch.from_numpy(_read_array(name, text))
    else:
        try:
            number = float(text)
        except ValueError:
            raise UsageError(
                f"--condition {name}={text}: expected a number or a .npy file"
            ) from None
        value = torch.tensor(number)
    if classes is not None:
        if value.is_floating_point() and not torch.equal(value, value.round()):
            raise UsageError(f"--condition {name}={text}: a label is a whole class index")
        value = value.long()
        if value.numel() and not (int(value.min()) >= 0 and int(value.max()) < classes):
            raise UsageError(
                f"--condition {name}={text}: {name} is a label of {classes} classes; "
                f"give an index in 0..{classes - 1}"
            )
        if value.dim() == 1 and len(value) != n:
            raise UsageError(f"--condition {name}={text}: {len(value)} labels for -n {n} samples")
        return value.expand(n) if value.dim() == 0 else value
    return _vector(value.float(), tuple(shape), n, f"--condition {name}={text}")


def _vector(value: Tensor, shape: tuple[int, ...], n: int, where: str) -> Tensor:
    """A non-label condition for ``n`` samples: one value broadcast, or one row per sample."""
    if value.dim() == 0:
        return value.expand(n, *shape)
    if tuple(value.shape) == shape:
        return value.expand(n, *shape)
    if tuple(value.shape) == (n, *shape):
        return value
    raise UsageError(
        f"{where}: shape {list(value.shape)}; expected {list(shape)} (one for every sample) "
        f"or {[n, *shape]} (one per sample)"
    )


def parse_conditions(model: Model, pairs: Sequence[str], n: int) -> dict[str, Tensor]:
    """``--condition NAME=VALUE`` flags as tensors for ``n`` samples; every declared condition
    must be given."""
    declared = {v.name: v for v in model.checked.condition_vars()}
    given: dict[str, str] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        name, text = name.strip(), text.strip()
        if not sep or not name or not text:
            raise UsageError(f"--condition expects NAME=VALUE, got {pair!r}")
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise UsageError(
                f"--condition {name}: model {model.checked.name} declares no condition "
                f"{name!r} (its conditions: {known})"
            )
        given[name] = text
    missing = [name for name in declared if name not in given]
    if missing:
        hints = " ".join(f"--condition {name}={_example(declared[name])}" for name in missing)
        raise UsageError(f"model {model.checked.name} is conditional; pass {hints}")
    return {
        name: _condition_value(
            declared[name], model.classes_of(name), model.shape_of(name), text, n
        )
        for name, text in given.items()
    }


def _example(var: Variable) -> str:
    return "LABEL" if var.type.kind == "label" else "VALUE|FILE.npy"


def draw(
    model: Model,
    n: int,
    *,
    seed: int,
    method: str | None = None,
    steps: int | None = None,
    schedule: str | None = None,
    conditions: Mapping[str, Tensor] | None = None,
    guidance_scale: float | None = None,
    temperature: float | None = None,
) -> Tensor:
    """``n`` samples on the CPU from a seeded generator on the model's device; ``temperature``
    is the option of a sampler that declares one (the flow family's)."""
    device = model.like.device
    opts: dict[str, Any] = {}
    if temperature is not None:
        check_sampler_option(model, "temperature", temperature)
        opts["temperature"] = temperature
    if method:
        opts["method"] = method
    if steps is not None:
        opts["steps"] = steps
    if schedule:
        opts["schedule"] = schedule
    if conditions:
        opts["y"] = dict(conditions)
    if guidance_scale is not None:
        set_guidance_scale(model, guidance_scale)
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        return model.sample(n, generator=generator, **opts).detach().cpu()


def check_sampler_option(model: Model, name: str, value: float) -> None:
    """A sampler option given on the command line (``--NAME``): one that a sampler of the
    model's family declares (:mod:`gendsl.sampler_registry`), with a value in its range."""
    flag = "--" + name.replace("_", "-")
    declared = [d for d in sampler_registry.of_family(model.family).values() if name in d.options]
    if not declared:
        owners = sorted(
            f"the {d.family} family's {d.name}"
            for d in sampler_registry.SAMPLERS.values()
            if name in d.options
        )
        raise UsageError(
            f"{flag} is an option of {', '.join(owners)}; model {model.checked.name} is "
            f"{model.family}"
        )
    bound = declared[0].options[name].bound
    if not math.isfinite(value) or (bound is not None and not bound.holds(value)):
        raise UsageError(f"{flag} must be {bound.text() if bound else 'finite'}; got {value}")


def set_guidance_scale(model: Model, scale: float) -> None:
    """Use ``scale`` instead of a guided model's declared one, in sampling and likelihood."""
    if model.guidance_scale is None:
        raise UsageError(
            f"--guidance-scale applies to guided models (classifier_free, classifier); "
            f"model {model.checked.name} has no guidance scale"
        )
    model.guidance_scale = float(scale)


def save_samples(path: Path, samples: np.ndarray, conditions: Mapping[str, Tensor]) -> None:
    """Write ``samples`` in the format of the file's suffix (``.npy``, ``.npz``, ``.pt``)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        with path.open("wb") as f:  # np.save(name) would append .npy to another suffix
            np.save(f, samples)
    elif suffix == ".npz":
        extra = {f"condition_{k}": v.numpy() for k, v in conditions.items()}
        with path.open("wb") as f:
            np.savez(f, samples=samples, **extra)
    else:
        torch.save(torch.from_numpy(samples), path)


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
    """``gendsl sample``: draw ``-n`` samples; save ``--out`` and/or plot ``--plot``."""
    model, config = open_run(args.run, device=args.device)
    conditions = parse_conditions(model, getattr(args, "condition", None) or [], args.n)
    samples = draw(
        model,
        args.n,
        seed=args.seed,
        method=args.method,
        steps=args.steps,
        schedule=args.schedule,
        conditions=conditions,
        guidance_scale=getattr(args, "guidance_scale", None),
        temperature=getattr(args, "temperature", None),
    ).numpy()
    if args.out:
        save_samples(Path(args.out), samples, conditions)
        print(f"wrote {len(samples)} samples to {args.out}")
    if args.plot:
        data = None
        if config.get("data"):
            test = dataset_for(
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
