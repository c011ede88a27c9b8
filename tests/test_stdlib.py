"""The standard library (``stdlib/*.gen``) and the examples (``examples/*.gen``).

Every spec must parse, be in canonical form (``gendsl fmt`` leaves it unchanged), name one model
after its file, cite a paper in its header, use a loss and sampler of its family's library table,
and — once the checker is available — check clean with the expected family.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gendsl.analysis import library
from gendsl.data import BUNDLED
from gendsl.frontend import ast
from gendsl.frontend.parser import parse
from gendsl.frontend.printer import format_source
from gendsl.resources import stdlib_dir

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

#: Every stdlib model and the family it must belong to.
FAMILY = {
    "vae": "latent",
    "beta_vae": "latent",
    "iwae": "latent",
    "hvae": "latent",
    "vqvae": "latent",
    "discrete_vae": "latent",
    "realnvp": "flow",
    "glow": "flow",
    "ffjord": "flow",
    "gan": "adversarial",
    "wgan": "adversarial",
    "wgan_gp": "adversarial",
    "dragan": "adversarial",
    "sngan": "adversarial",
    "cgan": "adversarial",
    "ddpm": "diffusion",
    "vp_sde": "diffusion",
    "ve_sde": "diffusion",
    "subvp_sde": "diffusion",
    "consistency_distillation": "diffusion",
    "consistency_training": "diffusion",
    "classifier_guidance": "diffusion",
    "cfg": "diffusion",
    "controlnet": "diffusion",
    "flow_matching": "matching",
    "ot_cfm": "matching",
    "sb_cfm": "matching",
    "stochastic_interpolant": "matching",
    "rectified_flow": "matching",
    "ebm": "energy",
    "dsm": "energy",
    "ssm": "energy",
    "conditional_ebm": "energy",
}

STDLIB = sorted(FAMILY)
EXAMPLE_FILES = sorted(p.name for p in EXAMPLES.glob("*.gen"))


def _stdlib(name: str) -> Path:
    return stdlib_dir() / f"{name}.gen"


def _program(path: Path) -> ast.Program:
    return parse(path.read_text(), str(path))


def _resolve_import(importer: Path, target: str) -> Path:
    """The import rule of the language: beside the importer first, then the stdlib folder."""
    local = importer.parent / target
    if local.exists():
        return local
    return stdlib_dir() / target.removeprefix("stdlib/")


def _merged(path: Path) -> list[ast.Stmt]:
    """The statements of the file's (last) model after ``extends`` merging, base first.

    Written independently of the checker: a child statement replaces the base's statement that
    defines the same name or is the same singleton statement kind; ``train`` keys are merged.
    """
    program = _program(path)
    models = {m.name: (m, path) for m in program.models}
    for imp in program.imports:
        other = _resolve_import(path, imp.path)
        models.update({m.name: (m, other) for m in _program(other).models})
    model = program.models[-1]
    if model.base is None:
        return list(model.body)
    _, base_path = models[model.base]
    stmts = _merged(base_path) if base_path != path else list(models[model.base][0].body)
    for s in model.body:
        key = _key(s)
        if isinstance(s, ast.Train):
            old = next((b for b in stmts if isinstance(b, ast.Train)), None)
            items = {k.name: k for k in (old.items if old else ())} | {k.name: k for k in s.items}
            stmts = [b for b in stmts if not isinstance(b, ast.Train)]
            stmts.append(ast.Train(tuple(items.values())))
        elif key is not None and any(_key(b) == key for b in stmts):
            stmts = [s if _key(b) == key else b for b in stmts]
        else:
            stmts.append(s)
    return stmts


_SINGLETONS = (
    ast.Predict,
    ast.Loss,
    ast.SamplerDecl,
    ast.Guidance,
    ast.Critic,
    ast.Energy,
    ast.SDE,
    ast.Chain,
    ast.Path,
    ast.Couple,
)


def _key(s: ast.Stmt) -> tuple[str, str] | None:
    if isinstance(s, _SINGLETONS):
        return ("singleton", type(s).__name__)
    if isinstance(s, ast.Decl | ast.Let | ast.Net | ast.Flow):
        return ("name", s.name)
    return None


def _family(stmts: list[ast.Stmt]) -> str:
    """The family rule of the language, from the statement kinds alone."""
    kinds = {type(s) for s in stmts}
    if kinds & {ast.SDE, ast.Chain}:
        return "diffusion"
    if ast.Path in kinds:
        return "matching"
    if ast.Flow in kinds:
        return "flow"
    if ast.Critic in kinds:
        return "adversarial"
    if ast.Energy in kinds:
        return "energy"
    return "latent"


def test_the_table_lists_exactly_the_stdlib_files():
    on_disk = sorted(p.stem for p in stdlib_dir().glob("*.gen"))
    assert on_disk == STDLIB


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_spec_parses_to_one_model_named_after_its_file(name):
    program = _program(_stdlib(name))
    assert [m.name for m in program.models] == [name]


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_spec_is_in_canonical_form(name):
    text = _stdlib(name).read_text()
    assert format_source(text, name) == text


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_header_describes_and_cites(name):
    header = _stdlib(name).read_text().split("\nmodel ", 1)[0]
    comment = [line for line in header.splitlines() if line.startswith("#")]
    assert len(comment) >= 2, f"{name}: header comment missing"
    assert re.search(r"\b(19|20)\d\d\b", " ".join(comment)), f"{name}: no cited year"


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_imports_resolve_and_extend_a_stdlib_model(name):
    path = _stdlib(name)
    program = _program(path)
    for imp in program.imports:
        assert _resolve_import(path, imp.path).exists(), imp.path
    base = program.models[0].base
    if base is not None:
        assert base in FAMILY
        assert f'import "stdlib/{base}.gen"' in path.read_text()


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_statements_give_the_expected_family(name):
    assert _family(_merged(_stdlib(name))) == FAMILY[name]


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_loss_and_sampler_come_from_the_family_tables(name):
    stmts = _merged(_stdlib(name))
    info = library.FAMILY_INFO[FAMILY[name]]
    (loss,) = [s for s in stmts if isinstance(s, ast.Loss)]
    spec = info.losses[loss.option.name]
    assert {k.name for k in loss.option.kwargs} <= set(spec.params)
    for s in stmts:
        if isinstance(s, ast.SamplerDecl):
            spec = info.samplers[s.option.name]
            assert {k.name for k in s.option.kwargs} <= {*spec.params, *spec.aliases}
        if isinstance(s, ast.Train):
            assert {k.name for k in s.items} <= set(library.TRAIN)


def _number(e: ast.Expr) -> float:
    assert isinstance(e, ast.Num), e
    return e.value


def test_vp_sde_is_the_song_et_al_linear_schedule():
    stmts = _merged(_stdlib("vp_sde"))
    lets = {s.name: s for s in stmts if isinstance(s, ast.Let)}
    assert _number(lets["beta_min"].value) == 0.1
    assert _number(lets["beta_max"].value) == 20
    (sde,) = [s for s in stmts if isinstance(s, ast.SDE)]
    assert (sde.differential, sde.time) == ("dx", "t")
    assert (_number(sde.t0), _number(sde.t1)) == (0, 1)


def test_child_models_replace_the_base_statements():
    stmts = _merged(_stdlib("cfg"))
    (predict,) = [s for s in stmts if isinstance(s, ast.Predict)]
    assert [a.id for a in predict.value.args] == ["x_t", "t", "y"]
    train = next(s for s in _merged(_stdlib("wgan_gp")) if isinstance(s, ast.Train))
    keys = {k.name for k in train.items}
    assert {"steps", "batch", "critic_steps", "optimizer"} <= keys


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_parses_and_is_canonical(name):
    text = (EXAMPLES / name).read_text()
    assert parse(text, name).models
    assert format_source(text, name) == text


def test_examples_exist_and_each_has_a_readme_command_on_bundled_data():
    readme = (EXAMPLES / "README.md").read_text()
    assert len(EXAMPLE_FILES) >= 6
    for name in EXAMPLE_FILES:
        found = re.search(rf"gendsl train examples/{re.escape(name)} --data (\S+)", readme)
        assert found, name
        assert found.group(1) in BUNDLED or found.group(1) == GENERATED.get(name), name


#: Examples whose README command trains on a file a script of examples/ writes first.
GENERATED = {"cross_attention_cfg.gen": "digit_captions.npz"}


# ------------------------------------------------------------------ with the checker (helper E)

#: The family of each example, by file name.
EXAMPLE_FAMILY = {
    "latent_diffusion.gen": "diffusion",
    "cfg_moons.gen": "diffusion",
    "ddpm_moons.gen": "diffusion",
    "ebm_rings.gen": "energy",
    "ebm_rings_expression.gen": "energy",
    "cgan_digits.gen": "adversarial",
    "cross_attention_cfg.gen": "diffusion",
    "conditional_ebm_digits.gen": "energy",
    "hvae_digits.gen": "latent",
    "gmm_prior_vae.gen": "latent",
    "nvae_residual_digits.gen": "latent",
    "vqvae2_fontdigits.gen": "latent",
    "iwae_digits.gen": "latent",
    "ot_cfm_8gaussians.gen": "matching",
    "ot_cfm_certified.gen": "matching",
    "ot_cfm_8gaussians_moons.gen": "matching",
    "realnvp_moons.gen": "flow",
    "vae_digits.gen": "latent",
    "vp_sde_digits_unet.gen": "diffusion",
    "vp_sde_moons.gen": "diffusion",
    "vqvae_digits.gen": "latent",
    "wgan_gp_25gaussians.gen": "adversarial",
    "cfg_fontdigits.gen": "diffusion",
    "consistency_distillation_fontdigits.gen": "diffusion",
    "dcgan_fontdigits.gen": "adversarial",
    "ddpm_fontdigits.gen": "diffusion",
    "ebm_fontdigits.gen": "energy",
    "glow_fontdigits.gen": "flow",
    "hvae_fontdigits_conv.gen": "latent",
    "ot_cfm_fontdigits_unet.gen": "matching",
    "sngan_fontdigits.gen": "adversarial",
    "vae_fontdigits_conv.gen": "latent",
    "vp_sde_fontdigits_unet.gen": "diffusion",
    "vp_sde_fontdigits_v.gen": "diffusion",
    "vqvae_fontdigits.gen": "latent",
    "wgan_gp_fontdigits.gen": "adversarial",
}

#: Models whose checked form must be conditional (they declare a condition).
CONDITIONAL = {"classifier_guidance", "cfg", "controlnet", "cgan", "conditional_ebm"}


def _checked(path: Path):
    check = pytest.importorskip("gendsl.analysis.check")
    return check.check_file(path)[-1]


@pytest.mark.parametrize("name", STDLIB)
def test_stdlib_spec_checks_clean_with_its_family(name):
    model = _checked(_stdlib(name))
    assert (model.name, model.family) == (name, FAMILY[name])
    assert model.loss.name in library.FAMILY_INFO[FAMILY[name]].losses
    assert model.conditional == (name in CONDITIONAL)


def test_example_table_lists_every_example():
    assert sorted(EXAMPLE_FAMILY) == EXAMPLE_FILES


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_checks_clean_with_its_family(name):
    model = _checked(EXAMPLES / name)
    assert (model.name, model.family) == (Path(name).stem, EXAMPLE_FAMILY[name])


def test_checked_vae_infers_the_packed_encoder_and_decoder_shapes():
    model = _checked(_stdlib("vae"))
    assert model.nets["enc"].out_shape == (2, 16)  # loc and scale of z : real[16]
    assert model.nets["dec"].in_shapes == ((16,),)
    assert [s.name for s in model.guide] == ["z"]
    assert model.guide[0].packed is not None


def test_checked_vp_sde_network_is_time_conditioned():
    model = _checked(_stdlib("vp_sde"))
    assert model.nets["eps"].time
    assert model.predict.kind == "eps"


def _readme_data(name: str, folder: Path) -> str:
    """The data the README trains ``name`` on; a generated file is written into ``folder`` as
    its script writes it (examples/digit_captions.py for the caption embeddings)."""
    readme = (EXAMPLES / "README.md").read_text()
    data = re.search(rf"gendsl train examples/{re.escape(name)} --data (\S+)", readme).group(1)
    if data != GENERATED.get(name):
        return data
    from gendsl.data import load_dataset
    from gendsl.data.captions import caption_embeddings, write_conditioned

    digits = load_dataset("digits_image", split="all")
    y = digits.y.numpy()
    return str(write_conditioned(folder / data, digits.x.numpy(), caption_embeddings(y), y))


@pytest.mark.parametrize("name", EXAMPLE_FILES)
def test_example_declarations_fit_the_data_set_its_readme_names(name, tmp_path):
    from gendsl.data import load_dataset
    from gendsl.data.check import check_against, check_conditions

    model = _checked(EXAMPLES / name)
    dataset = load_dataset(_readme_data(name, tmp_path), n=200, seed=0)
    bindings: dict[str, int] = {}
    for var in [*model.observed_vars(), *model.condition_vars()]:
        shape = [var.type.classes] if var.type.kind == "label" else list(var.type.shape)
        decl = {"name": var.name, "type": var.type.kind, "shape": shape, "span": None}
        real_condition = var.role == "condition" and var.type.kind == "real"
        check = check_conditions if real_condition else check_against
        bindings = check(dataset, decl, bindings=bindings)
    assert all(isinstance(v, int) and v > 0 for v in bindings.values())
