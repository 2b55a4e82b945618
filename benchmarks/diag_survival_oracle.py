"""Misspecification bias of the survival value on ``survival_smart``, without MCMC.

The stage-1 working model of ``survival_smart`` is a log-normal AFT of the accumulated
pseudo-outcome :math:`\\log(t_0 + T_2 e^{s_2})` (or the stage-1 death/censoring time), which
the scenario does not generate exactly (a mixture of stage-1 deaths and :math:`t_0 + T_2`,
with :math:`A_1` acting on :math:`T_2` and :math:`D_1`, not on the total time). This script
isolates that: on one large sample it uses the TRUE stage-2 model, fits the stage-1 censored
AFT (lognormal or weibull) by maximum likelihood, and computes the ``augmented`` and ``q``
RMST of each embedded static regime with the library's own per-unit terms
(:func:`bayesdtr.survival_values.augmented_terms`, :func:`bayesdtr.models.survival.rmst`).
The difference from the exact truth is the bias that no number of units or imputations removes.

    python benchmarks/diag_survival_oracle.py --n 200000
    python benchmarks/diag_survival_oracle.py --n 1000 --reps 200   # sampling SD of the MLE plug-in

With ``--reps R`` it instead repeats the whole analysis by maximum likelihood (stage 2 fitted
too, not the truth) on R samples of n units (the seeds of ``bench_survival.py`` first), and
prints, per regime, the bias and the SD over replicates of the plug-in ``augmented`` RMST: the
sampling variability that a calibrated value posterior's SD should match.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import optimize

import bayesdtr as bd
from bayesdtr.models.survival import rmst
from bayesdtr.simulate import _survival as S
from bayesdtr.survival_values import augmented_terms


def logpdf_logsf(family: str, z: np.ndarray, log_sigma: float):
    """log density (of log T) and log survival of the standardized log time z."""
    from scipy.special import log_ndtr

    if family == "lognormal":
        return -0.5 * z**2 - 0.5 * np.log(2 * np.pi) - log_sigma, log_ndtr(-z)
    # weibull: log T = mu + sigma * W, W standard minimum extreme value
    return z - np.exp(z) - log_sigma, -np.exp(z)


def fit_aft(
    family: str, X: np.ndarray, y: np.ndarray, event: np.ndarray
) -> tuple[np.ndarray, float]:
    """Censored AFT MLE of log time y on X."""

    def nll(par):
        b, ls = par[:-1], par[-1]
        z = (y - X @ b) / np.exp(ls)
        lp, ls_ = logpdf_logsf(family, z, ls)
        return -np.sum(np.where(event, lp, ls_))

    b0 = np.linalg.lstsq(X, y, rcond=None)[0]
    res = optimize.minimize(nll, np.r_[b0, np.log(y.std())], method="BFGS")
    return res.x[:-1], float(np.exp(res.x[-1]))


def plug_in(df, family: str, tau: float, stage2: str = "fit") -> dict[str, float]:
    """Plug-in augmented RMST of the four static regimes, every stage fitted by MLE."""
    x1, x2 = df["X1"].to_numpy(float), df["X2"].to_numpy(float)
    a1, a2 = df["A1"].to_numpy(float), df["A2"].to_numpy(float)
    t, ev, r = df["T"].to_numpy(float), df["delta"].to_numpy() == 1, df["R"].to_numpy() == 1
    X2d = np.column_stack([np.ones_like(x1), x1, x2, a1, a2, a2 * x2])
    if stage2 == "fit":
        c2, sig2 = fit_aft(family, X2d[r], np.log(t[r] - S.T0), ev[r])
    else:
        c2, sig2 = np.array([S.B0, S.B_X1, S.B_X2, S.B_A1, S.P0, S.P1]), S.S2
    q2a = X2d @ c2
    X1 = np.column_stack([np.ones_like(x1), x1])
    X = np.column_stack([X1, a1[:, None] * X1])
    out = {}
    for b1, b2 in ((0, 0), (0, 1), (1, 0), (1, 1)):
        s2 = (b2 - a2) * (c2[4] + c2[5] * x2)
        left2 = np.where(r, t - S.T0, 1.0)
        L1 = np.where(r, np.log(S.T0 + left2 * np.exp(s2)), np.log(t))
        coef, sig = fit_aft(family, X, L1, ev)
        g = np.exp((b1 - a1) * (coef[2] + coef[3] * x1))
        aug = augmented_terms(
            family,
            L1 + np.log(g),
            np.where(r, q2a, X @ coef),
            np.where(r, sig2, sig),
            ev,
            tau,
            "rmst",
            alpha=np.where(r, g * S.T0, 0.0),
            beta=np.where(r, g * np.exp(s2), g),
        )
        out[f"({b1},{b2})"] = float(aug.mean())
    return out


def replicates(args) -> None:
    import pandas as pd

    scn = bd.scenario("survival_smart")
    tau = scn.horizon
    rows = []
    for rep in range(args.reps):
        df = scn.sample(args.n, seed=20261202 + rep)
        for stage2 in ("fit", "true"):
            for name, v in plug_in(df, "lognormal", tau, stage2).items():
                rows.append(dict(rep=rep, stage2=stage2, regime=name, value=v))
    res = pd.DataFrame(rows)
    truth = {
        f"({b1},{b2})": scn.true_rmst(bd.Regime.static(A1=b1, A2=b2), tau)
        for b1 in (0, 1)
        for b2 in (0, 1)
    }
    res["bias"] = res["value"] - res["regime"].map(truth)
    print(f"MLE plug-in augmented RMST, tau = {tau:g}, n = {args.n}, {args.reps} replicates")
    print(
        res.groupby(["stage2", "regime"])
        .agg(bias=("bias", "mean"), sd=("value", "std"))
        .to_string(float_format=lambda x: f"{x:.3f}")
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--horizons", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--reps", type=int, default=0)
    args = ap.parse_args()
    if args.reps:
        replicates(args)
        return
    scn = bd.scenario("survival_smart")
    df = scn.sample(args.n, seed=args.seed)
    x1, x2 = df["X1"].to_numpy(float), df["X2"].to_numpy(float)
    a1, a2 = df["A1"].to_numpy(float), df["A2"].to_numpy(float)
    t, ev, r = df["T"].to_numpy(float), df["delta"].to_numpy() == 1, df["R"].to_numpy() == 1
    q2a = S.B0 + S.B_X1 * x1 + S.B_X2 * x2 + S.B_A1 * a1 + a2 * (S.P0 + S.P1 * x2)
    X1 = np.column_stack([np.ones_like(x1), x1])
    print(f"n = {args.n}, censored {1 - ev.mean():.3f}, reached stage 2 {r.mean():.3f}")
    print("family  regime  horizon  truth   augmented (bias)   q (bias)")
    for family in ("lognormal", "weibull"):
        for b1, b2 in ((0, 0), (0, 1), (1, 0), (1, 1)):
            s2 = (b2 - a2) * (S.P0 + S.P1 * x2)
            left2 = np.where(r, t - S.T0, 1.0)
            L1 = np.where(r, np.log(S.T0 + left2 * np.exp(s2)), np.log(t))
            X = np.column_stack([X1, a1[:, None] * X1])
            coef, sig = fit_aft(family, X, L1, ev)
            c = coef[2:]
            s1 = (b1 - a1) * (c[0] + c[1] * x1)
            q1a = X @ coef
            g = np.exp(s1)
            alpha = np.where(r, g * S.T0, 0.0)
            beta = np.where(r, g * np.exp(s2), g)
            mu = np.where(r, q2a, q1a)
            sigma = np.where(r, S.S2, sig)
            ell = L1 + s1
            for tau in args.horizons:
                truth = scn.true_rmst(bd.Regime.static(A1=b1, A2=b2), tau)
                # the true stage-2 model is lognormal; a weibull stage 1 keeps the true stage 2
                aug = augmented_terms(
                    "lognormal", ell, mu, sigma, ev, tau, "rmst", alpha=alpha, beta=beta
                )
                if family == "weibull":
                    # stage-1-censored units' tails from the weibull stage-1 model
                    aug_w = augmented_terms(
                        "weibull",
                        ell,
                        q1a,
                        np.full_like(x1, sig),
                        ev,
                        tau,
                        "rmst",
                        alpha=0.0,
                        beta=g,
                    )
                    aug = np.where(r, aug, aug_w)
                qv = rmst(family, X1 @ coef[:2] + b1 * (X1 @ c), sig, tau)
                print(
                    f"{family:9s} ({b1},{b2})  {tau:5.1f}  {truth:6.3f}  {aug.mean():6.3f} ({aug.mean() - truth:+.3f})"
                    f"   {qv.mean():6.3f} ({qv.mean() - truth:+.3f})"
                )


if __name__ == "__main__":
    main()
