"""The training loop: learning, bit-for-bit resume, NaN handling, EMA, metrics, two players."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from train_toys import B_TRUE, NOISE, W_TRUE, Regression, regression_data

from gendsl.errors import InternalError, TrainingError, UsageError
from gendsl.protocol import Capabilities
from gendsl.train import fit, load_checkpoint, load_weights, read_metrics

torch.set_num_threads(1)

QUIET = {"progress": False, "device": "cpu"}


def test_linear_regression_learns_down_to_the_noise_floor(tmp_path):
    torch.manual_seed(0)
    model = Regression()
    result = fit(
        model,
        regression_data(512, 0),
        eval_data=regression_data(2048, 1),
        steps=400,
        batch_size=64,
        lr=0.05,
        ema=0.95,
        eval_every=400,
        out_dir=tmp_path,
        **QUIET,
    )
    # independent data: the best possible mean squared error is NOISE**2 (+ jitter effect 0)
    assert NOISE**2 * 0.85 < result.eval["eval_loss"] < NOISE**2 * 1.15
    assert abs(result.eval["eval_mae"] - NOISE * math.sqrt(2 / math.pi)) < 0.01
    torch.testing.assert_close(model.net.weight.detach(), W_TRUE.T, atol=0.03, rtol=0)
    assert abs(float(model.net.bias.detach()) - B_TRUE) < 0.03
    assert result.step == 400 and result.device == torch.device("cpu")


def _train(out_dir, steps, resume=False, **kw):
    torch.manual_seed(123)
    model = Regression()
    settings = {
        "batch_size": 16,
        "lr": 0.01,
        "checkpoint_every": 10,
        "log_every": 5,
        "eval_every": 15,
        "ema": 0.9,
        "seed": 7,
        **QUIET,
        **kw,
    }
    fit(
        model,
        regression_data(256, 0),
        eval_data=regression_data(64, 1),
        steps=steps,
        out_dir=out_dir,
        resume=resume,
        **settings,
    )
    return model


def _assert_same_state(a, b):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _assert_same_state(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same_state(x, y)
    else:
        assert a == b


def test_resume_continues_bit_for_bit(tmp_path):
    straight = _train(tmp_path / "a", 40)
    _train(tmp_path / "b", 20)
    resumed = _train(tmp_path / "b", 40, resume=True)
    _assert_same_state(straight.state_dict(), resumed.state_dict())
    a, b = (
        load_checkpoint(tmp_path / "a/checkpoint.pt"),
        load_checkpoint(tmp_path / "b/checkpoint.pt"),
    )
    for key in ("step", "model", "ema", "optimizers", "rng"):
        _assert_same_state(a[key], b[key])
    la, lb = read_metrics(tmp_path / "a/metrics.jsonl"), read_metrics(tmp_path / "b/metrics.jsonl")
    assert [r["step"] for r in la] == [r["step"] for r in lb] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    eval_a = {r["step"]: r["eval_loss"] for r in la if "eval_loss" in r}
    eval_b = {r["step"]: r["eval_loss"] for r in lb if "eval_loss" in r}
    assert list(eval_a) == [15, 30, 40] and list(eval_b) == [15, 20, 30, 40]  # 20: end of run 1
    assert all(eval_a[s] == eval_b[s] for s in eval_a)
    # the test can fail: a different seed gives different weights
    other = _train(tmp_path / "c", 40, seed=8)
    assert not torch.equal(other.net.weight, straight.net.weight)


def test_resume_without_checkpoint_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no checkpoint"):
        _train(tmp_path, 10, resume=True)


def test_nan_loss_names_the_step_and_keeps_the_checkpoint(tmp_path):
    saved = {}

    def grab(step, metrics):
        if step == 5:
            saved["bytes"] = (tmp_path / "checkpoint.pt").read_bytes()

    torch.manual_seed(0)
    model = Regression()
    model.nan_from_call = 8  # no evaluation: call k is step k
    with pytest.raises(TrainingError, match=r"at step 8: loss = nan.*step 5"):
        fit(
            model,
            regression_data(64, 0),
            steps=20,
            batch_size=8,
            lr=0.01,
            checkpoint_every=5,
            out_dir=tmp_path,
            hooks=[grab],
            **QUIET,
        )
    assert (tmp_path / "checkpoint.pt").read_bytes() == saved["bytes"]
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 5
    assert not list(tmp_path.glob(".checkpoint.pt.*"))


def test_nan_after_resume_keeps_the_resumed_checkpoint(tmp_path):
    _train(tmp_path, 10)
    before = (tmp_path / "checkpoint.pt").read_bytes()
    torch.manual_seed(0)
    model = Regression()
    model.nan_from_call = 4
    with pytest.raises(TrainingError, match=r"at step 14\b"):
        fit(
            model,
            regression_data(64, 0),
            steps=30,
            batch_size=8,
            lr=0.01,
            seed=7,
            checkpoint_every=10,
            out_dir=tmp_path,
            resume=True,
            **QUIET,
        )
    assert (tmp_path / "checkpoint.pt").read_bytes() == before


def test_ema_in_fit_follows_the_hand_recursion(tmp_path):
    torch.manual_seed(0)
    model = Regression()
    decay = 0.8
    shadow = {n: p.detach().double().clone() for n, p in model.named_parameters()}

    def track(step, metrics):
        beta = min(decay, step / (9 + step))  # warm-up (1 + n)/(10 + n) with n = step - 1
        for n, p in model.named_parameters():
            shadow[n] = beta * shadow[n] + (1 - beta) * p.detach().double()

    result = fit(
        model,
        regression_data(64, 0),
        steps=25,
        batch_size=8,
        lr=0.05,
        ema=decay,
        out_dir=tmp_path,
        hooks=[track],
        **QUIET,
    )
    for n, s in shadow.items():
        torch.testing.assert_close(result.ema.shadow[n].double(), s, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(result.ema.shadow[n], dict(model.named_parameters())[n])
    fresh = Regression()
    assert load_weights(tmp_path / "checkpoint.pt", fresh) == 25
    torch.testing.assert_close(fresh.net.weight, result.ema.shadow["net.weight"])
    load_weights(tmp_path / "checkpoint.pt", fresh, ema=False)
    torch.testing.assert_close(fresh.net.weight, model.net.weight)


def test_metrics_jsonl_lines_parse(tmp_path):
    _train(tmp_path, 30, log_every=4)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["step"] for r in records] == [4, 8, 12, 15, 16, 20, 24, 28, 30]
    for r in records:
        if r["step"] % 4 == 0 or r["step"] == 30:
            assert {"loss", "lr", "time", "steps_per_s", "grad_norm"} <= r.keys()
            assert r["lr"] == 0.01 and r["loss"] > 0
        if r["step"] % 15 == 0:
            assert r["eval_loss"] > 0 and r["eval_mae"] > 0
    times = [r["time"] for r in records if "time" in r]
    assert times == sorted(times)


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    fit(
        Regression(),
        regression_data(32, 0),
        steps=6,
        batch_size=4,
        lr=0.01,
        log_every=2,
        out_dir=tmp_path,
        device="cpu",
    )
    captured = capsys.readouterr()
    assert "loss=" in captured.err and "6/6" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("settings", "quoted"),
    [
        ({"steps": 0}, "0"),
        ({"optimizer": "lbfgs"}, "'lbfgs'"),
        ({"amp": "fp8"}, "'fp8'"),
        ({"amp": "bf16"}, "bf16"),
        ({"ema": 1.5}, "1.5"),
        ({"lr": -1.0}, "-1.0"),
        ({"device": "tpu"}, "'tpu'"),
    ],
)
def test_bad_settings_are_usage_errors_quoting_the_value(tmp_path, settings, quoted):
    kw = {"steps": 3, "batch_size": 4, "lr": 0.01, **QUIET, **settings}
    with pytest.raises(UsageError) as info:
        fit(Regression(), regression_data(8, 0), out_dir=tmp_path, **kw)
    assert quoted in str(info.value)


class MeanMatcher(nn.Module):
    """A two-player toy: a linear critic f(x) = a·x with penalty λ|a|², and a generator that
    shifts noise by μ.  The critic's optimum is a = (m − μ)/(2λ), the generator then moves
    μ toward the data mean m."""

    capabilities = Capabilities(training_step=True, param_groups=True)
    critic_steps = 5
    lam = 0.5

    def __init__(self):
        super().__init__()
        self.a = nn.Parameter(torch.zeros(2))
        self.mu = nn.Parameter(torch.zeros(2))

    def param_groups(self):
        return {"critic": [self.a], "generator": {"params": [self.mu], "lr": 0.05}}

    def fake(self, n):
        return self.mu + 0.5 * torch.randn(n, 2)

    def loss(self, x):
        return -(x @ self.a).mean() + (self.fake(len(x)) @ self.a).mean()

    def training_step(self, x, step, optimizers):
        for _ in range(self.critic_steps):
            optimizers["critic"].zero_grad()
            critic = self.loss(x) + self.lam * self.a.square().sum()
            critic.backward()
            optimizers["critic"].step()
        optimizers["generator"].zero_grad()
        gen = -(self.fake(len(x)) @ self.a).mean()
        gen.backward()
        optimizers["generator"].step()
        return {"loss": float(critic.detach()), "loss_generator": float(gen.detach())}


def test_two_player_training_step_contract(tmp_path):
    torch.manual_seed(0)
    m = torch.tensor([2.0, -1.0])
    data = m + 0.5 * torch.randn(1024, 2)
    model = MeanMatcher()
    fit(
        model,
        data,
        steps=300,
        batch_size=128,
        lr=0.05,
        optimizer="adam",
        ema=None,
        log_every=50,
        out_dir=tmp_path,
        **QUIET,
    )
    torch.testing.assert_close(model.mu.detach(), m, atol=0.15, rtol=0)
    opt = load_checkpoint(tmp_path / "checkpoint.pt")["optimizers"]
    assert set(opt) == {"critic", "generator"}
    assert float(opt["critic"]["state"][0]["step"]) == 5 * 300
    assert float(opt["generator"]["state"][0]["step"]) == 300
    assert opt["generator"]["param_groups"][0]["lr"] == 0.05
    assert opt["critic"]["param_groups"][0]["lr"] == 0.05 and opt["critic"]["param_groups"][0][
        "betas"
    ] == (0.9, 0.999)
    assert "loss_generator" in read_metrics(tmp_path / "metrics.jsonl")[-1]


def test_param_groups_without_training_step_is_refused():
    with pytest.raises(ValueError, match=r"param_groups\(\) must define training_step\(\)"):
        Capabilities(param_groups=True)


def test_a_model_without_declared_capabilities_is_refused(tmp_path):
    class Bare(nn.Module):
        def loss(self, batch):
            return torch.zeros(())

    with pytest.raises(InternalError, match="Bare is not one"):
        kw = {"steps": 2, "batch_size": 4, "lr": 0.1, **QUIET}
        fit(Bare(), regression_data(8, 0), out_dir=tmp_path, **kw)


def test_diagnostics_are_logged_only_when_declared(tmp_path):
    """``capabilities.diagnostics`` decides: the same model without it logs no ``eval_mae``."""

    class Quiet(Regression):
        capabilities = Capabilities()

    logged = {}
    for name, model in (("declared", Regression()), ("undeclared", Quiet())):
        data = regression_data(16, 0)
        kw = {"steps": 2, "batch_size": 8, "lr": 0.1, "eval_every": 2, **QUIET}
        fit(model, data, eval_data=data, out_dir=tmp_path / name, **kw)
        logged[name] = read_metrics(tmp_path / name / "metrics.jsonl")[-1]
    assert "eval_mae" in logged["declared"] and "eval_mae" not in logged["undeclared"]
    assert "eval_loss" in logged["undeclared"]


def test_a_declared_step_report_is_averaged_over_each_log_window(tmp_path):
    """``capabilities.step_report``: the numbers reported after each loss call are logged as the
    window's mean (here the call count: steps 1-4 give 2.5, 5-8 give 6.5); a model that does
    not declare it is never asked."""

    class Reporting(Regression):
        capabilities = Capabilities(step_report=True)

        def step_report(self):  # Regression counts its loss calls
            return {"calls": float(self.calls)}

    class Silent(Reporting):
        capabilities = Capabilities()

        def step_report(self):
            raise AssertionError("step_report of a model that does not declare it")

    kw = {"steps": 8, "batch_size": 4, "lr": 0.1, "log_every": 4, **QUIET}
    fit(Reporting(), regression_data(16, 0), out_dir=tmp_path / "a", **kw)
    rows = read_metrics(tmp_path / "a" / "metrics.jsonl")
    assert [(r["step"], r["calls"]) for r in rows] == [(4, 2.5), (8, 6.5)]
    fit(Silent(), regression_data(16, 0), out_dir=tmp_path / "b", **kw)
    assert "calls" not in read_metrics(tmp_path / "b" / "metrics.jsonl")[-1]


def test_warmup_raises_the_learning_rate_linearly_and_resumes_on_it(tmp_path):
    """``warmup = 4``: steps 1..4 run at lr/4, 2lr/4, 3lr/4, lr; later steps at lr — logged
    rates and a resumed run agree with :func:`warmup_factor` (the base rate travels with the
    optimiser's state dict)."""
    lr = 0.08
    _train(tmp_path / "full", 12, warmup=4, lr=lr, log_every=1, checkpoint_every=3)
    rates = [row["lr"] for row in read_metrics(tmp_path / "full" / "metrics.jsonl") if "lr" in row]
    assert rates == pytest.approx([lr * min(1, s / 4) for s in range(1, 13)], rel=1e-12)
    _train(tmp_path / "part", 3, warmup=4, lr=lr, log_every=1, checkpoint_every=3)
    _train(tmp_path / "part", 12, resume=True, warmup=4, lr=lr, log_every=1, checkpoint_every=3)
    full, part = (load_checkpoint(tmp_path / d / "checkpoint.pt") for d in ("full", "part"))
    _assert_same_state(full["model"], part["model"])
    _assert_same_state(full["optimizers"], part["optimizers"])


def test_a_negative_warmup_is_refused(tmp_path):
    with pytest.raises(UsageError, match="warmup must be a non-negative integer, got -1"):
        _train(tmp_path, 5, warmup=-1)


def test_a_spec_train_block_warmup_reaches_fit():
    """``train { warmup = N }`` is a setting of the run, not a key that is checked and dropped."""
    import argparse

    from gendsl.analysis import check_text
    from gendsl.resources import stdlib_path
    from gendsl.runs import train_settings

    spec = stdlib_path("vae").read_text()
    (checked,) = check_text(spec.replace("loss elbo", "loss elbo\n  train { warmup = 25 }"))
    args = argparse.Namespace(steps=None, batch_size=None, lr=None, eval_every=None)
    assert train_settings(checked, args)["warmup"] == 25
