"""``fit``: the training loop shared by every model family.

The model contract
------------------
A model is an ``nn.Module`` with

* ``loss(batch) -> Tensor``: a scalar to minimise.  ``batch`` is a tensor, or a tuple
  ``(x, y)`` when the data is a pair.
* optionally ``diagnostics(batch) -> dict[str, float]`` and ``eval_metric(batch) -> dict[str,
  float]``: evaluated on the held-out data every ``eval_every`` steps, with the EMA weights,
  in eval mode, under ``torch.no_grad()`` (use ``torch.enable_grad()`` inside if a diagnostic
  needs autograd) and with random state forked and seeded, so evaluation never changes the
  training stream.  Values are averaged over batches weighted by batch size and logged as
  ``eval_<name>``; ``eval_loss`` is the mean of ``loss``.
* optionally, for models with several players (GANs), ``param_groups() -> dict[str, params]``
  and ``training_step(batch, step, optimizers) -> dict[str, float]``.  ``fit`` builds one
  optimiser per group (a group is an iterable of parameters, or a dict with ``params`` and
  overrides of ``lr``, ``betas``, ``weight_decay``) and calls ``training_step`` instead of the
  default step.  ``training_step`` owns ``zero_grad``, ``backward``, clipping and ``step`` of
  every optimiser (e.g. ``critic_steps`` critic updates, then one generator update); it must
  return a dict with a ``"loss"`` entry (plus any others), all of which are checked for
  NaN/inf and logged.  bf16 autocast applies to it; fp16 (GradScaler) does not.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from gendsl.data.dataset import as_float, random_hflip
from gendsl.errors import InternalError, TrainingError, UsageError
from gendsl.train.checkpoint import (
    FORMAT,
    capture_rng,
    load_checkpoint,
    plain,
    remove_stale_temporaries,
    restore_rng,
    save_checkpoint,
    versions,
)
from gendsl.train.device import resolve_device
from gendsl.train.ema import EMA
from gendsl.train.metrics_log import MetricsLog

__all__ = ["CHECKPOINT", "METRICS", "Hook", "TrainResult", "fit", "sample_batch"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
OPTIMIZERS = ("adamw", "adam", "sgd")
AMP_MODES = ("auto", "off", "bf16", "fp16")

Data = Tensor | tuple[Tensor, ...]
Batch = Tensor | tuple[Tensor, ...]
Hook = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    """What :func:`fit` returns.  ``model`` keeps the trained (not averaged) weights; use
    ``ema.copy_to(model)`` or :func:`~gendsl.train.checkpoint.load_weights` for sampling."""

    step: int
    loss: float
    checkpoint: Path
    metrics: Path
    device: torch.device
    ema: EMA | None
    elapsed: float
    eval: dict[str, float] = field(default_factory=dict)


def _as_data(data: Data, device: torch.device) -> tuple[Tensor, ...]:
    parts = tuple(data) if isinstance(data, (tuple, list)) else (data,)
    if not parts or not all(isinstance(p, Tensor) for p in parts):
        raise UsageError(f"training data must be a tensor or a tuple of tensors, got {type(data)}")
    n = {p.shape[0] for p in parts}
    if len(n) != 1 or 0 in n:
        raise UsageError(f"data tensors must share a non-zero first size, got {sorted(n)}")
    return tuple(p.to(device) for p in parts)


def sample_batch(
    data: tuple[Tensor, ...], batch_size: int, generator: torch.Generator, *, hflip: bool = False
) -> Batch:
    """Draw ``batch_size`` rows uniformly with replacement; indices come from ``generator`` (a
    CPU generator, so the batch sequence is the same on every device). 8-bit images (``uint8``)
    become ``float32`` in ``[0, 1]`` here, on the data's device; ``hflip`` mirrors each image
    left-right with probability 1/2 (:func:`~gendsl.data.random_hflip`, same generator)."""
    idx = torch.randint(data[0].shape[0], (batch_size,), generator=generator)
    rows = tuple(as_float(p[idx.to(p.device)]) for p in data)
    if hflip:  # the first tensor holds the images
        rows = (random_hflip(rows[0], generator=generator), *rows[1:])
    return rows[0] if len(rows) == 1 else rows


def _chunks(data: tuple[Tensor, ...], size: int):
    for start in range(0, data[0].shape[0], size):
        rows = tuple(as_float(p[start : start + size]) for p in data)
        yield (rows[0] if len(rows) == 1 else rows), rows[0].shape[0]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def _make_optimizer(
    name: str, params, *, lr: float, weight_decay: float, betas: Sequence[float]
) -> torch.optim.Optimizer:
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(betas), weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
    raise UsageError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")


def _build_optimizers(model: nn.Module, name: str, **defaults) -> dict[str, torch.optim.Optimizer]:
    if not hasattr(model, "param_groups"):
        return {"model": _make_optimizer(name, model.parameters(), **defaults)}
    optimizers = {}
    for group, spec in model.param_groups().items():
        if isinstance(spec, Mapping):
            spec = dict(spec)
            params = spec.pop("params")
            optimizers[group] = _make_optimizer(name, params, **{**defaults, **spec})
        else:
            optimizers[group] = _make_optimizer(name, spec, **defaults)
    return optimizers


def _precision(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bf16 where the GPU supports it, else fp16; none off CUDA."""
    if amp not in AMP_MODES:
        raise UsageError(f"amp must be one of {', '.join(AMP_MODES)}, got {amp!r}")
    if amp == "off":
        return None
    if device.type != "cuda":
        if amp != "auto":
            raise UsageError(f"amp = {amp!r} needs a CUDA device, got {device}")
        return None
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return torch.float16
    return torch.bfloat16


def _check_finite(metrics: Mapping[str, float], step: int, last_saved: int, path: Path):
    bad = {k: v for k, v in metrics.items() if not math.isfinite(v)}
    if bad:
        kept = (
            f"the checkpoint of step {last_saved} at {path} is kept"
            if last_saved
            else ("no checkpoint was written")
        )
        detail = ", ".join(f"{k} = {v}" for k, v in bad.items())
        raise TrainingError(f"training diverged at step {step}: {detail}; {kept}")


class _Trainer:
    """One run of :func:`fit`; holds the pieces the step, eval and checkpoint code share."""

    def __init__(
        self,
        model: nn.Module,
        device: torch.device,
        optimizers,
        scaler,
        precision,
        grad_clip: float | None,
        ema: EMA | None,
    ):
        self.model = model
        self.device = device
        self.optimizers = optimizers
        self.scaler = scaler
        self.precision = precision
        self.grad_clip = grad_clip
        self.ema = ema

    def autocast(self, dtype: torch.dtype | None):
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def default_step(self, batch: Batch, step: int, on_bad: Callable) -> dict[str, float]:
        """zero_grad, loss, backward, clip, step (with GradScaler under fp16)."""
        (opt,) = self.optimizers.values()
        opt.zero_grad(set_to_none=True)
        with self.autocast(self.precision):
            loss = self.model.loss(batch)
        value = float(loss.detach())
        on_bad({"loss": value}, step)
        params = [p for g in opt.param_groups for p in g["params"]]
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
            norm = nn.utils.clip_grad_norm_(params, self.grad_clip or math.inf)
            self.scaler.step(opt)
            self.scaler.update()
            return {"loss": value, "grad_norm": float(norm)}
        loss.backward()
        norm = float(nn.utils.clip_grad_norm_(params, self.grad_clip or math.inf))
        on_bad({"grad_norm": norm}, step)
        opt.step()
        return {"loss": value, "grad_norm": norm}

    def custom_step(self, batch: Batch, step: int, on_bad: Callable) -> dict[str, float]:
        """The model's own ``training_step`` (several optimisers)."""
        with self.autocast(self.precision if self.precision == torch.bfloat16 else None):
            out = self.model.training_step(batch, step, self.optimizers)
        if "loss" not in out:
            raise InternalError(f"training_step must return a 'loss' entry, got {sorted(out)}")
        metrics = {k: float(v) for k, v in out.items()}
        on_bad(metrics, step)
        return metrics

    def evaluate(self, data: tuple[Tensor, ...], batch_size: int, seed: int) -> dict[str, float]:
        """Mean loss, diagnostics and eval metrics over the held-out data (EMA weights)."""
        model = self.model
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        totals: dict[str, float] = {}
        count = 0
        ema_ctx = self.ema.applied(model) if self.ema is not None else nullcontext()
        with torch.random.fork_rng(devices=cuda), ema_ctx, torch.no_grad():
            torch.manual_seed(seed)
            model.eval()
            for batch, n in _chunks(data, batch_size):
                values = {"loss": float(model.loss(batch))}
                for hook in ("diagnostics", "eval_metric"):
                    if hasattr(model, hook):
                        values.update(
                            {k: float(v) for k, v in getattr(model, hook)(batch).items()}
                        )
                for k, v in values.items():
                    totals[k] = totals.get(k, 0.0) + n * v
                count += n
            model.train()
        return {f"eval_{k}": v / count for k, v in totals.items()}

    def payload(
        self,
        step: int,
        spec_text: str,
        config,
        batches: torch.Generator,
        elapsed: float,
        window: Mapping[str, list[float]],
    ) -> dict[str, object]:
        return {
            # the metrics of the steps since the last log line, so that a resumed run logs
            # exactly what an uninterrupted one does
            "log_window": {k: [float(x) for x in v] for k, v in window.items()},
            "format": FORMAT,
            "step": step,
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": capture_rng(batches),
            "spec": spec_text,
            "config": plain(config or {}),
            "versions": versions(),
            "elapsed": elapsed,
        }

    def restore(self, state: Mapping[str, object], batches: torch.Generator) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        if set(state["optimizers"]) != set(self.optimizers):
            raise UsageError(
                f"checkpoint has optimisers {sorted(state['optimizers'])}, "
                f"this model has {sorted(self.optimizers)}"
            )
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        restore_rng(state["rng"], batches)


def _check_settings(
    steps, batch_size, lr, ema, grad_clip, eval_every, checkpoint_every, log_every
) -> None:
    for name, value in [
        ("steps", steps),
        ("batch_size", batch_size),
        ("eval_every", eval_every),
        ("checkpoint_every", checkpoint_every),
        ("log_every", log_every),
    ]:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"{name} must be a positive integer, got {value!r}")
    if not lr > 0:
        raise UsageError(f"lr must be > 0, got {lr}")
    if grad_clip is not None and not grad_clip > 0:
        raise UsageError(f"grad_clip must be > 0 or None, got {grad_clip}")
    if ema is not None and not 0 < ema < 1:
        raise UsageError(f"ema must lie in (0, 1) or be None, got {ema}")


def fit(
    model: nn.Module,
    train_data: Data,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    out_dir: str | os.PathLike,
    seed: int = 0,
    device: str | torch.device = "auto",
    resume: bool = False,
    eval_data: Data | None = None,
    eval_every: int = 1000,
    checkpoint_every: int = 1000,
    optimizer: str = "adamw",
    weight_decay: float = 0.0,
    betas: Sequence[float] = (0.9, 0.999),
    grad_clip: float | None = 1.0,
    ema: float | None = 0.999,
    amp: str = "auto",
    spec_text: str = "",
    config: Mapping[str, object] | None = None,
    log_every: int = 100,
    hflip: bool = False,
    progress: bool = True,
    hooks: Sequence[Hook] = (),
) -> TrainResult:
    """Train ``model`` for ``steps`` optimiser steps (see the module docstring for the contract).

    Batches are drawn with replacement from ``train_data`` by a CPU ``torch.Generator`` seeded
    with ``seed``; the global torch / numpy / python generators are seeded with ``seed`` too.
    Every ``log_every`` steps a line goes to ``out_dir/metrics.jsonl``; every ``eval_every``
    steps ``eval_data`` is evaluated; every ``checkpoint_every`` steps and at the end
    ``out_dir/checkpoint.pt`` is replaced atomically.  ``resume`` continues from that
    checkpoint bit-for-bit: weights, EMA, optimiser and scaler state, and every random state.
    ``hflip`` mirrors training images left-right at random (``train { hflip = true }``).
    ``hooks`` are called as ``hook(step, metrics)`` at the end of every step, after its
    checkpoint.  Mixed precision (bf16 autocast, or fp16 with a GradScaler where bf16 is
    unsupported) is used on CUDA when ``amp = "auto"``.

    :raises TrainingError: the loss or the gradient norm became NaN/inf; the step is named and
        the last checkpoint is left untouched.
    :raises UsageError: bad settings, or ``resume`` without a checkpoint.
    """
    _check_settings(steps, batch_size, lr, ema, grad_clip, eval_every, checkpoint_every, log_every)
    dev = resolve_device(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, metrics_path = out / CHECKPOINT, out / METRICS
    remove_stale_temporaries(ckpt_path)
    if hasattr(model, "param_groups") and not hasattr(model, "training_step"):
        raise UsageError("a model with param_groups() must define training_step()")

    model.to(dev)
    data = _as_data(train_data, dev)
    held_out = None if eval_data is None else _as_data(eval_data, dev)
    _seed_everything(seed)
    batches = torch.Generator().manual_seed(seed)
    precision = _precision(amp, dev)
    trainer = _Trainer(
        model,
        dev,
        _build_optimizers(model, optimizer, lr=lr, weight_decay=weight_decay, betas=betas),
        torch.amp.GradScaler("cuda") if precision == torch.float16 else None,
        precision,
        grad_clip,
        None if ema is None else EMA(model, ema),
    )
    start, elapsed0 = 0, 0.0
    window_state: Mapping[str, list[float]] = {}
    if resume:
        state = load_checkpoint(ckpt_path)
        if spec_text and state["spec"] and state["spec"] != spec_text:
            raise UsageError(f"{ckpt_path} was trained from a different spec; cannot resume")
        trainer.restore(state, batches)
        start, elapsed0 = int(state["step"]), float(state["elapsed"])
        window_state = state.get("log_window") or {}
    log = MetricsLog(metrics_path, resume_step=start if resume else None)
    step_fn = trainer.custom_step if hasattr(model, "training_step") else trainer.default_step
    last_saved = start if resume else 0

    def on_bad(metrics: Mapping[str, float], step: int) -> None:
        _check_finite(metrics, step, last_saved, ckpt_path)

    window: dict[str, list[float]] = {k: list(v) for k, v in window_state.items()}
    last: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(
        total=steps,
        initial=start,
        disable=not progress,
        file=sys.stderr,
        unit="step",
        dynamic_ncols=True,
    )
    try:
        for step in range(start + 1, steps + 1):
            metrics = step_fn(sample_batch(data, batch_size, batches, hflip=hflip), step, on_bad)
            if trainer.ema is not None:
                trainer.ema.update(model)
            for k, v in metrics.items():
                window.setdefault(k, []).append(v)
            record: dict[str, object] = {}
            elapsed = elapsed0 + time.perf_counter() - t0
            if step % log_every == 0 or step == steps:
                last = {k: sum(v) / len(v) for k, v in window.items()}
                if step % log_every == 0:  # a last, partial line keeps its window for --resume
                    window.clear()
                rate = (step - start) / max(time.perf_counter() - t0, 1e-9)
                lr_now = next(iter(trainer.optimizers.values())).param_groups[0]["lr"]
                record.update(step=step, **last, lr=lr_now, time=elapsed, steps_per_s=rate)
                bar.set_postfix(loss=f"{last['loss']:.4g}")
            if held_out is not None and (step % eval_every == 0 or step == steps):
                eval_metrics = trainer.evaluate(held_out, batch_size, seed)
                record.update(step=step, **eval_metrics)
            if record:
                log.write(record)
            if step % checkpoint_every == 0 or step == steps:
                save_checkpoint(
                    ckpt_path, trainer.payload(step, spec_text, config, batches, elapsed, window)
                )
                last_saved = step
            for hook in hooks:
                hook(step, metrics)
            bar.update(1)
    finally:
        bar.close()
    return TrainResult(
        step=max(start, steps),
        loss=last.get("loss", math.nan),
        checkpoint=ckpt_path,
        metrics=metrics_path,
        device=dev,
        ema=trainer.ema,
        elapsed=elapsed0 + time.perf_counter() - t0,
        eval=eval_metrics,
    )
