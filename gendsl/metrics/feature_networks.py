"""Pretrained feature networks from local weights files: FID and IS with Inception-v3, LPIPS.

``gendsl eval --features inception=PATH --features lpips=PATH`` builds each network here
(:data:`NETWORKS`) and loads its weights from the user's file with
``torch.load(weights_only=True)`` — nothing is ever downloaded and no code in the file runs. A
file that is not a state dict of that network is a usage error naming the missing and unexpected
entries.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from gendsl.errors import UsageError
from gendsl.metrics.frechet import fid_from_features
from gendsl.metrics.inception import FIDInceptionV3
from gendsl.metrics.lpips import LPIPS, mean_pair_distance
from gendsl.metrics.scores import inception_score, split_count

__all__ = ["NETWORKS", "feature_metrics", "load_network", "parse_features"]

NETWORKS: dict[str, Callable[[], nn.Module]] = {"inception": FIDInceptionV3, "lpips": LPIPS}
"""Network name → architecture. ``inception`` takes pytorch-fid's FID weights
(``pt_inception-2015-12-05-6726825d.pth``); ``lpips`` the AlexNet LPIPS v0.1 weights (the
``features`` of torchvision's AlexNet and the ``lin0``–``lin4`` layers of the lpips package)."""

_BATCH = 50
_ALIASES = {"lpips": ("lins.",)}
"""Entries a network's state dict repeats under a second name (lpips' ``lins`` list)."""


def parse_features(pairs: Sequence[str]) -> dict[str, Path]:
    """``["inception=PATH", ...]`` → ``{"inception": Path}``; checked before anything loads."""
    out: dict[str, Path] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not path or name not in NETWORKS:
            raise UsageError(
                f"--features expects NAME=PATH with NAME one of {', '.join(NETWORKS)}, "
                f"got {pair!r}"
            )
        if not Path(path).is_file():
            raise UsageError(f"--features {name}: no weights file at {path}")
        out[name] = Path(path)
    return out


def _state_dict(path: Path) -> Mapping[str, Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError):
        raise UsageError(
            f"{path}: not a weights file that loads safely (a state dict written by torch.save, "
            "read with weights_only=True)"
        ) from None
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise UsageError(f"{path}: expected a state dict (names → tensors)")
    return state


def load_network(name: str, path: Path) -> nn.Module:
    """The network ``name`` with the weights of ``path``, in eval mode."""
    model = NETWORKS[name]()
    state = {
        k: v for k, v in _state_dict(path).items() if not k.startswith(_ALIASES.get(name, ()))
    }
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        groups = ((missing, "missing"), (unexpected, "unexpected"), (wrong, "of another shape"))
        parts = [
            f"{len(keys)} {what} ({', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''})"
            for keys, what in groups
            if keys
        ]
        raise UsageError(
            f"{path} does not hold the weights of the {name} network: entries {'; '.join(parts)}"
        )
    model.load_state_dict(state)
    return model.eval()


@torch.no_grad()
def _apply(fn: Callable[[Tensor], Tensor], x: Tensor, device: torch.device) -> Tensor:
    return torch.cat([fn(x[i : i + _BATCH].to(device)).cpu() for i in range(0, len(x), _BATCH)])


def feature_metrics(
    networks: Mapping[str, nn.Module], real: Tensor, fake: Tensor, *, splits: int = 10
) -> dict[str, float]:
    """FID and IS (``inception``) and LPIPS diversity (``lpips``) of images ``[n, C, H, W]``.

    ``fid`` is the Fréchet distance of the pool3 features of ``fake`` to those of ``real``
    (pytorch-fid's definition); ``is``/``is_stderr`` the Inception Score of ``fake`` in ``splits``
    parts; ``lpips_diversity`` and ``lpips_diversity_real`` the mean LPIPS distance between
    disjoint pairs of samples, of ``fake`` and of ``real`` (Zhu et al. 2017's diversity measure).
    """
    if real.ndim != 4 or fake.shape[1:] != real.shape[1:]:
        raise UsageError(
            f"--features needs images [n, C, H, W]; got samples of shape {list(fake.shape[1:])}"
        )
    results: dict[str, float] = {}
    for name, network in networks.items():
        device = next(network.parameters()).device
        if name == "inception":
            real_features = _apply(network.features, real, device)
            fake_features = _apply(network.features, fake, device)
            probs = _apply(network.logits, fake_features, device).softmax(dim=1)
            score = inception_score(probs, splits=split_count(len(probs), splits))
            results["fid"] = fid_from_features(real_features, fake_features)
            results["is"], results["is_stderr"] = score.mean, score.stderr
        else:
            results["lpips_diversity"] = mean_pair_distance(network, fake)
            results["lpips_diversity_real"] = mean_pair_distance(network, real)
    return results
