"""Objectives as pure functions: the ELBO and its variants, vector quantisation, denoising and
sliced score matching, consistency losses, flow matching and couplings, adversarial losses and
energy-model training.  Each module documents its equations and papers; import from it directly
(``from gendsl.objectives.dsm import dsm_loss``)."""
