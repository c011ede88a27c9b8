"""The program interpreter and its effect handlers, against Pyro's poutine."""

from __future__ import annotations

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from lower_specs import checked_latent
from pyro.poutine.messenger import Messenger

from gendsl.lower import compile_model, load
from gendsl.lower.handlers import Condition, Handler, Message, Trace, apply_stack
from gendsl.lower.interpret import scoped_lets
from gendsl.objectives.densities import Density

VAE = """
model vae {
  data x : binary[6]
  latent z : real[3]
  net enc = MLP(hidden = [16])
  net dec = MLP(hidden = [16])
  z ~ Normal(0, 1)
  x | z ~ Bernoulli(logits = dec(z))
  guide { z | x ~ Normal(enc(x)) }
  loss LOSS
}
"""

GAN = """
model gan {
  data x : real[2]
  latent z : real[3]
  net G = MLP(hidden = [8])
  net D = MLP(hidden = [8])
  let a = 2
  let b = a * 3
  let c = b * x
  let f(u) = c + u
  let g(u) = u * b
  z ~ Normal(0, 1)
  x = G(z)
  critic k = f(x) + g(x)
  loss wasserstein
}
"""


def vae(loss: str = "elbo"):
    torch.manual_seed(0)
    return compile_model(checked_latent(VAE.replace("LOSS", loss)), bindings={})


def binary(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand(n, 6, generator=g) < 0.3).float()


# ------------------------------------------------------------------ the stack


class _Log(Handler):
    def __init__(self, name: str, log: list[str], stop: bool = False):
        self.name, self.log, self.stop = name, log, stop

    def process(self, msg: Message) -> None:
        self.log.append(f"process {self.name}")
        if self.stop:
            msg.value, msg.stop = torch.zeros(()), True

    def postprocess(self, msg: Message) -> None:
        self.log.append(f"postprocess {self.name}")


class _PyroLog(Messenger):
    def __init__(self, name: str, log: list[str], stop: bool = False):
        super().__init__()
        self.name, self.log, self.stop = name, log, stop

    def _process_message(self, msg) -> None:
        self.log.append(f"process {self.name}")
        if self.stop:
            msg["value"], msg["stop"], msg["done"] = torch.zeros(()), True, True

    def _postprocess_message(self, msg) -> None:
        self.log.append(f"postprocess {self.name}")


@pytest.mark.parametrize("stopper", [None, "a", "b", "c"])
def test_apply_stack_visits_handlers_in_the_order_of_pyros_apply_stack(stopper):
    ours: list[str] = []
    stack = [_Log(n, ours, n == stopper) for n in "abc"]  # a outermost, c innermost
    density = Density(
        "Normal", {"loc": 0.0, "scale": 1.0}, batch=(2,), event=(), like=torch.ones(())
    )
    apply_stack(stack, Message("sample", "z", density))
    theirs: list[str] = []
    a, b, c = (_PyroLog(n, theirs, n == stopper) for n in "abc")
    with a, b, c:
        pyro.sample("z", dist.Normal(0.0, 1.0))
    assert ours == theirs


def test_a_message_without_a_value_gets_the_default_effect():
    like = torch.ones(())
    density = Density("Normal", {"loc": 3.0, "scale": 0.0}, batch=(4,), event=(), like=like)
    assert torch.equal(apply_stack([], Message("sample", "z", density)), torch.full((4,), 3.0))
    assert apply_stack([], Message("assign", "h", lambda scope: scope["a"] + 1, {"a": 1})) == 2


# ------------------------------------------------------------------ agreement with poutine


def _pyro_log_weights(model, data):
    guide = poutine.trace(model.pyro_guide).get_trace(data)
    joint = poutine.trace(poutine.replay(model.pyro_model, trace=guide)).get_trace(data)
    guide.compute_log_prob()
    joint.compute_log_prob()

    def total(tr):
        return sum(s["log_prob"] for s in tr.nodes.values() if s["type"] == "sample")

    return total(joint) - total(guide), guide.nodes["z"]["value"]


def test_trace_replay_and_condition_give_the_log_weights_of_pyros_poutine():
    model, x = vae(), binary(5)
    data = {"x": x}
    torch.manual_seed(4)
    records, guide = model.trace(data)
    ours = sum(r.fn.log_prob(r.value) for r in records.values()) - sum(
        r.fn.log_prob(r.value) for r in guide.values()
    )
    assert records["x"].observed and not records["z"].observed
    assert records["z"].value is guide["z"].value  # the model replays the guide's draw
    torch.manual_seed(4)  # a Normal site's draw consumes the RNG as torch's Normal does
    theirs, z = _pyro_log_weights(model, data)
    torch.testing.assert_close(guide["z"].value, z)
    torch.testing.assert_close(ours, theirs)


def test_scale_and_condition_reach_pyros_sites():
    model, x = vae("elbo(beta = 3)"), binary(4)
    tr = poutine.trace(model.pyro_model).get_trace({"x": x})
    assert tr.nodes["z"]["scale"] == 3.0 and tr.nodes["x"]["scale"] == 1.0
    assert tr.nodes["x"]["is_observed"] and torch.equal(tr.nodes["x"]["value"], x)
    assert not tr.nodes["z"]["is_observed"]
    assert [f.name for f in tr.nodes["z"]["cond_indep_stack"]] == ["data"]


def test_enumerated_sites_are_marked_for_pyros_enumeration():
    spec = """
    model mix {
      data x : real[2]
      latent c : label[3]
      net mu = MLP(hidden = [])
      c ~ Categorical(probs = [0.2, 0.3, 0.5])
      x | c ~ Normal(mu(c), 0.7)
      loss elbo(enumerate = [c])
    }
    """
    model = compile_model(checked_latent(spec), bindings={})
    tr = poutine.trace(model.pyro_model).get_trace({"x": torch.randn(4, 2)})
    assert tr.nodes["c"]["infer"] == {"enumerate": "parallel"}
    assert tr.nodes["c"]["scale"] == 1.0


# ------------------------------------------------------------------ draws and assignments


def test_draw_takes_every_value_from_the_generator():
    model = vae()
    torch.manual_seed(3)
    state = torch.get_rng_state()
    a = model.sample(5, generator=torch.Generator().manual_seed(7))
    b = model.sample(5, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG was not touched


def test_assignments_go_through_the_handlers_and_a_condition_replaces_them():
    model = load(GAN)
    program = model.program
    seen: list[tuple[str, str]] = []

    class Seen(Handler):
        def postprocess(self, msg: Message) -> None:
            seen.append((msg.kind, msg.name))

    torch.manual_seed(0)
    scope = program.run([Seen()], batch=(4,))
    x = scope["x"]
    torch.testing.assert_close(x, model.nets["G"](scope["z"]))
    assert seen == [("sample", "z"), ("assign", "x")]
    given = torch.randn(4, 2)
    scope = program.run([Seen(), Condition({"x": given})], batch=(4,))
    assert scope["x"] is given


def test_lets_that_mention_variables_are_evaluated_in_each_run():
    model = load(GAN)
    assert scoped_lets(model.checked) == {"c", "f"}
    x = torch.randn(3, 2)
    # k = f(x) + g(x) = 6 x + x + 6 x
    torch.testing.assert_close(model.critic(x), 13 * x)
    assert model.program.lets()["b"] == 6


def test_a_trace_records_sites_with_their_density_and_observation():
    model, x = vae(), binary(3)
    trace = Trace()
    model.run({"x": x}, [trace, Condition({"x": x})], (3,))
    assert list(trace.records) == ["z", "x"]
    assert trace.records["z"].fn.name == "Normal" and trace.records["x"].fn.name == "Bernoulli"
    assert trace.values()["x"] is x
