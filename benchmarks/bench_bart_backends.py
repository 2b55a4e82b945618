"""BART backends on the same stage fit: stochtree, bartz (JAX) and pymc-bart, in the same run.

One Gaussian stage fit with the arm as a covariate: 5 uniform covariates, a binary arm, 50 trees,
y = f(X, A) + N(0, 1) with a nonlinear main effect and a band-shaped contrast. For each backend
and n: wall seconds of the fit (bartz: its JIT compile is timed separately by a first tiny fit),
the effective sample size of the posterior of sigma and of the mean fitted function (arviz ESS,
one chain), seconds per effective draw (fit seconds / min ESS), and the agreement of the
posterior-mean fitted values of f on the n units: RMS difference to stochtree's and RMSE to
the truth (both in units of the noise SD, 1).

Backends run one chain each (the stage engine runs chains one after the other); stochtree
starts from 10 grow-from-root (XBART) sweeps, then ``burn`` MCMC sweeps are discarded.

Usage::

    python benchmarks/bench_bart_backends.py                    # n = 1,000 and 10,000
    python benchmarks/bench_bart_backends.py --n 1000 --draws 300
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings

import numpy as np
from _util import RESULTS


def truth(X: np.ndarray, a: np.ndarray) -> np.ndarray:
    main = np.sin(np.pi * X[:, 0]) + X[:, 1] ** 2
    band = (np.abs(X[:, 2]) < 0.5).astype(float)
    return main + a * (2.0 * band - 1.0)


def simulate(n: int, rng: np.random.Generator):
    X = rng.uniform(-1, 1, size=(n, 5))
    a = rng.integers(0, 2, size=n).astype(float)
    y = truth(X, a) + rng.standard_normal(n)
    return np.column_stack([X, a]), y


def ess(x: np.ndarray) -> float:
    import arviz as az

    return float(az.ess(np.asarray(x, dtype=float)[None, :]))


def fit_stochtree(Z, y, draws, burn, seed):
    from stochtree import BARTModel

    t0 = time.perf_counter()
    m = BARTModel()
    m.sample(
        X_train=Z,
        y_train=y,
        num_gfr=10,
        num_burnin=burn,
        num_mcmc=draws,
        general_params={"random_seed": seed, "num_threads": 1},
        mean_forest_params={"num_trees": 50},
    )
    secs = time.perf_counter() - t0
    f_train = m.predict(Z, terms="y_hat").T  # (draws, n)
    sigma = np.sqrt(m.extract_parameter("sigma2"))
    return secs, f_train, sigma


def fit_bartz(Z, y, draws, burn, seed):
    from bartz import Bart

    Bart(
        Z[:50].T,
        y[:50],
        num_trees=50,
        n_save=2,
        n_burn=1,
        num_chains=1,
        printevery=None,
        pbar=False,
        seed=0,
    )
    t0 = time.perf_counter()
    b = Bart(
        Z.T,
        y,
        num_trees=50,
        n_save=draws,
        n_burn=burn,
        num_chains=1,
        printevery=None,
        pbar=False,
        seed=seed,
    )
    f_train = np.asarray(b.predict(Z.T, kind="mean_samples"))  # (draws, n)
    secs = time.perf_counter() - t0
    sigma = np.asarray(b.get_error_sdev()).reshape(-1)[-draws:]
    return secs, f_train, sigma


def fit_pymc_bart(Z, y, draws, burn, seed):
    import pymc as pm
    import pymc_bart as pmb

    t0 = time.perf_counter()
    with pm.Model():
        mu = pmb.BART("mu", Z, y, m=50)
        sigma = pm.HalfNormal("sigma", float(np.std(y)))
        pm.Normal("y", mu, sigma, observed=y, shape=mu.shape)
        idata = pm.sample(
            draws=draws,
            tune=burn,
            chains=1,
            cores=1,
            random_seed=seed,
            progressbar=False,
            compute_convergence_checks=False,
        )
    secs = time.perf_counter() - t0
    f_train = np.asarray(idata.posterior["mu"]).reshape(draws, -1)
    sigma = np.asarray(idata.posterior["sigma"]).reshape(-1)
    return secs, f_train, sigma


BACKENDS = {"stochtree": fit_stochtree, "bartz": fit_bartz, "pymc-bart": fit_pymc_bart}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--draws", type=int, default=500)
    ap.add_argument("--burn", type=int, default=200)
    ap.add_argument("--backends", nargs="+", default=list(BACKENDS))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rows = []
    for n in args.n:
        rng = np.random.default_rng(args.seed)
        Z, y = simulate(n, rng)
        f_true = truth(Z[:, :5], Z[:, 5])
        ref = None
        for name in args.backends:
            draws, burn = args.draws, args.burn
            if name == "pymc-bart" and n > 2000:
                draws, burn = 200, 100  # particle Gibbs: minutes per 100 draws at n = 10,000
            secs, f_train, sigma = BACKENDS[name](Z, y, draws, burn, args.seed)
            mean = f_train.mean(axis=0)
            fbar = f_train.mean(axis=1)
            if ref is None:
                ref = mean
            e = min(ess(sigma), ess(fbar))
            row = {
                "backend": name,
                "n": n,
                "draws": draws,
                "burn": burn,
                "seconds": round(secs, 2),
                "ess_sigma": round(ess(sigma), 1),
                "ess_mean_f": round(ess(fbar), 1),
                "sec_per_eff_draw": round(secs / max(e, 1.0), 4),
                "rms_diff_vs_first": round(float(np.sqrt(np.mean((mean - ref) ** 2))), 3),
                "rmse_truth": round(float(np.sqrt(np.mean((mean - f_true) ** 2))), 3),
                "sigma_mean": round(float(sigma.mean()), 3),
            }
            rows.append(row)
            print(row, flush=True)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / "bart_backends.csv"
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cols = list(rows[0])
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    (RESULTS / "bart_backends.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
