"""Runs: what ``gendsl train`` and ``compile`` do, and opening a trained run, as plain functions
(``sample`` and ``eval`` are in :mod:`gendsl.run_sampling` and :mod:`gendsl.run_eval`).

A *run directory* holds ``checkpoint.pt`` (written atomically by :func:`gendsl.train.fit`; it
carries the weights, the spec text, every file the spec imports (a
:class:`~gendsl.spec_bundle.SpecBundle` in the configuration) and the run's configuration),
``metrics.jsonl`` and a copy of the spec.  Everything needed to rebuild the model travels inside
the checkpoint, so ``gendsl sample RUN`` works on a checkpoint file copied anywhere and after the
spec's files change.  Runs are opened by :mod:`gendsl.trained`, which reads checkpoints with
``torch.load(weights_only=True)``: a run directory cannot execute code.
"""

from __future__ import annotations

import argparse
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from gendsl.analysis import load_checked
from gendsl.cli_checks import RUN_FILES, check_not_replaced, check_output_folder
from gendsl.data import BUNDLED, Dataset, check_against, load_dataset, toy
from gendsl.errors import DataError, TrainingError, UsageError
from gendsl.families.matching import transport_source
from gendsl.ir import CheckedModel, Opt
from gendsl.lower import compile_model
from gendsl.lower.base import Model
from gendsl.lower.sizes import bind_sizes, declaration
from gendsl.lower.trained import compile_run
from gendsl.spec_bundle import SpecBundle, collect, describe_changes
from gendsl.train import CHECKPOINT, distributed, fit, resolve_device
from gendsl.train.loop import check_settings
from gendsl.trained import RunConfig, checkpoint_path, open_trained

__all__ = [
    "build_model",
    "dataset_for",
    "open_run",
    "train_run",
    "train_settings",
]

# train { } keys -> fit() keywords (those spelled differently)
_TRAIN_DEFAULTS = {"steps": 2000, "batch": 128, "lr": 1e-3}


# ----------------------------------------------------------------------------- building


def dataset_for(
    checked: CheckedModel, data: str | Dataset, *, split: str, seed: int, n: int | None = None
) -> Dataset:
    """Load ``data`` shaped as the spec declares it (an ``image`` declaration gets images)."""
    if isinstance(data, Dataset):
        return data
    declared = checked.observed_vars()
    as_image = True if declared and declared[0].type.kind == "image" else None
    if data in toy.NAMES:  # a toy set draws as many fresh points as asked
        return load_dataset(data, split=split, seed=seed, n=n, as_image=as_image)
    dataset = load_dataset(data, split=split, seed=seed, as_image=as_image)
    return dataset if n is None or n >= len(dataset) else dataset.subset(torch.arange(n))


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
    dataset = None if data is None else dataset_for(checked, data, split="train", seed=seed)
    bound = bind_sizes(checked, dataset, bindings)
    torch.manual_seed(seed)
    return compile_model(checked, bindings=bound)


def train_settings(checked: CheckedModel, args: argparse.Namespace) -> dict[str, Any]:
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
    for key in ("ema", "grad_clip", "eval_every", "weight_decay", "warmup", "compile", "hflip"):
        if key in spec:
            out[key] = spec[key]
    if getattr(args, "compile", False):
        out["compile"] = True
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


def _check_settings(settings: Mapping[str, Any]) -> None:
    """The checks :func:`fit` makes, made before anything is written (fit's defaults for the
    settings not given)."""
    defaults = inspect.signature(fit).parameters
    names = inspect.signature(check_settings).parameters
    check_settings(**{k: settings[k] if k in settings else defaults[k].default for k in names})


def _tensors(checked: CheckedModel, dataset: Dataset) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """The training tensors: ``x``, or ``x`` followed by the conditions of a conditional model
    in declaration order (a label from ``dataset.y``, a real condition from ``dataset.c``; up
    to the first the data set does not hold)."""
    parts = []
    for v in checked.condition_vars():
        part = {"label": dataset.y, "real": dataset.c}.get(v.type.kind)
        if part is None:
            break
        parts.append(part)
    return (dataset.x, *parts) if parts else dataset.x


def _source_data(
    checked: CheckedModel, name: str | None, bindings: dict[str, int], seed: int
) -> Dataset | None:
    """The source samples of a data -> data model (``--source-data``), checked against the
    declaration of its source (binding its sizes into ``bindings``); None for other models."""
    source = transport_source(checked)
    if source is None:
        if name:
            raise UsageError(
                f"--source-data applies only to a flow-matching model whose source x0 is declared "
                f"data; model {checked.name} is not one"
            )
        return None
    if not name:
        raise UsageError(
            f"model {checked.name} transports from the data {source}: pass --source-data NAME "
            f"(a bundled set or a file) for its samples, e.g. --source-data 8gaussians"
        )
    dataset = dataset_for(checked, name, split="train", seed=seed + 1)
    bindings.update(check_against(dataset, declaration(checked, source), bindings=bindings))
    return dataset


def train_run(args: argparse.Namespace) -> Path:
    """``gendsl train``: check, bind, compile, and fit; returns the run directory.

    Nothing in the run folder is written before the spec, the settings, the data and (with
    ``--resume``) the agreement with the trained run are checked; a folder that holds a run is
    replaced only with ``--overwrite``.
    """
    spec_path = Path(args.spec)
    checked = load_checked(str(spec_path), args.model)
    bundle = collect(spec_path)
    out = Path(args.out or f"runs/{checked.name}")
    check_output_folder(out)
    previous = _previous_run(out, args, bundle, checked.name)
    config: RunConfig = {
        "spec_path": str(spec_path.resolve()),
        "sources": bundle.plain(),
        "model": checked.name,
        "data": args.data or previous.get("data"),
        "seed": args.seed if args.seed is not None else previous.get("seed", 0),
    }
    for key in ("teacher", "base"):  # pretrained parts are re-attached on --resume
        value = getattr(args, key, None) or previous.get(key)
        config[key] = str(Path(value).resolve()) if value else None
    if not config["data"]:
        raise UsageError(
            "--data is required: a bundled set (" + ", ".join(BUNDLED) + ") or a file/folder"
        )
    seed = int(config["seed"])
    resolve_device(args.device)  # an unavailable device is refused before anything is written
    train = dataset_for(checked, config["data"], split="train", seed=seed)
    held_out = dataset_for(
        checked, config["data"], split="test", seed=seed, n=min(2000, len(train))
    )
    bindings = bind_sizes(checked, train)
    config["source_data"] = getattr(args, "source_data", None) or previous.get("source_data")
    source = _source_data(checked, config["source_data"], bindings, seed)
    config["bindings"] = bindings
    torch.manual_seed(seed)  # the initial weights (fit seeds the rest of the run)
    model = compile_model(checked, bindings=bindings)
    config["embedded"] = previous.get("embedded")  # on --resume, the runs inside its weights
    _attach_pretrained(model, config)
    config["embedded"] = model.embedded_runs() or None
    if source is not None:
        model.set_source_data(source.x)
    config["levels"] = train.levels
    if train.levels:
        model.set_data_levels(train.levels)
    settings = train_settings(checked, args)
    settings["checkpoint_every"] = args.checkpoint_every or max(100, settings["steps"] // 10)
    _check_settings(settings)
    if settings.get("hflip") and train.kind != "image":
        raise DataError(
            f"train {{ hflip = true }} mirrors images, but {train.name} holds samples of shape "
            f"{list(train.shape)}; declare the data as image[C, H, W] or drop hflip"
        )
    config["settings"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.items()}
    distributed.barrier()  # every rank has checked the folder before rank 0 writes to it
    leader = distributed.rank() == 0  # only rank 0 of a distributed run writes
    if leader:
        _prepare_folder(out, checked.source.text, overwrite=bool(args.overwrite))
    result = fit(
        model,
        _tensors(checked, train),
        eval_data=_tensors(checked, held_out),
        out_dir=out,
        seed=seed,
        device=args.device,
        resume=args.resume,
        spec_text=checked.source.text,
        config=config,
        progress=not getattr(args, "no_progress", False),
        **settings,
    )
    if leader:
        print(
            f"trained {checked.name} for {result.step} steps: loss {result.loss:.4f}; "
            f"checkpoint {result.checkpoint}"
        )
    return out


def _previous_run(
    out: Path, args: argparse.Namespace, bundle: SpecBundle, model: str
) -> RunConfig:
    """The configuration of the run in ``out`` that ``--resume`` continues (``{}`` without
    ``--resume``), after checking that nothing is overwritten by accident and that the spec,
    the data and the seed are the run's own."""
    check_not_replaced(out, resume=args.resume, overwrite=getattr(args, "overwrite", False))
    if not args.resume:
        return {}
    path = out / CHECKPOINT
    if not path.is_file():
        raise UsageError(f"--resume: no checkpoint at {path}; train without --resume first")
    if args.lr is not None:
        raise UsageError(
            "--lr cannot change on --resume: the optimiser state, learning rate included, "
            "comes from the checkpoint"
        )
    trained = open_trained(path)
    state, previous = trained.state, trained.config
    if previous.get("sources"):
        changes = describe_changes(SpecBundle.from_plain(previous["sources"]), bundle)
    else:  # a run of an older version kept its main file only: compare that
        main = {bundle.main: bundle.files[bundle.main]}
        changes = describe_changes(
            SpecBundle(bundle.main, {bundle.main: str(state["spec"])}),
            SpecBundle(bundle.main, main),
        )
    if changes:
        raise TrainingError(
            f"cannot resume {out}: the spec differs from the one the run was trained from\n"
            f"{changes}\nundo the edit to resume, or train into a new folder (--out) or with "
            "--overwrite"
        )
    if previous.get("model", model) != model:
        raise UsageError(
            f"--resume: {out} is a run of model {previous['model']}, not {model}; pass "
            f"--model {previous['model']} to continue it"
        )
    for flag, key in (("--data", "data"), ("--seed", "seed"), ("--source-data", "source_data")):
        given = getattr(args, key, None)
        if given is not None and previous.get(key) is not None and given != previous[key]:
            raise UsageError(
                f"--resume: {out} was trained with {flag} {previous[key]}, not {given}; drop "
                f"{flag} to continue the run, or train a new one (--out)"
            )
    return previous


def _prepare_folder(out: Path, spec_text: str, *, overwrite: bool) -> None:
    """Make the run folder (its old run files removed with ``--overwrite``) and copy the spec."""
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    spec_copy = out / "spec.gen"
    if not spec_copy.is_file() or spec_copy.read_text() != spec_text:
        spec_copy.write_text(spec_text)


#: What each pretrained-run flag is for (for the message when a model takes no such run).
_RUN_FLAGS = {
    "--teacher": "a consistency model distilled from a teacher",
    "--base": "a ControlNet (guidance control)",
}


def _attach_pretrained(model: Model, config: RunConfig) -> None:
    """Give ``model`` the trained runs it takes (``capabilities.runs``): a teacher for
    consistency distillation, a ControlNet's base (both from the command line), reflow's
    previous flow and a latent space's autoencoder (named in the spec; the autoencoder of a
    resumed run is restored from its stored configuration, not from its folder); each is
    opened before anything is written."""
    takes = {p.flag: p for p in model.capabilities.runs}
    name = model.checked.name
    restored = model.restore_embedded(config["embedded"]) if config.get("embedded") else ()
    for run in takes.values():
        if run.path is not None and run.flag not in restored:
            try:
                found = checkpoint_path(run.path)
            except UsageError:
                raise UsageError(
                    f"model {name} needs {run.what}, the run {run.path!r} its spec names "
                    f"({run.flag}), but there is no checkpoint at {run.path}: train that run "
                    "first, or correct the path (it is relative to the current folder)"
                ) from None
            model.attach_run(run.flag, found)
    for flag, use in _RUN_FLAGS.items():
        run = config[flag.removeprefix("--")]
        wanted = takes.get(flag)
        if run is None:
            if wanted is not None and wanted.required:
                raise UsageError(f"model {name} needs {wanted.what}: pass {flag} RUN")
            continue
        if wanted is None:
            raise UsageError(f"{flag} applies only to {use}; model {name} is not one")
        model.attach_run(flag, checkpoint_path(run))


def open_run(run: str | Path, *, device: str = "auto") -> tuple[Model, RunConfig]:
    """Rebuild a trained model from a run directory or checkpoint (EMA weights, eval mode),
    with :func:`gendsl.trained.open_trained` and :func:`gendsl.lower.trained.compile_run`.

    The spec is checked from the sources stored in the checkpoint, so the run is the same after
    its files on disk change or disappear."""
    trained = open_trained(run)
    model = compile_run(trained)
    model.to(resolve_device(device))
    return model, trained.config
