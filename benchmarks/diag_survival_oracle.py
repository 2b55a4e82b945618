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
    python benchmarks/diag_survival_oracle.py --n 1000 --wlb 3      # joint vs independent weights

With ``--reps R`` it instead repeats the whole analysis by maximum likelihood (stage 2 fitted
too, not the truth) on R samples of n units (the seeds of ``bench_survival.py`` first), and
prints, per regime and method (``augmented``, stage-1 ``aipw`` with the known 1/2), the bias
and the SD over replicates of the plug-in RMST (all replicates and the first 20 seeds): the
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
    family: str, X: np.ndarray, y: np.ndarray, event: np.ndarray, w: np.ndarray | None = None
) -> tuple[np.ndarray, float]:
    """Censored AFT MLE of log time y on X (``w``: a weighted likelihood)."""
    w = np.ones(len(y)) if w is None else w

    def nll(par):
        b, ls = par[:-1], par[-1]
        z = (y - X @ b) / np.exp(ls)
        lp, ls_ = logpdf_logsf(family, z, ls)
        return -np.sum(w * np.where(event, lp, ls_))

    b0 = np.linalg.lstsq(X, y, rcond=None)[0]
    res = optimize.minimize(nll, np.r_[b0, np.log(y.std())], method="BFGS")
    return res.x[:-1], float(np.exp(res.x[-1]))


def plug_in(
    df, family: str, tau: float, stage2: str = "fit", w_fit=None, w_avg=()
) -> dict[str, dict[str, float]]:
    """Plug-in augmented and stage-1 AIPW RMST of the four static regimes, every stage fitted
    by MLE (weighted by ``w_fit``), averaged over units with each weight vector of ``w_avg``
    (keys ``method`` and ``method/j``) as well as unweighted."""
    x1, x2 = df["X1"].to_numpy(float), df["X2"].to_numpy(float)
    a1, a2 = df["A1"].to_numpy(float), df["A2"].to_numpy(float)
    t, ev, r = df["T"].to_numpy(float), df["delta"].to_numpy() == 1, df["R"].to_numpy() == 1
    X2d = np.column_stack([np.ones_like(x1), x1, x2, a1, a2, a2 * x2])
    if stage2 == "fit":
        c2, sig2 = fit_aft(
            family, X2d[r], np.log(t[r] - S.T0), ev[r], None if w_fit is None else w_fit[r]
        )
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
        coef, sig = fit_aft(family, X, L1, ev, w_fit)
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
        # stage-1 AIPW (known randomization 1/2): the stage-1 model's RMST m plus the followers'
        # own-time residuals, inverse-probability weighted
        own = augmented_terms(
            family,
            L1,
            np.where(r, q2a, X @ coef),
            np.where(r, sig2, sig),
            ev,
            tau,
            "rmst",
            alpha=np.where(r, S.T0, 0.0),
            beta=np.where(r, np.exp(s2), 1.0),
        )
        m = rmst(family, X1 @ coef[:2] + b1 * (X1 @ coef[2:]), sig, tau)
        aipw = m + (a1 == b1) / 0.5 * (own - m)
        res = {"augmented": float(aug.mean()), "aipw": float(aipw.mean())}
        for j, w in enumerate(w_avg):
            res[f"augmented/{j}"] = float(np.mean(w * aug))
            res[f"aipw/{j}"] = float(np.mean(w * aipw))
        out[f"({b1},{b2})"] = res
    return out


def replicates(args) -> None:
    import pandas as pd

    scn = bd.scenario("survival_smart")
    tau = scn.horizon
    rows = []
    for rep in range(args.reps):
        df = scn.sample(args.n, seed=20261202 + rep)
        for stage2 in ("fit", "true"):
            for name, vals in plug_in(df, "lognormal", tau, stage2).items():
                for method, v in vals.items():
                    rows.append(dict(rep=rep, stage2=stage2, method=method, regime=name, value=v))
    res = pd.DataFrame(rows)
    truth = {
        f"({b1},{b2})": scn.true_rmst(bd.Regime.static(A1=b1, A2=b2), tau)
        for b1 in (0, 1)
        for b2 in (0, 1)
    }
    res["bias"] = res["value"] - res["regime"].map(truth)
    print(f"MLE plug-in RMST, tau = {tau:g}, n = {args.n}, {args.reps} replicates")
    first = res[res["rep"] < 20]
    print(
        res.groupby(["stage2", "method", "regime"])
        .agg(bias=("bias", "mean"), sd=("value", "std"))
        .join(first.groupby(["stage2", "method", "regime"]).agg(sd_first20=("value", "std")))
        .to_string(float_format=lambda x: f"{x:.3f}")
    )
    if args.csv:
        res.to_csv(args.csv, index=False)


def weighted_bootstrap(args) -> None:
    """SD of the weighted-likelihood-bootstrap value on single data sets, three ways.

    Per draw, Dirichlet weights w (times n) and an independent w': ``joint`` fits every stage
    with weights w and averages the units' terms with the same w (the weighted likelihood
    bootstrap of the plug-in, Newton and Raftery 1994: it keeps the correlation between the
    fitted models and the units' own terms); ``independent`` fits with w but averages with
    w' (what a value posterior does: its model draws and its Bayesian-bootstrap weights are
    independent); ``units only`` fits unweighted and averages with w.
    """
    import pandas as pd

    scn = bd.scenario("survival_smart")
    tau = scn.horizon
    rows = []
    for rep in range(args.wlb):
        df = scn.sample(args.n, seed=20261202 + rep)
        rng = np.random.default_rng(rep)
        for _ in range(args.wlb_draws):
            w = rng.exponential(size=args.n)
            w *= args.n / w.sum()
            w2 = rng.exponential(size=args.n)
            w2 *= args.n / w2.sum()
            for name, vals in plug_in(df, "lognormal", tau, "fit", w, (w, w2)).items():
                for method in ("augmented", "aipw"):
                    rows.append(
                        dict(
                            rep=rep,
                            regime=name,
                            method=method,
                            way="joint",
                            value=vals[f"{method}/0"],
                        )
                    )
                    rows.append(
                        dict(
                            rep=rep,
                            regime=name,
                            method=method,
                            way="independent",
                            value=vals[f"{method}/1"],
                        )
                    )
            for name, vals in plug_in(df, "lognormal", tau, "fit", None, (w,)).items():
                for method in ("augmented", "aipw"):
                    rows.append(
                        dict(
                            rep=rep,
                            regime=name,
                            method=method,
                            way="units only",
                            value=vals[f"{method}/0"],
                        )
                    )
    res = pd.DataFrame(rows)
    print(
        f"weighted likelihood bootstrap SD, n = {args.n}, {args.wlb} data sets x {args.wlb_draws} draws"
    )
    sd = (
        res.groupby(["method", "regime", "way", "rep"])["value"]
        .std()
        .groupby(["method", "regime", "way"])
        .mean()
    )
    print(sd.unstack("way").to_string(float_format=lambda x: f"{x:.3f}"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--horizons", type=float, nargs="+", default=[5.0, 10.0])
    ap.add_argument("--reps", type=int, default=0)
    ap.add_argument("--csv", type=str, default="")
    ap.add_argument("--wlb", type=int, default=0, help="data sets for the weighted bootstrap")
    ap.add_argument("--wlb-draws", type=int, default=200)
    args = ap.parse_args()
    if args.wlb:
        weighted_bootstrap(args)
        return
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
