"""``fit``: the training loop shared by every model family.

The model contract
------------------
A model is an ``nn.Module`` satisfying :class:`gendsl.protocol.Trainable`: it declares its
:class:`~gendsl.protocol.Capabilities` and has

* ``loss(batch) -> Tensor``: a scalar to minimise.  ``batch`` is a tensor, or a tuple
  ``(x, y)`` when the data is a pair.
* with ``capabilities.diagnostics``, ``diagnostics(batch) -> dict[str, float]``
  (:class:`~gendsl.protocol.Diagnosed`): evaluated on the held-out data every ``eval_every``
  steps, with the EMA weights, in eval mode, under ``torch.no_grad()`` (use
  ``torch.enable_grad()`` inside if a diagnostic needs autograd) and with random state forked
  and seeded, so evaluation never changes the training stream.  Values are averaged over
  batches weighted by batch size and logged as ``eval_<name>``; ``eval_loss`` is the mean of
  ``loss``.
* with ``capabilities.param_groups``, for models with several players (GANs),
  ``param_groups() -> dict[str, params]``, and with ``capabilities.training_step``,
  ``training_step(batch, step, optimizers) -> dict[str, float]``
  (:class:`~gendsl.protocol.SeveralPlayers`).  ``fit`` builds one optimiser per group (a group
  is an iterable of parameters, or a dict with ``params`` and overrides of ``lr``, ``betas``,
  ``weight_decay``) and calls ``training_step`` instead of the default step.  ``training_step``
  owns ``zero_grad``, ``backward``, clipping and ``step`` of every optimiser (e.g.
  ``critic_steps`` critic updates, then one generator update); it must return a dict with a
  ``"loss"`` entry (plus any others), 0-dim tensors (or floats), all of which are checked for
  NaN/inf and logged.  bf16 autocast applies to it; fp16 (GradScaler) does not.  Under
  ``torch.distributed`` each optimiser averages its gradients over the ranks just before
  ``step()``, so clipping inside ``training_step`` sees the rank's own gradients.

The loop keeps the device busy: a step reads nothing back to the host.  Its metrics go to a
device buffer (:class:`~gendsl.train.tally.Tally`), read at the sync points (log lines,
evaluations, checkpoints, the end), where a non-finite loss or gradient norm is found and named
by its first step; training batches are drawn on the device.
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
from typing import cast

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from gendsl.data.dataset import as_float, random_hflip
from gendsl.errors import InternalError, UsageError
from gendsl.protocol import Diagnosed, Reporting, SeveralPlayers, Trainable
from gendsl.train import distributed
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
from gendsl.train.compiled import compile_step, resolve_backend
from gendsl.train.device import resolve_device
from gendsl.train.ema import EMA
from gendsl.train.metrics_log import MetricsLog
from gendsl.train.tally import Tally

__all__ = ["CHECKPOINT", "METRICS", "Hook", "TrainResult", "check_settings", "fit", "sample_batch"]

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.jsonl"
OPTIMIZERS = ("adamw", "adam", "sgd")
AMP_MODES = ("auto", "off", "bf16", "fp16")

Data = Tensor | tuple[Tensor, ...]
Batch = Tensor | tuple[Tensor, ...]
Hook = Callable[[int, dict[str, Tensor]], None]


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
    data: tuple[Tensor, ...],
    batch_size: int,
    generator: torch.Generator,
    share: tuple[int, int] | None = None,
    *,
    hflip: bool = False,
) -> Batch:
    """Draw ``batch_size`` rows uniformly with replacement; the indices are drawn by
    ``generator`` on its device (the data's), so no step waits for the host.  8-bit images
    (``uint8``) become ``float32`` in ``[0, 1]`` here; ``hflip`` mirrors each image left-right
    with probability 1/2 (:func:`~gendsl.data.random_hflip`, same generator).  ``share``
    ``(start, stop)`` keeps that slice of the global batch (one rank's share); every rank draws
    the whole global batch's indices and flips, so the ranks' generators stay in step."""
    idx = torch.randint(
        data[0].shape[0], (batch_size,), generator=generator, device=generator.device
    )
    rows = tuple(as_float(p[idx]) for p in data)
    if hflip:  # the first tensor holds the images
        rows = (random_hflip(rows[0], generator=generator), *rows[1:])
    if share is not None:
        rows = tuple(r[share[0] : share[1]] for r in rows)
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


def _build_optimizers(model: Trainable, name: str, **defaults) -> dict[str, torch.optim.Optimizer]:
    if not model.capabilities.param_groups:
        return {"model": _make_optimizer(name, model.parameters(), **defaults)}
    optimizers = {}
    for group, spec in cast(SeveralPlayers, model).param_groups().items():
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


class _LossOf(nn.Module):
    """``forward(batch) = model.loss(batch)``: the module DistributedDataParallel wraps (it
    synchronises the gradients of what runs through ``forward``)."""

    def __init__(self, model: Trainable):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> Tensor:
        return self.model.loss(batch)


class _Trainer:
    """One run of :func:`fit`; holds the pieces the step, eval and checkpoint code share."""

    def __init__(
        self,
        model: Trainable,
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
        self.custom = model.capabilities.training_step
        self.loss_fn: Callable[[Batch], Tensor] = model.loss
        self.training_step = cast(SeveralPlayers, model).training_step if self.custom else None
        self.params = [p for o in optimizers.values() for g in o.param_groups for p in g["params"]]

    def distribute(self) -> None:
        """Data parallelism over the process group (see :mod:`gendsl.train.distributed`)."""
        if self.custom:
            distributed.broadcast_module_(self.model)
            for opt in self.optimizers.values():
                distributed.sync_optimizer_(opt)
            return
        ids = (
            [self.device.index or torch.cuda.current_device()]
            if self.device.type == "cuda"
            else None
        )
        self.loss_fn = nn.parallel.DistributedDataParallel(_LossOf(self.model), device_ids=ids)

    def compile(self, backend: str | None) -> None:
        """Run the step's loss (or the model's ``training_step``) under ``torch.compile``."""
        if backend is None:
            return
        if self.custom:  # the optimisers step eagerly, as in the one-optimiser step
            for opt in self.optimizers.values():
                opt.step = torch.compiler.disable(opt.step)
            self.training_step = compile_step(
                self.training_step, backend=backend, device=self.device
            )
        else:
            self.loss_fn = compile_step(
                self.loss_fn,
                backend=backend,
                device=self.device,
                cuda_graphs=distributed.world_size() == 1,
            )

    def autocast(self, dtype: torch.dtype | None):
        if dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        """One training step; its metrics stay on the device."""
        return self.custom_step(batch, step) if self.custom else self.default_step(batch)

    def default_step(self, batch: Batch) -> dict[str, Tensor]:
        """zero_grad, loss, backward, clip, step (with GradScaler under fp16)."""
        (opt,) = self.optimizers.values()
        opt.zero_grad(set_to_none=True)
        with self.autocast(self.precision):
            loss = self.loss_fn(batch)
        limit = self.grad_clip or math.inf
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
            norm = nn.utils.clip_grad_norm_(self.params, limit)
            self.scaler.step(opt)  # skips a step with inf/NaN gradients and lowers the scale
            self.scaler.update()
            norm = torch.where(torch.isfinite(norm), norm, torch.zeros_like(norm))
            return {"loss": loss.detach(), "grad_norm": norm, **self.report()}
        loss.backward()
        norm = nn.utils.clip_grad_norm_(self.params, limit)
        opt.step()
        return {"loss": loss.detach(), "grad_norm": norm, **self.report()}

    def report(self) -> Mapping[str, float]:
        """The model's numbers about the step's loss (``capabilities.step_report``)."""
        if not self.model.capabilities.step_report:
            return {}
        return cast(Reporting, self.model).step_report()

    def custom_step(self, batch: Batch, step: int) -> dict[str, Tensor]:
        """The model's own ``training_step`` (several optimisers)."""
        with self.autocast(self.precision if self.precision == torch.bfloat16 else None):
            out = self.training_step(batch, step, self.optimizers)
        if "loss" not in out:
            raise InternalError(f"training_step must return a 'loss' entry, got {sorted(out)}")
        return dict(out)

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
                if model.capabilities.diagnostics:
                    diagnostics = cast(Diagnosed, model).diagnostics(batch)
                    values.update({k: float(v) for k, v in diagnostics.items()})
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
        tally: Tally,
    ) -> dict[str, object]:
        """The checkpoint (every rank takes part: the ranks' random states are gathered)."""
        rng = capture_rng(batches)
        ranks = distributed.world_size()
        return {
            # the rows of the steps since the last log line, so that a resumed run logs
            # exactly what an uninterrupted one does
            "log_window": tally.state_dict(),
            "format": FORMAT,
            "step": step,
            "model": self.model.state_dict(),
            "ema": None if self.ema is None else self.ema.state_dict(),
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "rng": rng,
            "rng_ranks": distributed.all_gather_objects(rng) if ranks > 1 else None,
            "world_size": ranks,
            "spec": spec_text,
            "config": plain({**(config or {}), "world_size": ranks}),
            "versions": versions(),
            "elapsed": elapsed,
        }

    def restore(self, state: Mapping[str, object], batches: torch.Generator) -> None:
        ranks = distributed.world_size()
        saved = int(state.get("world_size") or 1)
        if saved != ranks:
            raise UsageError(
                f"the checkpoint was trained by {saved} process(es), this run has {ranks}; "
                f"resume with the same number of processes (--nproc {saved})"
            )
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
        rng = state["rng_ranks"][distributed.rank()] if ranks > 1 else state["rng"]
        restore_rng(rng, batches)


def _resume(
    trainer: _Trainer, tally: Tally, batches: torch.Generator, path: Path, spec_text: str
) -> tuple[int, float]:
    """Restore a run from its checkpoint; its step and elapsed seconds."""
    state = load_checkpoint(path)
    if spec_text and state["spec"] and state["spec"] != spec_text:
        raise UsageError(f"{path} was trained from a different spec; cannot resume")
    trainer.restore(state, batches)
    tally.load_state_dict(state.get("log_window") or {})
    return int(state["step"]), float(state["elapsed"])


def check_settings(
    steps, batch_size, lr, ema, grad_clip, eval_every, checkpoint_every, log_every, warmup=0
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
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise UsageError(f"warmup must be a non-negative integer, got {warmup!r}")


def warmup_factor(step: int, warmup: int) -> float:
    """The learning-rate multiplier of step ``step`` (1-based) under a linear warm-up of
    ``warmup`` steps: ``min(1, step / warmup)``, 1 without warm-up (Goyal et al. 2017, "Accurate,
    Large Minibatch SGD", Sec. 2.2; Ho et al. 2020 warm their DDPM models up over 5000 steps)."""
    return 1.0 if warmup <= 0 else min(1.0, step / warmup)


def _set_warmup_lr(optimizers: Mapping[str, torch.optim.Optimizer], factor: float) -> None:
    """Every parameter group's ``lr`` = its base rate × ``factor``; the base rate is kept in the
    group (``base_lr``), so it travels with the optimiser's state dict and ``--resume``."""
    for opt in optimizers.values():
        for group in opt.param_groups:
            group["lr"] = group.setdefault("base_lr", group["lr"]) * factor


def fit(
    model: Trainable,
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
    compile: bool | str = False,
    spec_text: str = "",
    config: Mapping[str, object] | None = None,
    log_every: int = 100,
    warmup: int = 0,
    hflip: bool = False,
    progress: bool = True,
    hooks: Sequence[Hook] = (),
) -> TrainResult:
    """Train ``model`` for ``steps`` optimiser steps (see the module docstring for the contract).

    Batches are drawn with replacement from ``train_data`` by a ``torch.Generator`` on the
    training device seeded with ``seed``; the global torch / numpy / python generators are
    seeded with ``seed`` (``seed + rank`` in a distributed run, see
    :mod:`gendsl.train.distributed`, where ``batch_size`` is the global batch).  Every
    ``log_every`` steps a line goes to ``out_dir/metrics.jsonl``; every ``eval_every`` steps
    ``eval_data`` is evaluated; every ``checkpoint_every`` steps and at the end
    ``out_dir/checkpoint.pt`` is replaced atomically.  ``resume`` continues from that
    checkpoint bit-for-bit: weights, EMA, optimiser and scaler state, and every random state.
    ``warmup`` raises the learning rate linearly from ``lr / warmup`` to ``lr`` over the first
    ``warmup`` steps (:func:`warmup_factor`; ``train { warmup = N }``). ``hflip`` mirrors training
    images left-right at random (``train { hflip = true }``). ``hooks`` are called as ``hook(step,
    metrics)`` at the end of every step, after its checkpoint, with the step's metrics as 0-dim
    device tensors (reading one waits for the device). Mixed precision (bf16 autocast, or fp16 with
    a GradScaler where bf16 is unsupported) is used on CUDA when ``amp = "auto"``.  ``compile``
    (True, or a dynamo backend name) runs the step under ``torch.compile``
    (:mod:`gendsl.train.compiled`).

    :raises TrainingError: the loss or the gradient norm became NaN/inf; the first such step is
        named (found at the next log line, evaluation or checkpoint) and the last checkpoint is
        left untouched.
    :raises UsageError: bad settings, or ``resume`` without a checkpoint.
    """
    if not isinstance(model, Trainable):
        raise InternalError(
            f"fit trains a model with loss() and declared capabilities (gendsl.protocol."
            f"Trainable); {type(model).__name__} is not one"
        )
    check_settings(
        steps, batch_size, lr, ema, grad_clip, eval_every, checkpoint_every, log_every, warmup
    )
    dev = resolve_device(device)
    backend = resolve_backend(compile, dev)
    ranks, leader = distributed.world_size(), distributed.rank() == 0
    share = distributed.shard(batch_size) if ranks > 1 else None
    out = Path(out_dir)
    ckpt_path, metrics_path = out / CHECKPOINT, out / METRICS
    if leader:
        out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(ckpt_path)

    model.to(dev)
    data = _as_data(train_data, dev)
    held_out = None if eval_data is None or not leader else _as_data(eval_data, dev)
    _seed_everything(seed + distributed.rank())
    batches = torch.Generator(device=dev).manual_seed(seed)
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
    tally = Tally(dev, log_every, distributed.average_ if ranks > 1 else None)
    start, elapsed0 = (
        _resume(trainer, tally, batches, ckpt_path, spec_text) if resume else (0, 0.0)
    )
    if ranks > 1:
        trainer.distribute()
    trainer.compile(backend)
    log = MetricsLog(metrics_path, resume_step=start if resume else None) if leader else None
    last_saved = start if resume else 0
    last: dict[str, float] = {}
    eval_metrics: dict[str, float] = {}
    t0 = time.perf_counter()
    model.train()
    bar = tqdm(
        total=steps,
        initial=start,
        disable=not (progress and leader),
        file=sys.stderr,
        unit="step",
        dynamic_ncols=True,
    )
    try:
        for step in range(start + 1, steps + 1):
            if warmup:
                _set_warmup_lr(trainer.optimizers, warmup_factor(step, warmup))
            metrics = trainer.step(
                sample_batch(data, batch_size, batches, share, hflip=hflip), step
            )
            if trainer.ema is not None:
                trainer.ema.update(model)
            tally.add(step, metrics)
            logs = step % log_every == 0 or step == steps
            evals = eval_data is not None and (step % eval_every == 0 or step == steps)
            saves = step % checkpoint_every == 0 or step == steps
            if logs or evals or saves:  # a sync point: read the device's rows once
                tally.check(last_saved, str(ckpt_path))
            record: dict[str, object] = {}
            elapsed = elapsed0 + time.perf_counter() - t0
            if logs:
                last = tally.window_means()
                if step % log_every == 0:  # a last, partial line keeps its window for --resume
                    tally.clear()
                rate = (step - start) / max(time.perf_counter() - t0, 1e-9)
                lr_now = next(iter(trainer.optimizers.values())).param_groups[0]["lr"]
                record.update(step=step, **last, lr=lr_now, time=elapsed, steps_per_s=rate)
                bar.set_postfix(loss=f"{last['loss']:.4g}")
            if evals and held_out is not None:
                eval_metrics = trainer.evaluate(held_out, batch_size, seed)
                record.update(step=step, **eval_metrics)
            if record and log is not None:
                log.write({**record, "world_size": ranks})
            if saves:
                payload = trainer.payload(step, spec_text, config, batches, elapsed, tally)
                if leader:
                    save_checkpoint(ckpt_path, payload)
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
