"""Constants shared across bayesdtr."""

from __future__ import annotations

#: Probability mass of the highest-density intervals reported by summaries and plots.
HDI_PROB = 0.94

#: Default seed of the shipped examples and simulators.
RANDOM_SEED = 8927

#: Fixed dimension names of every xarray object.
DIM_CHAIN = "chain"
DIM_DRAW = "draw"
DIM_OBS = "obs"
DIM_ARM = "arm"
DIM_STAGE = "stage"
DIM_REGIME = "regime"
DIM_GROUP = "group"
DIM_MAIN = "main_term"
DIM_CONTRAST = "contrast_term"

#: Propagation rules for pseudo-outcomes.
PROPAGATIONS = ("mean", "predictive", "augmented", "modal")

#: Inference engines.
ENGINES = ("auto", "conjugate", "mcmc")

#: Samplers for NUTS.
SAMPLERS = ("nutpie", "pymc", "numpyro")

#: Outcome families of the final stage.
FAMILIES = ("gaussian", "bernoulli")
