"""Command line (click).

``bayesdtr demo`` fits the bmiData analysis end to end; ``bayesdtr fit DATA.csv --spec SPEC.toml
--out DIR`` fits a model written as a TOML spec (:mod:`bayesdtr.spec_file`) and writes
``posterior.nc``, ``summary.csv`` and ``report.html``; ``bayesdtr report posterior.nc`` writes the
HTML report of a saved posterior; ``bayesdtr compare posterior.nc --regimes REGIMES.toml`` compares
regimes; ``bayesdtr simulate SCENARIO`` runs a simulation study and writes its tables and plot.
Errors print one line, ``bayesdtr: error: ...``, and exit with status 2."""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import click
import numpy as np
import pandas as pd

from bayesdtr.constants import HDI_PROB

__all__ = ["cli", "main", "bmi_model"]


def bmi_model():
    """The DynTxRegime ``?qLearn`` specification of the bmiData analysis, as a DTRModel.

    Outcome: percent BMI reduction at month 12, ``-100 (month12BMI - baselineBMI) / baselineBMI``.
    Both stages were randomized 1:1, so their propensities are known.
    """
    import bayesdtr as bd

    df = bd.load_data("bmi")
    df["y"] = -100 * (df["month12BMI"] - df["baselineBMI"]) / df["baselineBMI"]
    half = bd.KnownPropensity({"CD": 0.5, "MR": 0.5})
    return bd.DTRModel(
        df,
        [
            bd.Stage("A1", main="race + parentBMI + baselineBMI", contrast="1 + race + parentBMI + baselineBMI", propensity=half),
            bd.Stage("A2", main="race + parentBMI + month4BMI", contrast="1 + race + parentBMI + month4BMI", propensity=half),
        ],
        outcome="y",
    )


def _hdi(x: np.ndarray, prob: float = HDI_PROB) -> tuple[float, float]:
    import arviz as az

    lo, hi = np.asarray(az.hdi(np.asarray(x).ravel(), prob=prob)).ravel()[:2]
    return float(lo), float(hi)


def demo(engine: str = "auto", seed: int = 1, report: str | None = "bmi_demo_report.html") -> int:
    import bayesdtr as bd

    t0 = time.perf_counter()
    model = bmi_model()
    print(model)
    print()
    post = model.fit(random_seed=seed, engine=engine, progressbar=False)
    print(post)
    print("\n" + str(post.rule()))
    v = post.value("optimal").values
    lo, hi = _hdi(v)
    print(
        f"\nValue of the learned rule (mean % BMI reduction; valued on units that did not choose it): "
        f"{v.mean():.2f} [{HDI_PROB:.0%} HDI {lo:.2f}, {hi:.2f}]"
    )
    v0 = post.value("optimal", crossfit=0).values
    lo0, hi0 = _hdi(v0)
    print(f"  (plug-in posterior on all the data, optimistic: {v0.mean():.2f} [{lo0:.2f}, {hi0:.2f}])")
    regimes = {
        "optimal": "optimal",
        "always CD": bd.Regime.static(A1="CD", A2="CD"),
        "always MR": bd.Regime.static(A1="MR", A2="MR"),
        "CD then MR": bd.Regime.static(A1="CD", A2="MR"),
        "MR then CD": bd.Regime.static(A1="MR", A2="CD"),
    }
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print("\nRegime comparison (posterior of the value):")
        print(post.compare(regimes).to_string())
        for k in (1, 2):
            po = post.prob_optimal(k)
            print(f"\nStage {k}: P(arm optimal) averaged over units: " + ", ".join(f"{a}={p:.3f}" for a, p in po.mean().items()))
            print(f"  units with P(MR optimal) > 0.95: {(po['MR'] > 0.95).sum()}, < 0.05: {(po['MR'] < 0.05).sum()} of {len(po)}")
        print("\nStage contrasts (MR vs CD):")
        summ = post.summary()
        print(summ[summ.index.str.contains("psi")][["mean", "sd", f"hdi{int(HDI_PROB * 100)}_lb", f"hdi{int(HDI_PROB * 100)}_ub", "ess_bulk", "r_hat"]].to_string())
    if report:
        path = bd.write_report(post, report, regimes=regimes)
        print(f"\nReport: {path}")
    print(f"\nDone in {time.perf_counter() - t0:.1f} s.")
    return 0


#: ``--methods`` names of ``bayesdtr simulate``: bayesdtr fit settings, or a baseline name.
CLI_METHODS: dict[str, dict] = {
    "bayes": {},
    "bayes_augmented": {"propagation": "augmented"},
    "bayes_predictive": {"propagation": "predictive"},
    "bayes_robust": {"robust": True, "propagation": "augmented"},
    "bayes_aipw": {"value": {"method": "aipw"}},
}


@click.group(
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Bayesian dynamic treatment regimes.",
)
@click.pass_context
def cli(ctx: click.Context) -> int | None:
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        return 2
    return None


@cli.command("demo", help="fit the bmiData two-stage analysis and print the results")
@click.option("--engine", type=click.Choice(["auto", "conjugate", "gibbs", "mcmc"]), default="auto", show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option(
    "--report", "report", type=click.Path(dir_okay=False), default="bmi_demo_report.html", show_default=True,
    help="HTML report to write ('' for none)",
)
def demo_command(engine: str, seed: int, report: str) -> int:
    return demo(engine=engine, seed=seed, report=report or None)


def _csv_list(value: str, name: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise click.BadParameter(f"give a comma-separated list; got {value!r}", param_hint=name)
    return items


@cli.command("simulate", help="run a simulation study of SCENARIO and write table.csv, summary.csv and coverage.png to --out")
@click.argument("scenario")
@click.option("--n", "n", type=int, required=True, help="units per simulated data set")
@click.option("--reps", type=int, required=True, help="replicates")
@click.option("--seed", type=int, required=True, help="seed of the study")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="output directory")
@click.option(
    "--methods", default="bayes,qlearning", show_default=True,
    help="comma-separated: " + ", ".join(CLI_METHODS) + ", or a registered baseline (qlearning)",
)
@click.option("--estimands", default=None, help="comma-separated estimands (default: all)")
@click.option("--draws", type=int, default=None, help="posterior draws per chain of the bayes methods")
@click.option("--chains", type=int, default=None, help="chains of the bayes methods")
@click.option("--store", type=click.Path(file_okay=False), default=None, help="checkpoint directory (resumes)")
@click.option("--serial", is_flag=True, help="run in this process instead of a local dask cluster")
@click.option("--scheduler", default=None, help="dask scheduler address, e.g. tcp://host:8786")
@click.option("--level", type=float, default=0.95, show_default=True, help="nominal interval coverage")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def simulate_command(
    scenario: str, n: int, reps: int, seed: int, out: str, methods: str, estimands: str | None,
    draws: int | None, chains: int | None, store: str | None, serial: bool, scheduler: str | None,
    level: float, no_progress: bool,
) -> int:
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import bayesdtr as bd
    from bayesdtr.baselines.registry import BASELINES

    specs: dict[str, object] = {}
    for name in _csv_list(methods, "--methods"):
        if name in CLI_METHODS:
            spec = dict(CLI_METHODS[name])
            spec |= {k: v for k, v in (("draws", draws), ("chains", chains)) if v is not None}
            specs[name] = spec
        elif name in BASELINES:
            specs[name] = name
        else:
            raise bd.SpecificationError(
                f"--methods: unknown method {name!r}; choose from {list(CLI_METHODS) + sorted(BASELINES)}."
            )
    if serial and scheduler:
        raise bd.SpecificationError("--serial and --scheduler exclude each other; pass one of them.")
    res = bd.simulation_study(
        scenario, n=n, reps=reps, seed=seed, methods=specs, level=level,
        estimands=None if estimands is None else _csv_list(estimands, "--estimands"),
        client="serial" if serial else scheduler, store=store, progressbar=not no_progress,
    )
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    res.table.to_csv(outdir / "table.csv", index=False)
    res.summary.to_csv(outdir / "summary.csv", index=False)
    ax = res.plot(kind="coverage")
    ax.figure.tight_layout()
    ax.figure.savefig(outdir / "coverage.png", dpi=120)
    plt.close(ax.figure)
    click.echo(f"{res}; wrote {outdir / 'table.csv'}, {outdir / 'summary.csv'}, {outdir / 'coverage.png'}")
    return 0


def _note(message: str, no_progress: bool) -> None:
    from bayesdtr.inference.progress import Progress

    Progress.note(message, enabled=not no_progress)


def _in_file(err: Exception, source: str) -> Exception:
    """The same bayesdtr error, its message prefixed by the file it came from."""
    text = str(err)
    return err if text.startswith(source) else type(err)(f"{source}: {text}")


def _echo_warnings(caught: list[warnings.WarningMessage]) -> None:
    """bayesdtr's own warnings as one line each; any other warning as Python shows it."""
    from bayesdtr.exceptions import BayesDTRWarning

    for w in caught:
        if issubclass(w.category, BayesDTRWarning):
            click.echo(f"bayesdtr: warning: {w.message}".replace("\n", " "), err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _load_posterior(path: str, spec: str | None, no_progress: bool):
    """``bd.load(path)``; with a spec, ``bd.load(path, stages=...)`` from the spec's stages."""
    import bayesdtr as bd
    from bayesdtr.exceptions import BayesDTRError
    from bayesdtr.spec_file import load_spec

    _note(f"loading {path}…", no_progress)
    post = bd.load(path)
    if spec is not None:
        try:
            stages = load_spec(spec, data=post.design.data)[0]
            post = bd.load(path, stages=stages)
        except BayesDTRError as err:
            raise _in_file(err, spec) from None
    post.settings.progressbar = not no_progress  # regime refits of value/compare
    return post


@cli.command("fit", help="fit the model of SPEC.toml to DATA.csv; write posterior.nc, summary.csv and report.html to --out")
@click.argument("data", type=click.Path(exists=True, dir_okay=False))
@click.option("--spec", type=click.Path(exists=True, dir_okay=False), required=True, help="model specification (TOML)")
@click.option("--out", type=click.Path(file_okay=False), required=True, help="output directory (created)")
@click.option("--no-progress", is_flag=True, help="no progress output")
def fit_command(data: str, spec: str, out: str, no_progress: bool) -> int:
    import bayesdtr as bd
    from bayesdtr.exceptions import BayesDTRError
    from bayesdtr.report import write_report
    from bayesdtr.spec_file import load_spec

    t0 = time.perf_counter()
    _note(f"reading {data}…", no_progress)
    try:
        df = pd.read_csv(data)
    except (ValueError, OSError, UnicodeDecodeError) as err:
        raise bd.DataError(f"{data}: cannot be read as CSV ({type(err).__name__}: {err}); give a comma-separated file with a header row.") from None
    try:
        stages, model_kw, fit_kw = load_spec(spec, data=df)
        model = bd.DTRModel(df, stages, **model_kw)
    except BayesDTRError as err:
        raise _in_file(err, spec) from None
    if not no_progress:
        click.echo("\n".join(ln for ln in str(model).splitlines() if not ln.startswith("Next:")), err=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", bd.BayesDTRWarning)
        try:
            post = model.fit(**fit_kw, progressbar=not no_progress)
        except BayesDTRError as err:
            raise _in_file(err, spec) from None
    _echo_warnings(caught)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    _note(f"writing {outdir / 'posterior.nc'} and {outdir / 'summary.csv'}…", no_progress)
    post.to_netcdf(outdir / "posterior.nc")
    post.summary().to_csv(outdir / "summary.csv")
    _note(f"building the report {outdir / 'report.html'}…", no_progress)
    write_report(post, outdir / "report.html")
    click.echo(
        f"wrote {outdir / 'posterior.nc'}, {outdir / 'summary.csv'}, {outdir / 'report.html'} "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return 0


@cli.command("report", help="write the HTML report of a saved posterior (bayesdtr fit's posterior.nc)")
@click.argument("posterior", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="HTML file [default: report.html next to POSTERIOR]")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False), default=None, help="the fit's spec (TOML), to attach its stages")
@click.option("--no-progress", is_flag=True, help="no progress output")
def report_command(posterior: str, out: str | None, spec: str | None, no_progress: bool) -> int:
    from bayesdtr.report import write_report

    post = _load_posterior(posterior, spec, no_progress)
    target = Path(out) if out is not None else Path(posterior).with_name("report.html")
    _note(f"building the report {target}…", no_progress)
    write_report(post, target)
    click.echo(f"wrote {target}")
    return 0


@cli.command("compare", help="compare the regimes of REGIMES.toml on a saved posterior; print (and with --out write) the table")
@click.argument("posterior", type=click.Path(exists=True, dir_okay=False))
@click.option("--regimes", type=click.Path(exists=True, dir_okay=False), required=True,
              help='TOML: [regimes.NAME] tables of treatment = arm, or NAME = "optimal" under [regimes]')
@click.option("--method", type=click.Choice(["q", "ipw", "aipw"]), default="q", show_default=True, help="value estimator")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="also write the table as CSV")
@click.option("--spec", type=click.Path(exists=True, dir_okay=False), default=None, help="the fit's spec (TOML), to attach its stages")
@click.option("--no-progress", is_flag=True, help="no progress output")
def compare_command(posterior: str, regimes: str, method: str, out: str | None, spec: str | None, no_progress: bool) -> int:
    from bayesdtr.spec_file import regimes_from_toml

    post = _load_posterior(posterior, spec, no_progress)
    stages = post.design.stages
    table = regimes_from_toml(regimes, [s.stage.treatment for s in stages], {s.stage.treatment: list(s.arms) for s in stages})
    _note(f"valuing {len(table)} regime(s) ({method})…", no_progress)
    tab = post.compare(table, method=method)
    with pd.option_context("display.width", 160, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        click.echo(tab.to_string())
    if out is not None:
        tab.to_csv(out)
        click.echo(f"wrote {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; errors print one line on stderr and return status 2."""
    from bayesdtr.exceptions import BayesDTRError

    try:
        rv = cli.main(args=argv, prog_name="bayesdtr", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("bayesdtr: aborted", err=True)
        return 1
    except click.ClickException as err:
        click.echo(f"bayesdtr: error: {err.format_message()}", err=True)
        return 2
    except BayesDTRError as err:
        click.echo(f"bayesdtr: error: {err}".replace("\n", " "), err=True)
        return 2
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
