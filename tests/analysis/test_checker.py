"""The checker's contract: inferred shapes, order, graph, merging, option values, errors."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from gendsl.analysis import check_file, check_text, load_checked, model_graph, report
from gendsl.analysis import library as lib
from gendsl.distributions import DISTRIBUTIONS
from gendsl.errors import SpecErrors, SpecSyntaxError

GOOD = Path(__file__).resolve().parents[1] / "programs" / "good"

VAE = """
model vae {
  data x : real[D]
  latent z : real[4]
  net enc = MLP(hidden = [8], spectral_norm = true)
  net dec = MLP(hidden = [8])
  x | z ~ Normal(dec(z), 0.5)     # written before its parent on purpose
  z ~ Normal(0, 1)
  guide { z | x ~ Normal(enc(x)) }
  loss elbo(beta = 2)
  train { steps = 10, batch = 4 }
}
"""


def test_packed_and_direct_parameter_shapes():
    m = load_checked(VAE)
    enc, dec = m.nets["enc"], m.nets["dec"]
    assert (enc.in_shapes, enc.out_shape) == ((("D",),), (2, 4))  # loc and scale of z
    assert (dec.in_shapes, dec.out_shape) == (((4,),), ("D",))
    assert enc.options == {"hidden": [8], "spectral_norm": True}
    (guide,) = m.guide
    assert guide.packed is not None and guide.params == {}
    x_site = next(s for s in m.sites if s.name == "x")
    assert set(x_site.params) == {"loc", "scale"} and x_site.packed is None


def test_sites_in_topological_order_and_graph():
    m = load_checked(VAE)
    assert [s.name for s in m.sites] == ["z", "x"]
    g = model_graph(m)
    assert g.nodes["x"]["kind"] == "observed" and g.nodes["enc"]["kind"] == "net"
    assert g.edges["z", "x"]["guide"] is False
    assert g.edges["x", "z"]["guide"] is True
    assert g.has_edge("dec", "x") and g.has_edge("enc", "z")


def test_loss_and_train_values():
    m = load_checked(VAE)
    assert m.family == "latent"
    assert m.loss.name == "elbo"
    assert m.loss.kwargs["beta"] == 2
    assert m.loss.kwargs["kl"] == "analytic"  # default filled in from the library table
    assert m.sampler.name == "ancestral"
    assert m.train == {"steps": 10, "batch": 4}


def test_let_sizes_substitute_into_types():
    m = load_checked(VAE.replace("model vae {", "model vae {\n  let D = 6"))
    assert m.variables["x"].type.shape == (6,)
    assert m.nets["enc"].in_shapes == ((6,),)
    assert m.sizes == {"D": 6}


def test_diffusion_contract():
    (m,) = check_file(GOOD / "vp_sde.gen")
    assert m.family == "diffusion" and m.process is not None and m.predict.kind == "eps"
    eps = m.nets["eps"]
    assert eps.time and eps.in_shapes == ((2,),) and eps.out_shape == (2,)
    assert m.variables["x_t"].role == "noised"
    g = m.graph
    assert [g.has_edge(*e) for e in [("x", "sde"), ("sde", "x_t"), ("x_t", "predict")]] == [
        True,
        True,
        True,
    ]
    assert g.has_edge("predict", "loss") and g.has_edge("t", "predict")


def test_extends_overrides_and_merges():
    cfg, cd = check_file(GOOD / "cfg.gen")
    assert cfg.base == "vp_sde" and cfg.conditional
    assert cfg.nets["eps"].cond_classes == 10 and cfg.nets["eps"].in_shapes == ((2,),)
    assert cfg.loss.name == "dsm"  # inherited
    assert cd.predict.kind == "x0" and set(cd.nets) == {"f"}  # eps no longer used
    assert cd.loss.kwargs["teacher"] == "vp_sde"
    text = """
    model a { data x : real[2]; x ~ Normal(0, 1); loss elbo; train { steps = 10, batch = 4 } }
    model b extends a { x ~ Laplace(0, 1); train { steps = 20 } }
    """
    a, b = check_text(text)
    assert a.train == {"steps": 10, "batch": 4}
    assert b.train == {"batch": 4, "steps": 20}
    assert [s.dist for s in b.sites] == ["Laplace"]


def test_vq_code_grid_keeps_spatial_size():
    (m,) = check_file(GOOD / "vqvae.gen")
    assert m.nets["enc"].out_shape == (16, 8, 8)
    assert m.nets["dec"].in_shapes == ((16, 8, 8),)
    assert m.variables["e"].type == lib_code(64, 16)


def lib_code(k: int, dim: int):
    from gendsl.analysis import VarType

    return VarType("code", (dim,), k)


def test_critic_energy_and_classifier_shapes():
    (gan,) = check_file(GOOD / "wgan.gen")
    assert gan.nets["D"].out_shape == () and gan.nets["G"].out_shape == (2,)
    assert gan.train["optimizer"].kwargs["betas"] == [0.5, 0.9]
    (ebm,) = check_file(GOOD / "ebm.gen")
    assert ebm.nets["E"].in_shapes == ((2,),) and ebm.nets["E"].out_shape == ()
    text = """
    import "stdlib/vp_sde.gen"
    model g extends vp_sde {
      condition y : label[7]
      net clf = MLP(hidden = [8])
      guidance classifier(clf, scale = 2)
    }
    """
    m = load_checked(text)
    assert m.nets["clf"].out_shape == (7,) and m.nets["clf"].time


def test_all_errors_are_collected_in_source_order():
    text = """model m {
      data x : real[2]
      net d = MLP(hiden = [3])
      x ~ Normal(0, -2)
      loss elbo(bta = 1)
    }"""
    with pytest.raises(SpecErrors) as info:
        check_text(text, "m.gen")
    lines = [e.span.line for e in info.value.errors]
    assert lines == [3, 4, 5]
    assert report(info.value).count(": error: ") == 3


def test_syntax_error_is_raised_alone():
    with pytest.raises(SpecSyntaxError):
        check_text("model m { x ~ }")


def test_load_checked_selects_models():
    text = "model a { data x : real[2]; x ~ Normal(0, 1); loss elbo }\n" + (
        "model b extends a { }"
    )
    assert load_checked(text).name == "b"
    assert load_checked(text, "a").name == "a"
    with pytest.raises(SpecErrors, match="no model named 'c'"):
        load_checked(text, "c")


def test_imports_prefer_the_local_file(tmp_path):
    (tmp_path / "vp_sde.gen").write_text(
        "model vp_sde { data x : real[3]; x ~ Normal(0, 1); loss elbo }"
    )
    main = tmp_path / "main.gen"
    main.write_text('import "vp_sde.gen"\nmodel m extends vp_sde { }')
    assert check_file(main)[0].family == "latent"  # the local file, not the stdlib sde
    main.write_text('import "stdlib/vp_sde.gen"\nmodel m extends vp_sde { }')
    assert check_file(main)[0].family == "diffusion"


def test_library_tables_are_consistent():
    assert DISTRIBUTIONS["Normal"].n_params() == 2
    assert DISTRIBUTIONS["Bernoulli"].n_params() == 1
    for info in DISTRIBUTIONS.values():
        assert set(info.positive) <= set(info.params)
    for fam in lib.FAMILY_INFO.values():
        assert fam.default_loss in fam.losses and fam.default_sampler in fam.samplers
        for spec in [*fam.losses.values(), *fam.samplers.values()]:
            assert spec.positional <= len(spec.params)
            for p in spec.params.values():
                assert p.kind in lib.VALUE_KINDS
                if p.kind == "choice" and p.default is not None:
                    assert p.default in p.choices or p.default in p.calls
    assert lib.family_of_loss("dsm") == ["diffusion", "energy"]


def test_front_end_never_imports_torch():
    code = (
        "import sys\n"
        "from gendsl.analysis import check_file\n"
        f"check_file({str(GOOD / 'vae.gen')!r})\n"
        "import gendsl.frontend.printer, gendsl.errors, gendsl.source\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "assert 'sympy' not in sys.modules, 'sympy was imported for a latent model'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_checking_is_fast():
    text = (GOOD / "hvae.gen").read_text()
    check_text(text)  # warm the parser cache
    start = time.perf_counter()
    for _ in range(20):
        check_text(text)
    per_spec = (time.perf_counter() - start) / 20
    assert per_spec < 0.05, f"{per_spec * 1e3:.1f} ms per spec"


TWO_LEVEL = Path(__file__).resolve().parents[1] / "programs" / "good" / "two_level_vae.gen"


def test_graph_keeps_a_generative_edge_the_guide_also_uses():
    """z2 -> z1 is in the model (p(z1 | z2)) and in the guide (q(z1 | x, z2)): the graph keeps it
    as a generative edge (marked as used by the guide too); x -> z1 is a guide edge only; a
    likelihood loss scores the observed x."""
    (model,) = check_file(TWO_LEVEL)
    g = model.graph
    assert g.edges["z2", "z1"]["guide"] is False and g.edges["z2", "z1"]["in_guide"] is True
    assert g.edges["x", "z1"]["guide"] is True
    assert g.edges["z1", "x"]["guide"] is False
    assert list(g.predecessors("loss")) == ["x"]


def test_symbolic_checks_are_remembered_and_skip_sympy(tmp_path):
    """A process that passed the symbolic checks once is remembered in $GENDSL_CACHE, so the
    next check imports no sympy; a failing one is never remembered."""
    import os

    env = {**os.environ, "GENDSL_CACHE": str(tmp_path / "cache")}
    probe = (
        "import sys; from gendsl.analysis import check_file\n"
        "check_file(sys.argv[1]); print('sympy' in sys.modules)"
    )
    spec = str(Path(__file__).resolve().parents[2] / "stdlib" / "vp_sde.gen")
    runs = [
        subprocess.run(
            [sys.executable, "-c", probe, spec],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs == ["True", "False"]
    bad = tmp_path / "bad.gen"
    bad.write_text(
        "model b {\n  data x : real[2]\n  sde dx = -x^2 * dt + dw, t in [0, 1]\n"
        "  net e = MLP(hidden = [8])\n  predict eps = e(x_t, t)\n  loss dsm\n}\n"
    )
    for _ in range(2):
        with pytest.raises(SpecErrors, match="drift must be affine"):
            check_file(bad)
