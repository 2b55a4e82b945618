"""Calibration study: frequentist coverage of bayesdtr's Bayesian answers over seeded replicates.

Not a test: a study script. Replicate r uses data seed ``seed + r`` and fit seed ``seed + r``.
Blocks (each optional with ``--only``):

(a) ``two_stage_cont``, correct default stages (logistic propensity models fitted by NUTS),
    conjugate outcome stages: coverage of the 94% HDI (``az.hdi``) of the true value for the
    optimal and the 4 static regimes, methods q, ipw, aipw; mean posterior SD vs SD of the
    posterior means across replicates.
(b) ``multisite_smart``, correctly specified fixed-effects (``C(site)``) conjugate stages,
    known 1:1 propensities: the same table for q and aipw.
(c) double robustness: ``two_stage_cont`` with a wrong outcome (main) model, correct contrasts
    and propensities: bias and coverage of q vs aipw (and ipw).
(d) non-regularity, ``chakraborty01_1..9`` (the 0/1 adaptation) (n = ``--n-chak``, default 300), default stages:
    fraction of replicates with mean-over-units P(A1 = 1 optimal) > 0.975 or < 0.025, fraction
    in which the top static regime's P(best) (``compare`` over the 4 static regimes) > 0.95,
    and 94% HDI coverage of the true stage-1 blip (psi10, psi11).
(e) robust contrasts: (c)'s wrong main model, ``fit(robust=True, propagation="augmented")``
    vs ``fit(robust=False, propagation="augmented")`` (and the default propagation="mean"):
    coverage of psi = (1, 1) at both stages by 95% equal-tailed intervals.
(f) multiple-imputation Monte Carlo error on the bmi data: ``engine="mcmc"`` with
    imputations in (100, 200, 500) against the conjugate engine with 100,000 draws:
    max |posterior mean difference| / conjugate SD per stage, min bulk ESS, time.

Usage::

    python benchmarks/bench_calibration.py                  # reps = 20 (quick)
    python benchmarks/bench_calibration.py --reps 200       # the full study
    python benchmarks/bench_calibration.py --only a,d --reps 50

Writes ``benchmarks/results/calibration.json`` (or ``--out``). Monte Carlo SE of a coverage
c over R replicates is sqrt(c (1 - c) / R): about 0.05 at R = 20 for c = 0.94, 0.017 at R = 200.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _util import RESULTS, environment, table, write_json  # noqa: E402

HDI = 0.94


def _hdi(x: np.ndarray, prob: float = HDI) -> tuple[float, float]:
    import arviz as az

    lo, hi = np.asarray(az.hdi(np.asarray(x, dtype=float).ravel(), prob=prob)).ravel()[:2]
    return float(lo), float(hi)


def _fit_kw(cfg: dict[str, Any], seed: int) -> dict[str, Any]:
    return dict(
        draws=cfg["draws"],
        chains=cfg["chains"],
        tune=cfg["tune"],
        random_seed=seed,
        progressbar=False,
        warn=False,
    )


def static_regimes() -> dict[str, Any]:
    import bayesdtr as bd

    return {
        f"static({a1},{a2})": bd.Regime.static(A1=a1, A2=a2) for a1 in (0, 1) for a2 in (0, 1)
    }


def static_regimes_arms(arms: dict[str, list]) -> dict[str, Any]:
    import bayesdtr as bd

    a1s, a2s = arms["A1"], arms["A2"]
    return {
        f"static({a1},{a2})": bd.Regime.static(A1=a1, A2=a2) for a1 in a1s for a2 in a2s
    }


def _summ_values(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Aggregate per-(method, regime) replicate records into coverage rows."""
    keys: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        keys.setdefault((r["method"], r["regime"]), []).append(r)
    rows = []
    for (method, regime), rs in keys.items():
        means = np.array([r["mean"] for r in rs])
        sds = np.array([r["sd"] for r in rs])
        truth = rs[0]["truth"]
        cov = np.mean([r["covered"] for r in rs])
        rows.append(
            {
                "method": method,
                "regime": regime,
                "reps": len(rs),
                "truth": truth,
                "bias": float(means.mean() - truth),
                "rmse": float(np.sqrt(np.mean((means - truth) ** 2))),
                "mean_post_sd": float(sds.mean()),
                "sd_post_means": float(means.std(ddof=1)) if len(rs) > 1 else np.nan,
                "sd_ratio": float(sds.mean() / means.std(ddof=1)) if len(rs) > 1 else np.nan,
                "hdi_width": float(np.mean([r["hi"] - r["lo"] for r in rs])),
                "coverage": float(cov),
                "mcse": float(np.sqrt(max(cov * (1 - cov), 1e-12) / len(rs))),
            }
        )
    return rows


VALUE_COLS = [
    ("method", "method", ""),
    ("regime", "regime", ""),
    ("reps", "R", "d"),
    ("truth", "true V", ".3f"),
    ("bias", "bias", "+.3f"),
    ("rmse", "rmse", ".3f"),
    ("mean_post_sd", "mean post SD", ".3f"),
    ("sd_post_means", "SD post means", ".3f"),
    ("sd_ratio", "ratio", ".2f"),
    ("hdi_width", "HDI width", ".3f"),
    ("coverage", "cov94", ".2f"),
    ("mcse", "MCSE", ".3f"),
]


def _value_records(post, regimes, truths, methods, rep) -> list[dict[str, Any]]:
    out = []
    for method in methods:
        for name, reg in regimes.items():
            v = np.asarray(post.value(reg, method=method)).ravel()
            lo, hi = _hdi(v)
            t = truths[name]
            out.append(
                {
                    "rep": rep,
                    "method": method,
                    "regime": name,
                    "truth": t,
                    "mean": float(v.mean()),
                    "sd": float(v.std(ddof=1)),
                    "lo": lo,
                    "hi": hi,
                    "covered": bool(lo <= t <= hi),
                }
            )
    return out


def two_stage_rule_value(post) -> float:
    """True value of the posterior's estimated optimal regime in ``two_stage_cont``.

    The estimated rule of draw s is A_k = 1{psi_k0^(s) + psi_k1^(s) X_k > 0} (linear contrast
    ``1 + X_k``); its true value is 2 e^{1/2} + sum_k E[(1 + X)1{a + bX > 0}], X ~ N(0, 1), in
    closed form. Averaged over draws. The "optimal" regime's value posteriors (q, ipw, aipw)
    evaluate this estimated regime, so under a wrong model the right target of ipw/aipw is this
    value, not the true optimal value.
    """
    from scipy.stats import norm

    total = 2.0 * np.exp(0.5)
    for k in (1, 2):
        psi = post.coef(k)["psi"].sel(arm=1).stack(s=("chain", "draw"))
        a = psi.sel(contrast_term="Intercept").values
        b = psi.isel(contrast_term=1).values
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -a / b
            up = (1 - norm.cdf(t)) + norm.pdf(t)  # b > 0: X > t
            down = norm.cdf(t) - norm.pdf(t)  # b < 0: X < t
        e = np.where(b > 0, up, np.where(b < 0, down, np.where(a > 0, 1.0, 0.0)))
        total = total + e
    return float(np.mean(total))


def _value_block(label, make_model, sc, methods, cfg, fit_extra=None, rule_value=None) -> dict[str, Any]:
    regimes = {"optimal": "optimal", **static_regimes_arms(sc.arms)}
    truths = {k: float(sc.true_value(r)) for k, r in regimes.items()}
    recs: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for rep in range(cfg["reps"]):
        seed = cfg["seed"] + rep
        df = sc.sample(cfg["n"], seed=seed)
        model = make_model(df)
        post = model.fit(engine="conjugate", **_fit_kw(cfg, seed), **(fit_extra or {}))
        new = _value_records(post, regimes, truths, methods, rep)
        if rule_value is not None:
            vr = rule_value(post)
            for r in new:
                if r["regime"] == "optimal":
                    r["true_value_est_rule"] = vr
                    r["covered_est_rule"] = bool(r["lo"] <= vr <= r["hi"])
        recs += new
        _progress(label, rep, cfg["reps"], t0)
    rows = _summ_values(recs)
    if rule_value is not None:
        for row in rows:
            if row["regime"] == "optimal":
                rs = [r for r in recs if r["regime"] == "optimal" and r["method"] == row["method"]]
                vr = np.array([r["true_value_est_rule"] for r in rs])
                row["true_V_est_rule"] = float(vr.mean())
                row["bias_vs_est_rule"] = float(np.mean([r["mean"] for r in rs] - vr))
                row["coverage_est_rule"] = float(np.mean([r["covered_est_rule"] for r in rs]))
    return {"rows": rows, "records": recs, "seconds": time.perf_counter() - t0}


def _progress(label: str, rep: int, reps: int, t0: float) -> None:
    if rep == 0 or (rep + 1) % 5 == 0 or rep + 1 == reps:
        print(
            f"  [{label}] rep {rep + 1}/{reps}  {time.perf_counter() - t0:.0f} s", flush=True
        )


# --------------------------------------------------------------------------- blocks


def block_a(cfg):
    import bayesdtr as bd

    sc = bd.scenario("two_stage_cont")
    return _value_block(
        "a",
        lambda df: bd.DTRModel(df, sc.stages, outcome="Y"),
        sc,
        ("q", "ipw", "aipw"),
        cfg,
        rule_value=two_stage_rule_value,
    )


def multisite_stages():
    import bayesdtr as bd

    half = bd.KnownPropensity({-1: 0.5, 1: 0.5})
    return [
        bd.Stage("A1", main="X0 + X1 + C(site)", contrast="1 + X1 + C(site)", propensity=half),
        bd.Stage(
            "A2",
            main="X0 + X1 + A1:X1 + X2 + C(site):A1 + C(site)",
            contrast="1 + X2 + C(site)",
            propensity=half,
            applies="R == 0",
        ),
    ]


def block_b(cfg):
    import bayesdtr as bd

    sc = bd.scenario("multisite_smart")
    return _value_block(
        "b",
        lambda df: bd.DTRModel(df, multisite_stages(), outcome=sc.outcome),
        sc,
        ("q", "aipw"),
        cfg,
    )


def wrong_stages():
    import bayesdtr as bd

    return [
        bd.Stage("A1", main="X1", contrast="1 + X1", propensity="X1"),
        bd.Stage("A2", main="X1 + X2 + A1", contrast="1 + X2", propensity="X2"),
    ]


def block_c(cfg):
    import bayesdtr as bd

    sc = bd.scenario("two_stage_cont")
    return _value_block(
        "c",
        lambda df: bd.DTRModel(df, wrong_stages(), outcome="Y"),
        sc,
        ("q", "ipw", "aipw"),
        cfg,
        rule_value=two_stage_rule_value,
    )


def block_d(cfg):
    import bayesdtr as bd

    statics = static_regimes()
    rows, recs = [], []
    t0 = time.perf_counter()
    for idx in cfg["chak"]:
        sc = bd.scenario(f"chakraborty01_{idx}")
        truth = sc.truth
        psi1 = np.asarray(truth["psi"]["A1"], dtype=float)
        true_static = {k: float(sc.true_value(r)) for k, r in statics.items()}
        best_static = max(true_static.values())
        n_best = sum(abs(v - best_static) < 1e-9 for v in true_static.values())
        extreme, confident, confident_wrong, cover = [], [], [], []
        p1s = []
        for rep in range(cfg["reps"]):
            seed = cfg["seed"] + rep
            df = sc.sample(cfg["n_chak"], seed=seed)
            post = bd.DTRModel(df, sc.stages, outcome=sc.outcome).fit(
                engine="conjugate", **_fit_kw(cfg, seed)
            )
            p1 = float(post.prob_optimal(1)[1].mean())
            p1s.append(p1)
            extreme.append(p1 > 0.975 or p1 < 0.025)
            tab = post.compare(statics, method="q")
            top = tab["p_best"].idxmax()
            confident.append(bool(tab["p_best"].max() > 0.95))
            confident_wrong.append(
                bool(tab["p_best"].max() > 0.95 and true_static[top] < best_static - 1e-9)
            )
            psi = post.coef(1)["psi"].sel(arm=1)
            psi = psi.stack(s=("chain", "draw")).transpose("s", "contrast_term").values
            cov = []
            for j in range(psi.shape[1]):
                lo, hi = _hdi(psi[:, j])
                cov.append(bool(lo <= psi1[j] <= hi))
            cover.append(cov)
            recs.append(
                {
                    "scenario": sc.name,
                    "rep": rep,
                    "p_A1_optimal_mean": p1,
                    "top_static": top,
                    "top_static_p_best": float(tab["p_best"].max()),
                    "psi1_mean": psi.mean(axis=0).tolist(),
                    "psi1_covered": cov,
                }
            )
        cover = np.array(cover)
        rows.append(
            {
                "scenario": sc.name,
                "nonregular": bool(truth["nonregular"]),
                "psi1": f"({psi1[0]:+.2f},{psi1[1]:+.2f})",
                "n_best_static": n_best,
                "reps": cfg["reps"],
                "frac_extreme_p1": float(np.mean(extreme)),
                "mean_p1": float(np.mean(p1s)),
                "frac_pbest_gt95": float(np.mean(confident)),
                "frac_pbest_gt95_wrong": float(np.mean(confident_wrong)),
                "cov_psi10": float(cover[:, 0].mean()),
                "cov_psi11": float(cover[:, 1].mean()),
            }
        )
        print(
            f"  [d] {sc.name}: done ({time.perf_counter() - t0:.0f} s)", flush=True
        )
    return {"rows": rows, "records": recs, "seconds": time.perf_counter() - t0}


def block_e(cfg):
    import bayesdtr as bd

    sc = bd.scenario("two_stage_cont")
    variants = {
        "robust+augmented": dict(robust=True, propagation="augmented"),
        "plain+augmented": dict(robust=False, propagation="augmented"),
        "plain+mean": dict(robust=False, propagation="mean"),
    }
    truth = {"A1": np.array([1.0, 1.0]), "A2": np.array([1.0, 1.0])}
    recs = []
    t0 = time.perf_counter()
    for rep in range(cfg["reps"]):
        seed = cfg["seed"] + rep
        df = sc.sample(cfg["n"], seed=seed)
        model = bd.DTRModel(df, wrong_stages(), outcome="Y")
        for vname, kw in variants.items():
            post = model.fit(engine="conjugate", **_fit_kw(cfg, seed), **kw)
            for k, stage in ((1, "A1"), (2, "A2")):
                psi = post.coef(k)["psi"].sel(arm=1)
                psi = psi.stack(s=("chain", "draw")).transpose("s", "contrast_term").values
                for j, term in enumerate(("Intercept", "X")):
                    lo, hi = np.quantile(psi[:, j], [0.025, 0.975])
                    recs.append(
                        {
                            "rep": rep,
                            "variant": vname,
                            "stage": stage,
                            "term": term,
                            "truth": float(truth[stage][j]),
                            "mean": float(psi[:, j].mean()),
                            "sd": float(psi[:, j].std(ddof=1)),
                            "covered": bool(lo <= truth[stage][j] <= hi),
                        }
                    )
        _progress("e", rep, cfg["reps"], t0)
    rows = []
    groups: dict[tuple, list] = {}
    for r in recs:
        groups.setdefault((r["variant"], r["stage"], r["term"]), []).append(r)
    for (v, s, term), rs in groups.items():
        means = np.array([r["mean"] for r in rs])
        cov = float(np.mean([r["covered"] for r in rs]))
        rows.append(
            {
                "variant": v,
                "stage": s,
                "term": term,
                "bias": float(means.mean() - rs[0]["truth"]),
                "mean_post_sd": float(np.mean([r["sd"] for r in rs])),
                "sd_post_means": float(means.std(ddof=1)) if len(rs) > 1 else np.nan,
                "coverage": cov,
                "mcse": float(np.sqrt(max(cov * (1 - cov), 1e-12) / len(rs))),
            }
        )
    return {"rows": rows, "records": recs, "seconds": time.perf_counter() - t0}


def block_f(cfg):
    import arviz as az

    from bayesdtr.cli import bmi_model

    model = bmi_model()
    t0 = time.perf_counter()
    ref = model.fit(
        engine="conjugate",
        draws=25_000,
        chains=4,
        random_seed=cfg["seed"],
        progressbar=False,
        warn=False,
    )
    ref_s = time.perf_counter() - t0

    def flat(post, k):
        c = post.coef(k)
        b = c["beta"].stack(s=("chain", "draw")).transpose("s", ...).values
        p = c["psi"].isel(arm=slice(1, None)).stack(s=("chain", "draw")).transpose("s", ...)
        p = p.values.reshape(p.shape[0], -1)
        return np.concatenate([b, p], axis=1)

    refs = {k: flat(ref, k) for k in (1, 2)}
    rows = [{"engine": "conjugate", "M": None, "seed": cfg["seed"], "draws": 100_000, "seconds": ref_s}]
    for M in cfg["imputations"]:
        for s in range(cfg["f_seeds"]):
            seed = cfg["seed"] + s
            t0 = time.perf_counter()
            post = model.fit(
                engine="mcmc",
                imputations=M,
                draws=1000,
                tune=1000,
                chains=4,
                random_seed=seed,
                progressbar=False,
                warn=False,
            )
            sec = time.perf_counter() - t0
            row: dict[str, Any] = {
                "engine": "mcmc",
                "M": M,
                "seed": seed,
                "draws": 4000,
                "seconds": sec,
                "compile_s": float(sum(f.compile_seconds for f in post.fits)),
                "sample_s": float(sum(f.sample_seconds for f in post.fits)),
            }
            for k in (1, 2):
                x = flat(post, k)
                z = np.abs(x.mean(0) - refs[k].mean(0)) / refs[k].std(0, ddof=1)
                sdr = x.std(0, ddof=1) / refs[k].std(0, ddof=1)
                row[f"max_z_s{k}"] = float(z.max())
                row[f"sd_ratio_min_s{k}"] = float(sdr.min())
                row[f"sd_ratio_max_s{k}"] = float(sdr.max())
                c = post.coef(k)
                ess = np.asarray(az.ess(c["beta"].to_dataset())["beta"]).ravel()
                ps = c["psi"].isel(arm=slice(1, None)).to_dataset()
                ess_p = np.asarray(az.ess(ps)["psi"]).ravel()
                row[f"min_ess_s{k}"] = float(np.nanmin(np.concatenate([ess, ess_p])))
            rows.append(row)
            print(f"  [f] M={M} seed={seed}: {sec:.1f} s", flush=True)
    return {"rows": rows, "seconds": float(sum(r["seconds"] for r in rows))}


# --------------------------------------------------------------------------- report


def report(name: str, res: dict[str, Any]) -> str:
    rows = res["rows"]
    if name in ("a", "b", "c"):
        text = table(rows, VALUE_COLS)
        opt = [r for r in rows if "true_V_est_rule" in r]
        if opt:
            text += (
                "\n\n'optimal' against the true value of the ESTIMATED regime (the rule of each "
                "draw; mean over draws and replicates):\n"
                + table(
                    opt,
                    [
                        ("method", "method", ""),
                        ("truth", "true V(opt)", ".3f"),
                        ("true_V_est_rule", "true V(est. rule)", ".3f"),
                        ("bias_vs_est_rule", "bias vs est. rule", "+.3f"),
                        ("coverage_est_rule", "cov94 of V(est. rule)", ".2f"),
                    ],
                )
            )
        return text
    if name == "d":
        return table(
            rows,
            [
                ("scenario", "scenario", ""),
                ("nonregular", "nonreg", ""),
                ("psi1", "psi1 true", ""),
                ("n_best_static", "#best static", "d"),
                ("reps", "R", "d"),
                ("mean_p1", "mean P(A1=1 opt)", ".3f"),
                ("frac_extreme_p1", "frac P>.975|<.025", ".2f"),
                ("frac_pbest_gt95", "frac P(best)>.95", ".2f"),
                ("frac_pbest_gt95_wrong", "  ... & wrong", ".2f"),
                ("cov_psi10", "cov94 psi10", ".2f"),
                ("cov_psi11", "cov94 psi11", ".2f"),
            ],
        )
    if name == "e":
        return table(
            rows,
            [
                ("variant", "fit", ""),
                ("stage", "stage", ""),
                ("term", "term", ""),
                ("bias", "bias", "+.3f"),
                ("mean_post_sd", "mean post SD", ".3f"),
                ("sd_post_means", "SD post means", ".3f"),
                ("coverage", "cov95 (ET)", ".2f"),
                ("mcse", "MCSE", ".3f"),
            ],
        )
    return table(
        rows,
        [
            ("engine", "engine", ""),
            ("M", "M", ""),
            ("seed", "seed", ""),
            ("draws", "draws", ",d"),
            ("seconds", "s", ".1f"),
            ("compile_s", "compile s", ".1f"),
            ("max_z_s1", "max|dmean|/sd s1", ".3f"),
            ("max_z_s2", "max|dmean|/sd s2", ".3f"),
            ("sd_ratio_min_s1", "sd ratio min s1", ".3f"),
            ("sd_ratio_max_s1", "sd ratio max s1", ".3f"),
            ("min_ess_s1", "min ESS s1", ".0f"),
            ("min_ess_s2", "min ESS s2", ".0f"),
        ],
    )


TITLES = {
    "a": "(a) two_stage_cont, correct stages + NUTS propensity: 94% HDI coverage of true values",
    "b": "(b) multisite_smart, fixed-effects C(site) conjugate spec: 94% HDI coverage",
    "c": "(c) two_stage_cont, WRONG main model (correct contrasts, propensities): q vs ipw vs aipw",
    "d": "(d) Chakraborty scenarios (n_chak), default stages: non-regularity",
    "e": "(e) two_stage_cont, WRONG main model: psi=(1,1) coverage by 95% equal-tailed intervals",
    "f": "(f) bmi: multiple-imputation MC error, mcmc (4 x 1000) vs conjugate (100,000 draws)",
}
BLOCKS = {"a": block_a, "b": block_b, "c": block_c, "d": block_d, "e": block_e, "f": block_f}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--reps", type=int, default=20, help="replicates per block (full study: 200)")
    p.add_argument("--n", type=int, default=2000, help="sample size for blocks a, b, c, e")
    p.add_argument("--n-chak", type=int, default=300, help="sample size for block d")
    p.add_argument("--chak", default="1-9", help="Chakraborty scenarios for (d), e.g. 1 or 1-9")
    p.add_argument("--draws", type=int, default=1000, help="draws per chain")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--tune", type=int, default=500, help="tuning of the NUTS propensity models")
    p.add_argument("--imputations", default="100,200,500", help="M values for (f)")
    p.add_argument("--f-seeds", type=int, default=1, help="seeds per M in (f)")
    p.add_argument("--only", default="a,b,c,d,e,f", help="comma-separated blocks")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--out", type=Path, default=None)
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep the other blocks already in the output file (e.g. to add --only f later)",
    )
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")

    if "-" in args.chak:
        lo, hi = (int(x) for x in args.chak.split("-"))
        chak = list(range(lo, hi + 1))
    else:
        chak = [int(x) for x in args.chak.split(",")]
    cfg = {
        "reps": args.reps,
        "n": args.n,
        "n_chak": args.n_chak,
        "chak": chak,
        "draws": args.draws,
        "chains": args.chains,
        "tune": args.tune,
        "imputations": [int(x) for x in args.imputations.split(",")],
        "f_seeds": args.f_seeds,
        "seed": args.seed,
    }
    only = [b.strip() for b in args.only.split(",") if b.strip()]
    load0 = os.getloadavg()
    print(f"bench_calibration: config={cfg}, blocks={only}, load avg at start {load0}", flush=True)
    out = args.out or RESULTS / "calibration.json"
    payload: dict[str, Any] = {
        "benchmark": "calibration",
        "environment": environment(),
        "config": cfg,
        "loadavg_start": load0,
        "blocks": {},
    }
    if args.merge and out.exists():
        import json

        old = json.loads(out.read_text())
        payload["blocks"] = old.get("blocks", {})
        payload["merged_from"] = {
            k: old.get(k) for k in ("config", "environment", "loadavg_start", "loadavg_end")
        }
    texts = []
    for b in only:
        print(f"\n== block {b} ==", flush=True)
        res = BLOCKS[b](cfg)
        text = f"{TITLES[b]}  [{res['seconds']:.0f} s]\n" + report(b, res)
        print(text, flush=True)
        texts.append(text)
        payload["blocks"][b] = {**res, "table": text}
        payload["loadavg_end"] = os.getloadavg()
        write_json(out, payload)  # after every block, so a long run keeps what it has
    print(f"\nload avg at end {os.getloadavg()}; wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
