"""Constants shared across bayesdtr."""

from __future__ import annotations

#: Probability mass of the highest-density intervals reported by summaries and plots.
HDI_PROB = 0.94

#: Propagation rules for pseudo-outcomes.
PROPAGATIONS = ("mean", "predictive", "augmented", "modal")

#: Inference engines.
ENGINES = ("auto", "conjugate", "gibbs", "mcmc")

#: Engines whose draws come from a Markov chain (convergence diagnostics apply).
SAMPLED_ENGINES = ("gibbs", "mcmc")

#: Samplers for NUTS.
SAMPLERS = ("nutpie", "pymc", "numpyro")

#: Outcome families of the final stage.
FAMILIES = ("gaussian", "bernoulli", "lognormal", "weibull")
