r"""The BART stage engine: sums of trees as Q-functions, fitted by stochtree.

A stage declared ``bd.Stage("A1", q=bd.BART(covariates=[...]))`` has the Q-function of
:mod:`bayesdtr.data.bart_spec`: a forest on the covariates' design columns (intercept dropped)
plus one indicator per non-reference arm. Backward induction follows Murray, Yuan and Thall
(2018, JASA 113:1255): the last stage is fitted to the outcome; an earlier stage is refitted on M
pseudo-outcome vectors, each built from one draw of the later stage (its ancestor), and the draws
of the M fits are pooled (multiple imputation of the cut posterior, as the MCMC engine does).
A Bernoulli final outcome is fitted by probit BART (stochtree's ``OutcomeModel(outcome="binary",
link="probit")``, error variance fixed at 1); its Q on the family's linear-predictor scale is
:func:`probit_as_logit` of the latent forest, so the family's inverse logit gives
:math:`P(Y = 1 \mid h, a) = \Phi(f)` and every query reads the probability scale.
With ``BART(warm_start=True)`` imputation j's sampler starts from the last forest of imputation
j-1 (a different target, but close): ``warm_burn`` sweeps replace the cold start's 10
grow-from-root sweeps plus ``burn`` sweeps. stochtree warm-starts through a JSON round trip of
the previous model, which costs about what the shorter burn-in saves, so it is off by default.

Backend: stochtree (``BARTModel``; chosen by ``benchmarks/bench_bart_backends.py``: fastest
per effective draw at n = 1,000 and 10,000, and it warm-starts from a previous model). It is an
optional dependency (``pip install "bayesdtr[bart]"``), imported only when a BART stage is fitted.

Q evaluations: the engine predicts Q(h, a) of every draw, arm and unit of the stage once
(:class:`ForestQ`, ``(arm, draw, unit)``), so the induction's pseudo-outcomes, P(optimal) and
values read those; new histories (``prob_optimal(data=new)``, cross-fitting on other units) are
predicted from the forests held in memory. Files store the units' Q evaluations
(:class:`StoredQ`) and, by default, the forests as stochtree's JSON text (:class:`ForestText`,
:mod:`bayesdtr.bart_io`), parsed on the first query about new histories after ``bd.load`` and
checked against the stored evaluations; a file written with ``to_netcdf(forests=False)`` answers
only about the fitted units and says so (:class:`~bayesdtr.FitError`) for new histories.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bayesdtr.data.bart_spec import BART
from bayesdtr.data.design import DTRDesign, StageDesign
from bayesdtr.exceptions import FileFormatError, FitError
from bayesdtr.inference.draws import StageDraws
from bayesdtr.models.priors import StagePriors

if TYPE_CHECKING:
    from bayesdtr.inference.backward import FitSettings, Induction

__all__ = [
    "BARTEngine",
    "ForestQ",
    "LINKS",
    "StoredQ",
    "bart_spec_of",
    "probit_as_logit",
    "q_units_of",
]

#: Grow-from-root (XBART) sweeps that start a cold fit.
GFR_SWEEPS = 10

#: The forest's link for each final-outcome family a BART stage supports (stages before the last
#: are Gaussian: their pseudo-outcomes are values).
LINKS = {"gaussian": "identity", "bernoulli": "probit"}


def bart_spec_of(sd: StageDesign) -> BART | None:
    """The stage's :class:`~bayesdtr.BART` declaration, or None for a linear stage."""
    q = getattr(sd.stage, "q", None)
    return q if isinstance(q, BART) else None


def _forest_columns(sd: StageDesign) -> np.ndarray:
    return np.array([i for i, t in enumerate(sd.main_terms) if t != "Intercept"], dtype=np.int64)


def _inputs(X_main: np.ndarray, cols: np.ndarray, arm: int, n_arms: int) -> np.ndarray:
    """The forest's inputs for everyone on arm ``arm``: covariates plus arm indicators."""
    ind = np.zeros((X_main.shape[0], n_arms - 1))
    if arm > 0:
        ind[:, arm - 1] = 1.0
    return np.ascontiguousarray(np.column_stack([X_main[:, cols], ind]))


class BARTEngine:
    """Stages declared with ``q=bd.BART(...)``: Gaussian, no groups."""

    name = "bart"

    def refusal(
        self, design: DTRDesign, settings: FitSettings, priors: Mapping[str, StagePriors], k: int
    ) -> str | None:
        sd = design.stages[k]
        if bart_spec_of(sd) is None:
            return f"Stage {sd.treatment!r} has a linear Q-function (main=/contrast=); engine='bart' fits only stages declared with q=bd.BART(...)."
        if k == len(design.stages) - 1 and design.family not in LINKS:
            return (
                f"Stage {sd.treatment!r}: q=bd.BART(...) supports family='gaussian' or 'bernoulli' "
                f"(probit BART); the final outcome family is {design.family!r}. Use a linear "
                "Q-function (main=/contrast=) for this stage."
            )
        if design.group is not None:
            return (
                f"Stage {sd.treatment!r}: q=bd.BART(...) has no group effects; group={design.group!r} was "
                "given. Drop group= or add the group column to BART(covariates=[...])."
            )
        if importlib.util.find_spec("stochtree") is None:
            return (
                f"Stage {sd.treatment!r}: q=bd.BART(...) needs the optional dependency stochtree, which "
                "is not installed. Install it with: pip install 'bayesdtr[bart]'."
            )
        return None

    def fit(self, induction: Induction, k: int) -> StageDraws:
        return fit_stage_bart(induction, k)


def _sample(Z, y, spec: BART, *, seed: int, num: int, prev: Any = None, link: str = "identity"):
    from stochtree import BARTModel, OutcomeModel

    model = BARTModel()
    general: dict[str, Any] = {"random_seed": seed, "num_threads": 1}
    if link == "probit":  # Albert-Chib latent N(f, 1) outcome: no error variance to sample
        general |= {
            "outcome_model": OutcomeModel(outcome="binary", link="probit"),
            "sample_sigma2_global": False,
        }
    kw: dict[str, Any] = {}
    if prev is not None:
        kw = {
            "previous_model_json": prev.to_json(),
            "previous_model_warmstart_sample_num": prev.num_samples - 1,
        }
        gfr, burn = 0, spec.warm_burn
    else:
        gfr, burn = GFR_SWEEPS, spec.burn
    model.sample(
        X_train=Z,
        y_train=y,
        num_gfr=gfr,
        num_burnin=burn,
        num_mcmc=num,
        general_params=general,
        mean_forest_params={"num_trees": spec.trees},
        **kw,
    )
    return model


def fit_stage_bart(ind: Induction, k: int) -> StageDraws:
    """Fit stage ``k`` of ``ind`` by BART (multiple imputation before the last stage)."""
    st, sd = ind.settings, ind.design.stages[k]
    spec = bart_spec_of(sd)
    assert spec is not None
    S, rng = st.total, ind.rngs[k]
    last = k == ind.K - 1
    if last:
        targets = ind.target_for_fit(k, None)
        ancestors = None
        m, per = st.chains, st.draws  # one cold fit per chain
    else:
        m = max(1, min(spec.imputations, st.imputations, S))
        per = -(-S // m)
        n_next = ind.fits[k + 1].n  # type: ignore[union-attr]
        ancestors = rng.choice(n_next, size=m, replace=m > n_next)
        targets = ind.target_for_fit(k, ancestors)
    family = ind.family(k)
    link = LINKS[family]
    if link == "probit" and np.unique(targets[0]).size < 2:
        raise FitError(
            f"Stage {sd.treatment!r}: the Bernoulli outcome {ind.design.outcome!r} takes the single "
            f"value {targets[0][0]:g} on all {sd.n_units} units of the stage, so a probit BART has "
            "nothing to learn from. Check the outcome column, or fit data where both 0 and 1 occur."
        )
    cols = _forest_columns(sd)
    Z = [_inputs(sd.X_main, cols, j, sd.n_arms) for j in range(sd.n_arms)]
    Z_obs = np.ascontiguousarray(np.select([sd.a[:, None] == j for j in range(sd.n_arms)], Z))
    seeds = rng.integers(0, 2**31 - 1, size=m)
    models, sigma = [], []
    t0 = time.perf_counter()
    prev = None
    for j in range(m):
        y = targets[0] if last else targets[j]
        warm = prev if (not last and spec.warm_start) else None
        model = _sample(Z_obs, y, spec, seed=int(seeds[j]), num=per, prev=warm, link=link)
        models.append(model)
        if link == "identity":
            sigma.append(
                np.sqrt(np.asarray(model.extract_parameter("sigma2"), dtype=float).reshape(-1))
            )
        prev = model
    q = ForestQ(models, per, S, sd.n_arms, cols, sd.X_main, link=link)
    q.q_units = q.predict(sd.X_main)  # every draw, arm and unit, once
    seconds = time.perf_counter() - t0
    anc = None
    if ancestors is not None:
        anc = ancestors[np.repeat(np.arange(m), per)[:S]]
    return StageDraws(
        theta=np.empty((S, 0)),
        sigma=np.concatenate(sigma)[:S] if sigma else None,
        chains=st.chains,
        draws=st.draws,
        engine="bart",
        family=family,
        ancestor=anc,
        sample_seconds=seconds,
        n_fits=m,
        q_model=q,
    )


@dataclass(frozen=True)
class ForestText:
    """A BART stage's forests as stochtree JSON, as a file stores them.

    ``data`` holds the UTF-8 JSON text of each fit's model (``BARTModel.to_json``) one after
    the other, fit j in ``data[offsets[j]:offsets[j + 1]]``; fit j holds draws
    ``j * per ... (j + 1) * per - 1`` of the stage. Reading it parses JSON only (Python's
    ``json`` and stochtree's C++ JSON reader): no pickle, nothing evaluated.
    """

    data: np.ndarray  # uint8
    offsets: np.ndarray  # int64, (fits + 1,)
    per: int
    link: str
    source: str = "this session"

    @classmethod
    def of(cls, q: ForestQ) -> ForestText:
        """The JSON text of the forests held in memory."""
        texts = [m.to_json().encode("utf-8") for m in q.models]
        offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])]).astype(np.int64)
        data = np.frombuffer(b"".join(texts), dtype=np.uint8)
        return cls(data, offsets, q.per, q.link)

    def models(self, treatment: str) -> list:
        """The stochtree models, parsed from the JSON text (FileFormatError if it is not theirs)."""
        from stochtree import BARTModel

        out = []
        for j in range(len(self.offsets) - 1):
            where = f"stage {treatment!r} forest {j}"
            try:
                text = self.data[self.offsets[j] : self.offsets[j + 1]].tobytes().decode("utf-8")
                plain = json.loads(text)
            except (UnicodeDecodeError, ValueError) as err:
                raise self._error(f"{where} is not UTF-8 JSON text ({str(err)[:80]})") from None
            if not isinstance(plain, dict) or not isinstance(plain.get("forests"), dict):
                raise self._error(f"{where} is not a stochtree BART model (no 'forests' object)")
            link = plain.get("outcome_model", {}).get("link", "identity")
            if plain.get("num_samples") != self.per or link != self.link:
                raise self._error(
                    f"{where} holds {plain.get('num_samples')!r} draws with link {link!r}; the "
                    f"file says {self.per} draws with link {self.link!r}"
                )
            model = BARTModel()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # stochtree's notes on fields of old versions
                    model.from_json(text)
            except Exception as err:  # stochtree's reader raises several types
                raise self._error(
                    f"{where} could not be read by stochtree ({type(err).__name__}: {str(err)[:80]})"
                ) from None
            out.append(model)
        return out

    def _error(self, what: str) -> FileFormatError:
        return FileFormatError(
            f"{self.source}: {what}. The file is damaged or was not written by post.to_netcdf; "
            "write it again, or load it and query only its fitted units (data=None)."
        )


class StoredQ:
    """Q evaluations of a BART stage's units, ``(arm, draw, unit)``, and, when a file holds
    them, the forests as JSON text (:class:`ForestText`), parsed on the first query about new
    histories and checked against the stored evaluations."""

    def __init__(
        self, q_units: np.ndarray, X_units: np.ndarray, forests: ForestText | None = None
    ) -> None:
        self.q_units = q_units
        self.X_units = X_units
        self.forests = forests
        self._live: ForestQ | None = None

    def _on_units(self, X_main: np.ndarray) -> bool:
        return X_main is self.X_units or (
            X_main.shape == self.X_units.shape and np.array_equal(X_main, self.X_units)
        )

    def q_arms(self, sd: StageDesign, idx: np.ndarray, X_main: np.ndarray) -> np.ndarray:
        if self._on_units(X_main):
            return self.q_units[:, idx]
        return self.live(sd).predict(X_main, idx)

    def live(self, sd: StageDesign) -> ForestQ:
        """The forests in memory, parsed from :attr:`forests` once and checked: they must
        reproduce the stored Q evaluations of the stage's first units."""
        if self._live is not None:
            return self._live
        if self.forests is None:
            raise FitError(
                f"Stage {sd.treatment!r} has a BART Q-function and this posterior was read from a "
                "file that stores the Q evaluations of the fitted units but not the forests "
                "(written with post.to_netcdf(path, forests=False), or by an older bayesdtr). "
                "Queries on the fitted units work (data=None); for new histories save the "
                "posterior with its forests (the default) or refit: bd.DTRModel(...).fit(...)."
            )
        S = self.q_units.shape[1]
        live = ForestQ(
            self.forests.models(sd.treatment),
            self.forests.per,
            S,
            sd.n_arms,
            _forest_columns(sd),
            self.X_units,
            link=self.forests.link,
        )
        if live.per * len(live.models) < S:
            raise self.forests._error(
                f"stage {sd.treatment!r} has {len(live.models)} forests of {live.per} draws, "
                f"fewer than its {S} draws"
            )
        head = min(8, self.X_units.shape[0])
        got = live.predict(self.X_units[:head])
        if not np.allclose(got, self.q_units[:, :, :head], rtol=1e-9, atol=1e-9):
            raise self.forests._error(
                f"stage {sd.treatment!r}: the stored forests do not reproduce the stored Q "
                "evaluations of the stage's units"
            )
        live.q_units = self.q_units
        self._live = live
        return live

    def mean(self) -> StoredQ | _MeanQ:
        if self.forests is not None:
            return _MeanQ(self)
        return StoredQ(self.q_units.mean(axis=1, keepdims=True), self.X_units)


class ForestQ(StoredQ):
    """A BART stage's forests held in memory: Q on the units (cached) and on new histories.

    Draw s comes from model ``s // per``, its sample ``s % per``.
    """

    def __init__(
        self,
        models: list,
        per: int,
        S: int,
        n_arms: int,
        cols: np.ndarray,
        X_units: np.ndarray,
        *,
        link: str = "identity",
    ) -> None:
        super().__init__(np.empty((n_arms, 0, 0)), X_units)
        self.models, self.per, self.S, self.n_arms, self.cols = models, per, S, n_arms, cols
        self.link = link
        self._last: tuple[np.ndarray, dict[int, np.ndarray]] | None = None

    def _block(self, b: int, X_main: np.ndarray) -> np.ndarray:
        model = self.models[b]
        f = np.stack(
            [
                np.asarray(model.predict(_inputs(X_main, self.cols, j, self.n_arms), terms="y_hat"))
                .reshape(X_main.shape[0], -1)
                .T
                for j in range(self.n_arms)
            ]
        )  # (arm, per, n)
        return f if self.link == "identity" else probit_as_logit(f)

    def predict(self, X_main: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray:
        """Q of draws ``idx`` (None: all) on the rows of ``X_main``: (arm, len(idx), n)."""
        idx = np.arange(self.S) if idx is None else np.asarray(idx)
        if self._last is None or not (
            self._last[0].shape == X_main.shape and np.array_equal(self._last[0], X_main)
        ):
            self._last = (np.array(X_main, copy=True), {})
        cache = self._last[1]
        out = np.empty((self.n_arms, len(idx), X_main.shape[0]))
        blocks = idx // self.per
        for b in np.unique(blocks):
            if b not in cache:
                cache[int(b)] = self._block(int(b), X_main)
            sel = blocks == b
            out[:, sel] = cache[int(b)][:, idx[sel] % self.per]
        return out

    def live(self, sd: StageDesign) -> ForestQ:
        return self

    def mean(self) -> _MeanQ:
        return _MeanQ(self)


class _MeanQ:
    """The posterior mean of a :class:`ForestQ` as a one-draw Q model."""

    def __init__(self, parent: StoredQ) -> None:
        self.parent = parent

    def q_arms(self, sd: StageDesign, idx: np.ndarray, X_main: np.ndarray) -> np.ndarray:
        full = self.parent.q_arms(sd, np.arange(self.parent.q_units.shape[1]), X_main)
        return np.repeat(full.mean(axis=1, keepdims=True), len(idx), axis=1)

    def mean(self) -> _MeanQ:
        return self


def probit_as_logit(f: np.ndarray) -> np.ndarray:
    r"""The logit of :math:`\Phi(f)`, computed stably as :math:`\log\Phi(f) - \log\Phi(-f)`.

    A probit forest's Q on the Bernoulli family's linear-predictor scale, so that the family's
    inverse logit gives back :math:`P(Y = 1 \mid h, a) = \Phi(f)` exactly (finite even where
    :math:`\Phi(f)` rounds to 1).

    Examples
    --------
    >>> from scipy.special import expit, ndtr
    >>> f = np.array([-9.0, 0.0, 0.3, 40.0])
    >>> bool(np.allclose(expit(probit_as_logit(f)), ndtr(f)) and np.isfinite(probit_as_logit(f)).all())
    True
    """
    from scipy.special import log_ndtr

    return log_ndtr(f) - log_ndtr(-f)


def q_units_of(fit: StageDraws) -> np.ndarray | None:
    """The stored Q evaluations ``(arm, draw, unit)`` of a BART stage's units, or None."""
    q = fit.q_model
    return q.q_units if isinstance(q, StoredQ) else None


def forest_text_of(fit: StageDraws) -> ForestText | None:
    """The JSON text of a BART stage's forests (serialised from memory, or as read from a
    file), or None for a linear stage or a file without forests."""
    q = fit.q_model
    if isinstance(q, ForestQ):
        return ForestText.of(q)
    return q.forests if isinstance(q, StoredQ) else None
