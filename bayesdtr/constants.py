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
SAMPLERS = ("nutpie", "nutpie-jax", "pymc", "numpyro")

#: Outcome families of the final stage.
FAMILIES = ("gaussian", "bernoulli", "lognormal", "weibull")

#: Default bound on the elements (draws x units, times arms) of one chunk of the arrays built
#: while propagating draws, tallying decisions and computing values: 1e6 float64 elements is
#: 8 MB per array. Memory grows with this and with n, never with n x draws. Settable per fit
#: (``fit(chunk_elements=...)``); it never changes a posterior. The closed-form engines draw
#: their random numbers in blocks of draws sized by this default, whatever the setting.
CHUNK_ELEMENTS = 1_000_000
