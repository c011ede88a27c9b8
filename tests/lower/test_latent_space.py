"""Models over the latent space of a trained autoencoder run (latent diffusion): the encoder and
decoder against the autoencoder's own networks, the latent scale, and through the CLI: training
over a VQ-VAE run, sampling and resuming after the autoencoder's folder has moved (both halves
are in the checkpoint), and the errors for a run that does not fit."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from gendsl.analysis import check_text
from gendsl.cli import main
from gendsl.errors import UsageError
from gendsl.lower import compile_model
from gendsl.lower.latent_space import LatentSpaceModel, decode, encode, latent_scale
from gendsl.train import load_checkpoint
from gendsl.trained import open_trained

torch.set_num_threads(1)

VQ = """
model vq {
  data x : image[1, 8, 8]
  latent e : code[K = 16, dim = 4]
  net enc = ConvNet(channels = [8], down = 1)
  net dec = ConvNet(channels = [8], transpose = true, up = 1)
  e = quantize(enc(x))
  x | e ~ Normal(dec(e), 0.1)
  loss vq(commitment = 0.25, codebook = ema(decay = 0.99))
}
"""

VAE = """
model vae {
  data x : image[1, 8, 8]
  latent z : real[4]
  z ~ Normal(0, 1)
  net dec = MLP(hidden = [16])
  net enc = MLP(hidden = [16])
  x | z ~ ContinuousBernoulli(logits = dec(z))
  guide {
    z | x ~ Normal(enc(x))
  }
  loss elbo
}
"""

LATENT_DIFFUSION = """
model ld {
  use ae = run("RUN")
  data x : image[1, 8, 8]
  latent z : real[SHAPE]
  z = ae.encode(x)
  x = ae.decode(z)
  let beta(t) = 0.1 + (20 - 0.1) * t
  sde dz = -0.5 * beta(t) * z * dt + sqrt(beta(t)) * dw, t in [0, 1]
  net eps = MLP(hidden = [16], time = fourier)
  predict eps = eps(z_t, t)
  loss dsm
  sample with dpm_solver(order = 2, steps = 4)
}
"""

LATENT_MATCHING = """
model lfm {
  use ae = run("RUN")
  data x : image[1, 8, 8]
  latent z1 : real[4, 4, 4]
  latent z0 : real[4, 4, 4]
  z1 = ae.encode(x)
  x = ae.decode(z1)
  z0 ~ Normal(0, 1)
  couple z0, z1 by independent
  path z_t = (1 - t) * z0 + t * z1
  net v = MLP(hidden = [16], time = concat)
  predict velocity = v(z_t, t)
  loss flow_matching
  sample with ode(method = euler, steps = 4)
}
"""


def _model(text: str, bindings=None):
    torch.manual_seed(0)
    return compile_model(check_text(text)[-1], bindings=bindings or {}).eval()


def _images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 17, (n, 1, 8, 8), generator=g).float() / 16


def test_vq_encode_is_the_encoder_before_quantisation_and_decode_quantises_first():
    ae = _model(VQ)
    x = _images(5)
    with torch.no_grad():
        z_e = ae.nets["enc"](x)
        assert torch.equal(encode(ae, x), z_e)
        z = z_e + 0.01 * torch.randn_like(z_e)
        index = torch.cdist(z.movedim(1, -1).reshape(-1, 4), ae.quantizer.codebook).argmin(-1)
        z_q = ae.quantizer.codebook[index].reshape(5, 4, 4, 4).movedim(-1, 1)
        assert torch.allclose(decode(ae, z), ae.nets["dec"](z_q), atol=1e-6)


def test_vae_encode_draws_from_the_guide_and_decode_is_the_likelihood_mean():
    ae = _model(VAE)
    x = _images(1).expand(4000, -1, -1, -1)
    torch.manual_seed(1)
    z = encode(ae, x)
    with torch.no_grad():
        out = ae.nets["enc"](x[:1])
    loc, scale = out[:, 0], torch.nn.functional.softplus(out[:, 1]) + 1e-5
    std_err = scale / np.sqrt(len(z))
    assert ((z.mean(0) - loc[0]).abs() < 5 * std_err[0]).all()
    assert ((z.std(0) / scale[0] - 1).abs() < 0.1).all()  # sd of the sd: 1/sqrt(2n) ~ 0.011
    dist = torch.distributions.ContinuousBernoulli(logits=ae.nets["dec"](z[:3]))
    assert torch.allclose(decode(ae, z[:3]), dist.mean, atol=1e-6)


def test_the_latent_scale_makes_the_first_batch_unit_variance():
    codes = 3.0 * torch.randn(64, 4, 4, 4) + 1.0
    s = latent_scale(codes)
    assert torch.allclose((s * codes).var(), torch.tensor(1.0), atol=1e-5)


def _train(argv: list[str]) -> int:
    return main(["train", *argv, "--no-progress"])


@pytest.fixture
def vq_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vq.gen").write_text(VQ)
    assert _train(["vq.gen", "--data", "digits_image", "--steps", "3", "--out", "runs/vq"]) == 0
    return tmp_path


def _spec(folder: Path, text: str, run: str = "runs/vq", shape: str = "4, 4, 4") -> str:
    path = folder / "ld.gen"
    path.write_text(text.replace("RUN", run).replace("SHAPE", shape))
    return str(path)


def test_latent_diffusion_trains_samples_and_resumes_after_the_autoencoder_moved(vq_run, capsys):
    spec = _spec(vq_run, LATENT_DIFFUSION)
    common = [spec, "--data", "digits_image", "--batch-size", "16"]
    assert _train([*common, "--steps", "4", "--out", "runs/whole"]) == 0
    assert _train([*common, "--steps", "2", "--out", "runs/ld"]) == 0
    state = load_checkpoint("runs/ld/checkpoint.pt")
    frozen = {k: v for k, v in state["model"].items() if k.startswith("autoencoder.")}
    vq = open_trained("runs/vq").weights()  # the weights it samples with (EMA laid over)
    assert frozen
    assert all(torch.equal(v, vq[k.removeprefix("autoencoder.")]) for k, v in frozen.items())
    assert state["config"]["embedded"]["ae"]["config"]["model"] == "vq"
    assert float(state["model"]["latent_scale"]) > 0
    shutil.move("runs/vq", "elsewhere")  # the run is whole without the autoencoder's folder
    assert main(["sample", "runs/ld", "-n", "3", "--out", "s.npy"]) == 0
    samples = np.load("s.npy")
    assert samples.shape == (3, 1, 8, 8) and np.isfinite(samples).all()
    assert _train([*common, "--steps", "4", "--out", "runs/ld", "--resume"]) == 0
    resumed = load_checkpoint("runs/ld/checkpoint.pt")["model"]
    whole = load_checkpoint("runs/whole/checkpoint.pt")["model"]
    assert resumed.keys() == whole.keys()
    assert all(torch.equal(resumed[k], whole[k]) for k in whole), "resume is not bit-for-bit"
    capsys.readouterr()
    assert _train([*common, "--steps", "2", "--out", "runs/new"]) == 2
    err = capsys.readouterr().err
    assert "model ld needs a trained autoencoder run (VAE or VQ-VAE), the run 'runs/vq'" in err
    assert "there is no checkpoint at runs/vq" in err


def test_flow_matching_over_the_latent_space_trains_and_samples(vq_run):
    spec = _spec(vq_run, LATENT_MATCHING)
    args = [spec, "--data", "digits_image", "--steps", "2", "--batch-size", "16"]
    assert _train([*args, "--out", "runs/lfm"]) == 0
    assert main(["sample", "runs/lfm", "-n", "2", "--out", "s.npy"]) == 0
    assert np.load("s.npy").shape == (2, 1, 8, 8)


def test_a_latent_shape_that_is_not_the_encoders_is_refused_with_the_right_one(vq_run, capsys):
    spec = _spec(vq_run, LATENT_DIFFUSION, shape="4, 2, 2")
    assert _train([spec, "--data", "digits_image", "--steps", "1", "--out", "runs/x"]) == 2
    err = capsys.readouterr().err
    assert "the run runs/vq encodes x into codes of shape [4, 4, 4]; declare 'latent z : " in err
    assert "real[4, 4, 4]' (declared: real[4, 2, 2])" in err
    assert not Path("runs/x").exists()


def test_a_run_that_is_not_an_autoencoder_is_refused(vq_run, capsys):
    (vq_run / "vp.gen").write_text(
        LATENT_DIFFUSION.replace('use ae = run("RUN")\n', "")
        .replace("latent z : real[SHAPE]\n  z = ae.encode(x)\n  x = ae.decode(z)\n", "")
        .replace("dz", "dx")
        .replace("z * dt", "x * dt")
        .replace("z_t", "x_t")
    )
    assert _train(["vp.gen", "--data", "digits_image", "--steps", "1", "--out", "runs/vp"]) == 0
    spec = _spec(vq_run, LATENT_DIFFUSION, run="runs/vp")
    assert _train([spec, "--data", "digits_image", "--steps", "1", "--out", "runs/x"]) == 2
    err = capsys.readouterr().err
    assert "the run runs/vp is a diffusion model (ld); a latent space comes from an " in err


def test_sampling_before_the_autoencoder_is_attached_says_so():
    model = _model(_spec_text())
    assert isinstance(model, LatentSpaceModel)
    with pytest.raises(UsageError, match="works in the latent space of the run 'runs/vq'"):
        model.sample(2)


def _spec_text() -> str:
    return LATENT_DIFFUSION.replace("RUN", "runs/vq").replace("SHAPE", "4, 4, 4")


def test_the_graph_draws_the_frozen_autoencoder_between_the_data_and_its_latent():
    from gendsl.analysis.draw import to_dot

    dot = to_dot(check_text(_spec_text())[-1])
    assert '"x" -> "ae.encode" [style=dashed color=gray40];' in dot
    assert '"ae.encode" -> "z" [style=dashed color=gray40];' in dot
    assert '"z" -> "ae.decode";' in dot and '"ae.decode" -> "x";' in dot
    assert '"z" [shape=circle label="z"];' in dot  # the process's variable, not observed


def test_the_latent_diffusion_example_trains_over_the_vqvae_example_and_samples(
    tmp_path, monkeypatch
):
    examples = Path(__file__).resolve().parents[2] / "examples"
    monkeypatch.chdir(tmp_path)
    fast = ["--data", "fontdigits", "--steps", "1", "--batch-size", "8"]
    vq = str(examples / "vqvae_fontdigits.gen")
    assert _train([vq, *fast, "--out", "runs/vqvae_fontdigits"]) == 0
    assert _train([str(examples / "latent_diffusion.gen"), *fast, "--out", "runs/ld"]) == 0
    assert main(["sample", "runs/ld", "-n", "2", "--steps", "2", "--out", "s.npy"]) == 0
    samples = np.load("s.npy")
    assert samples.shape == (2, 1, 28, 28) and np.isfinite(samples).all()
