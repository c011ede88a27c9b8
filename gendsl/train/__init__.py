"""The training runtime: the loop, atomic resumable checkpoints, EMA, device resolution."""

from gendsl.train.checkpoint import (
    capture_rng,
    load_checkpoint,
    load_weights,
    restore_rng,
    save_checkpoint,
)
from gendsl.train.device import resolve_device
from gendsl.train.ema import EMA, ema_update
from gendsl.train.loop import CHECKPOINT, METRICS, TrainResult, fit, sample_batch
from gendsl.train.metrics_log import MetricsLog, read_metrics

__all__ = [
    "CHECKPOINT",
    "EMA",
    "METRICS",
    "MetricsLog",
    "TrainResult",
    "capture_rng",
    "ema_update",
    "fit",
    "load_checkpoint",
    "load_weights",
    "read_metrics",
    "resolve_device",
    "restore_rng",
    "sample_batch",
    "save_checkpoint",
]
