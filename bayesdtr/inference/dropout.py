r"""Dropout before a later stage: the censoring models' posterior draws and their weights.

A stage declared ``bd.Stage(..., censoring="X1 + A1 + X2")`` loses the units at risk whose
treatment is missing (:mod:`bayesdtr.data.reach`). Its censoring model is the two-arm
propensity model of :mod:`bayesdtr.models.propensity` with "remained" as the arm,

.. math::

    \Pr(\text{remain}_k = 1 \mid H) = \pi^c_k(H) = \operatorname{logit}^{-1}(z_k(H)^\top\gamma_k),
    \qquad \gamma_{k,j} \sim \mathrm{Normal}(0, 2.5/\mathrm{sd}(z_j)),

fitted by NUTS on the units at risk (compiled once per model structure, seeded from the fit's
seed). Under missingness at random given :math:`z_k` (dropout before stage k depends on the
history only through covariates the formula reads, observed for everyone at risk), the
inverse-probability-of-censoring weight of a unit is

.. math::

    W_{>j,i} = \prod_{k > j,\ i \text{ at risk at } k} \frac{1\{i \text{ remained at } k\}}{\pi^c_k(H_i)},

used twice:

- **Q-functions (a cut pseudo-posterior).** Stage j's pseudo-outcome needs the later stages, so
  stage j is fitted on the units that remained to the end, each with the weight
  :math:`w_i = W_{>j,i}` at the posterior mean of :math:`\pi^c` (normalized to mean 1 over
  those units). The conjugate engine then draws from the Normal-Inverse-Gamma posterior of the
  working model :math:`T_i \sim \mathrm{Normal}(x_i^\top\theta, \sigma^2 / w_i)`, i.e.
  :math:`\Lambda_n = X^\top W X + \Lambda_0`, :math:`a_n = a_0 + n_{\text{remained}}/2`. It is a
  weighted-likelihood pseudo-posterior (its centre is the IPCW weighted least squares fit; it
  does not propagate the censoring model's uncertainty, and its spread is the model-based
  one, not a sandwich), cut like every stage: nothing flows back into the censoring model.
  Stages whose units cannot drop out later are unweighted.
- **IPW/AIPW values.** Per posterior draw s the weight uses the censoring draw
  :math:`\pi^{c,(s)}`; it multiplies the propensity ratios (IPW) or the unit's full-data AIPW
  term, pooled as a weighted (Hajek) mean with :math:`W^{(s)}` (the simple IPCW of the
  full-data estimating function; Tsiatis 2006, *Semiparametric Theory and Missing Data*,
  ch. 9, not its censoring-augmented, more efficient version). See :mod:`bayesdtr.values`.

The ``"q"`` value averages :math:`Q_1` over every unit (all of them reach stage 1), so it needs
no weight beyond the weighted fits. This follows the IPCW device of DTRreg's ``DWSurv``
(weights of the units whose later stage is observed) and Robins, Rotnitzky and Zhao (1995);
the exact posterior form above is bayesdtr's.
"""

from __future__ import annotations

import numpy as np

from bayesdtr.data.design import DTRDesign
from bayesdtr.data.reach import CensoringDesign
from bayesdtr.inference.draws import PropensityDraws, flatten_draws
from bayesdtr.inference.progress import Progress
from bayesdtr.inference.sampling import cached_sampler, is_cached
from bayesdtr.models.priors import StagePriors
from bayesdtr.models.propensity import build_propensity_model, propensity_probabilities

__all__ = ["IPCWeights", "fit_censoring"]

#: Draws per chunk when averaging censoring probabilities over draws.
_CHUNK = 256


def fit_censoring(
    design: DTRDesign,
    *,
    draws: int,
    tune: int,
    chains: int,
    sampler: str,
    rng: np.random.Generator,
    progressbar: bool = False,
) -> IPCWeights:
    """Posterior draws of every declared censoring model, as :class:`IPCWeights`."""
    assert design.dropout is not None
    out: list[PropensityDraws | None] = []
    for cd in design.dropout:
        seed = int(rng.integers(0, 2**31 - 1))
        if cd is None:
            out.append(None)
            continue
        key, data, build = build_propensity_model(
            cd, priors=StagePriors(), group_codes=None, n_groups=0
        )  # type: ignore[arg-type]
        name = f"censoring model of stage {cd.position} ({cd.treatment})"
        if not is_cached(key, sampler):  # type: ignore[arg-type]
            Progress.note(f"compiling {name}…", enabled=progressbar)
        Progress.note(f"sampling {name}…", enabled=progressbar)
        smp, created = cached_sampler(key, build, sampler)  # type: ignore[arg-type]
        res = smp.run(
            data, draws=draws, tune=tune, chains=chains, seed=seed, progressbar=progressbar
        )
        out.append(
            PropensityDraws(
                gamma=flatten_draws(res.draws["propensity_coef"]),
                stats={k: flatten_draws(v) for k, v in res.stats.items()},
                chains=chains,
                draws=draws,
                compile_seconds=smp.compile_seconds if created else 0.0,
                sample_seconds=res.seconds,
            )
        )
    return IPCWeights(design, out)


class IPCWeights:
    """Inverse-probability-of-censoring weights from the censoring models' draws.

    Parameters
    ----------
    design : DTRDesign
        A design with dropout (``design.dropout``).
    draws : list of PropensityDraws or None
        Per stage, the censoring model's draws (``gamma`` of shape (S, 1, q)), None where the
        stage has no dropout.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import bayesdtr as bd
    >>> from bayesdtr.data.design import build_design
    >>> from bayesdtr.inference.draws import PropensityDraws
    >>> df = pd.DataFrame({"X": [0.0, 1.0, -1.0, 0.5, 2.0, -0.5], "A1": [0, 1, 0, 1, 0, 1],
    ...                    "A2": [0, 1, None, 1, 0, None], "Y": [1.0, 2.0, None, 0.5, 1.5, None]})
    >>> design = build_design(df, [bd.Stage("A1"), bd.Stage("A2", censoring="1")], outcome="Y")
    >>> w = IPCWeights(design, [None, PropensityDraws(gamma=np.zeros((2, 1, 1)))])  # P(remain) 1/2
    >>> w.value_weights(np.arange(2))[0].tolist()
    [2.0, 2.0, 0.0, 2.0, 2.0, 0.0]
    >>> w.q_weights(0).tolist(), w.q_weights(1) is None
    ([2.0, 2.0, 0.0, 2.0, 2.0, 0.0], True)
    """

    def __init__(self, design: DTRDesign, draws: list[PropensityDraws | None]) -> None:
        assert design.dropout is not None
        self.n = design.n
        self.stages: list[CensoringDesign | None] = list(design.dropout)
        self.draws = draws
        self.units = [sd.units for sd in design.stages]
        self.p_mean: list[np.ndarray | None] = []
        for cd, dr in zip(self.stages, draws, strict=True):
            if cd is None or dr is None:
                self.p_mean.append(None)
                continue
            S = dr.gamma.shape[0]  # type: ignore[union-attr]
            total = np.zeros(len(cd.at_risk))
            for start in range(0, S, _CHUNK):
                total += self.p_remain(
                    cd.position - 1, np.arange(start, min(S, start + _CHUNK))
                ).sum(axis=0)
            self.p_mean.append(total / S)

    def p_remain(self, k: int, idx: np.ndarray) -> np.ndarray:
        """P(remain to stage k (0-based)) of its units at risk for draws ``idx``: (len(idx), at risk)."""
        cd, dr = self.stages[k], self.draws[k]
        assert cd is not None and dr is not None and dr.gamma is not None
        return propensity_probabilities(dr.gamma[idx], cd.X_prop)[1]

    def _inverse(self, k: int, p: np.ndarray) -> np.ndarray:
        """remain / p over the units at risk of stage k, 1 elsewhere: (..., n)."""
        cd = self.stages[k]
        assert cd is not None
        out = np.ones(p.shape[:-1] + (self.n,))
        out[..., cd.at_risk] = np.where(cd.a == 1, 1.0 / p, 0.0)
        return out

    def value_weights(self, idx: np.ndarray) -> np.ndarray:
        """Every unit's weight :math:`W^{(s)}` for draws ``idx`` (0 for units that dropped out):
        (len(idx), n)."""
        w = np.ones((len(idx), self.n))
        for k, cd in enumerate(self.stages):
            if cd is not None:
                w *= self._inverse(k, self.p_remain(k, idx))
        return w

    def q_weights(self, k: int) -> np.ndarray | None:
        """Weights of stage k's (0-based) units for its Q-function fit, at the posterior mean of
        the censoring probabilities of the later stages (0 for units that drop out later); None
        if none of its units can drop out later."""
        w = np.ones(self.n)
        later = False
        for m in range(k + 1, len(self.stages)):
            if self.stages[m] is not None:
                w *= self._inverse(m, self.p_mean[m])  # type: ignore[arg-type]
                later = True
        return w[self.units[k]] if later else None
