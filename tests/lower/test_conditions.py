"""The conditions a conditional GAN's generator is trained on (uniform labels; other conditions
the batch's own values permuted) and the conditions sampling is given."""

from __future__ import annotations

import pytest
import torch

import gendsl
from gendsl.errors import UsageError
from gendsl.lower.conditions import generator_conditions, sampling_conditions

torch.set_num_threads(1)

SPEC = """model m {
  data x : real[2]
  condition y : label[4]
  condition c : real[3]
  latent z : real[2]
  net G = MLP(hidden = [8])
  net D = MLP(hidden = [8])
  z ~ Normal(0, 1)
  x = G(z, y, c)
  critic D(x, y, c)
  loss hinge
}"""


@pytest.fixture(scope="module")
def model():
    return gendsl.load(SPEC)


def test_labels_are_uniform_and_other_conditions_are_the_batch_permuted(model):
    n = 40_000
    batch = {"y": torch.zeros(n, dtype=torch.long), "c": torch.arange(3 * n).float()}
    batch["c"] = batch["c"].reshape(n, 3)
    g = torch.Generator().manual_seed(0)
    out = generator_conditions(model.checked, batch, model.classes_of, generator=g)
    counts = torch.bincount(out["y"], minlength=4).double() / n
    # each frequency is a mean of n Bernoulli(1/4): sd sqrt(3/16 / n) = 0.0022; 5 sd
    assert counts.sub(0.25).abs().max() < 5 * (3 / 16 / n) ** 0.5
    rows = out["c"]
    assert not torch.equal(rows, batch["c"])
    assert torch.equal(rows[rows[:, 0].argsort()], batch["c"])  # the same rows, reordered


def test_sampling_conditions_broadcast_one_value_and_name_what_is_missing(model):
    out = sampling_conditions(model.checked, {"y": 2, "c": [[1.0, 2.0, 3.0]]}, 5, "cpu")
    assert out["y"].tolist() == [2] * 5 and out["c"].shape == (5, 3)
    with pytest.raises(UsageError, match="sampling model m needs its condition c"):
        sampling_conditions(model.checked, {"y": 2}, 5, "cpu")
    with pytest.raises(UsageError, match=r"model m is conditional: sampling needs y=\.\.\."):
        sampling_conditions(model.checked, None, 5, "cpu")


def test_a_conditional_gan_trains_a_step_and_samples_per_label(model):
    x = torch.randn(8, 2)
    y, c = torch.randint(4, (8,)), torch.randn(8, 3)
    opts = {k: torch.optim.Adam(p, lr=1e-3) for k, p in model.param_groups().items()}
    losses = model.training_step((x, y, c), 0, opts)
    assert torch.isfinite(losses["loss"])
    g = torch.Generator().manual_seed(0)
    a = model.sample(3, generator=g, y={"y": 1, "c": [[0.0, 0.0, 0.0]]})
    g = torch.Generator().manual_seed(0)
    b = model.sample(3, generator=g, y={"y": 2, "c": [[0.0, 0.0, 0.0]]})
    assert a.shape == (3, 2) and not torch.allclose(a, b)


def test_critic_d_of_x_and_y_is_the_network_called_on_them(model):
    x, y, c = torch.randn(5, 2), torch.randint(4, (5,)), torch.randn(5, 3)
    expected = model.nets["D"](x, c, y=y)  # the label enters the label embedding
    torch.testing.assert_close(model.critic(x, {"y": y, "c": c}), expected, rtol=0, atol=0)
