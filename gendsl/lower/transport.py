"""Transport between two data sets: a flow-matching model whose source ``x0`` is data too.

``data x0 : real[D]`` and ``data x1 : real[D]`` with ``path x_t = (1 - t) * x0 + t * x1`` learn
a flow from the empirical distribution of one sample set to another's, as torchcfm's
``ExactOptimalTransportConditionalFlowMatcher`` does between two sample sets (Tong et al. 2024,
§5.1, 8gaussians → moons).  The source samples are part of the model — a buffer in its
``state_dict``, so a trained run samples from them after the data files move — given by
``gendsl train --source-data NAME`` or :meth:`TransportModel.set_source_data`; training and
sampling draw source rows uniformly with replacement.  There is no source density, hence no
likelihood.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from gendsl.errors import DataError, UsageError
from gendsl.ir import CheckedModel
from gendsl.lower.matching import MatchingModel
from gendsl.protocol import Capabilities

__all__ = ["TransportModel"]


class TransportModel(MatchingModel):
    """A data → data flow-matching model (module docstring): x0 rows from :attr:`source_data`."""

    capabilities = Capabilities(likelihood=False, steps=True, diagnostics=True)

    def __init__(self, checked: CheckedModel, bindings: Mapping[str, int]):
        super().__init__(checked, bindings)
        self._batch_names = [n for n in self._batch_names if n != self.source_name]
        shape = self.shape_of(self.source_name)
        self.register_buffer("source_data", torch.zeros((0, *shape)))

    def check_ends(self, checked: CheckedModel) -> None:
        """The data are the path's two ends x0, x1 and x0 is not sampled (the checker says so)."""
        data = sorted(v.name for v in checked.data_vars())
        if data != sorted((self.source_name, self.data_name)):
            raise UsageError(
                f"a data -> data model's data must be the path's ends {self.source_name} and "
                f"{self.data_name}; found data {', '.join(data)}"
            )
        return None

    def set_source_data(self, x: Tensor) -> None:
        """Use the rows of ``x`` (``[N, *shape of x0]``) as the source samples."""
        shape = self.shape_of(self.source_name)
        if x.dim() < 1 or tuple(x.shape[1:]) != shape or len(x) == 0:
            raise DataError(
                f"the source data of {self.source_name} must hold samples of shape "
                f"{list(shape)}; found a tensor of shape {list(x.shape)}"
            )
        self.source_data = x.to(self.like.device, self.like.dtype).clone()

    def draw_source(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` rows of the source data, uniformly with replacement."""
        m = len(self.source_data)
        if m == 0:
            raise UsageError(
                f"model {self.checked.name} transports from the data {self.source_name}, but it "
                "holds no source samples: train with --source-data NAME (or call "
                "set_source_data(x))"
            )
        device = generator.device if generator is not None else self.source_data.device
        idx = torch.randint(m, (n,), generator=generator, device=device)
        return self.source_data[idx.to(self.source_data.device)]

    def objective_terms(self) -> list[str]:
        rows = f"the {len(self.source_data)} rows" if len(self.source_data) else "the rows"
        return [
            *super().objective_terms(),
            f"  source: {self.source_name} ~ {rows} of the source data (--source-data), "
            "uniformly with replacement",
        ]

    def source_batch(self, data: Mapping[str, Tensor], n: int) -> Tensor:
        """The batch's own ``x0`` rows when it carries them (``model.loss({"x0": ..., "x1":
        ...})``), else ``n`` rows of the source data."""
        given = data.get(self.source_name)
        return given if given is not None else self.draw_source(n)

    def source(self, n: int) -> torch.distributions.Distribution:
        raise UsageError(
            f"model {self.checked.name} transports from the data {self.source_name}: it has no "
            "source density, so no likelihood; compare samples instead (W2, MMD)"
        )

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any):
        """Take the stored source samples whatever their number (the buffer starts empty)."""
        stored = state_dict.get(prefix + "source_data")
        if isinstance(stored, Tensor):
            self.source_data = torch.empty_like(stored, device=self.source_data.device)
        super()._load_from_state_dict(state_dict, prefix, *args)
