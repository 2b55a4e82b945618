"""The HTML report: sections, embedded images, no external resources, red problems, Chromium."""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

import bayesdtr as bd
from bayesdtr.report import SECTIONS, default_regimes, render_report


@pytest.fixture(scope="module")
def post(bmi_conjugate):
    return bmi_conjugate


@pytest.fixture(scope="module")
def report_path(post, tmp_path_factory):
    return post.report(tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture(scope="module")
def html(report_path):
    return report_path.read_text(encoding="utf-8")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def test_every_section_is_present_in_order(html):
    positions = []
    for key, heading in SECTIONS.items():
        tag = f'<h2 id="{key}">{heading}</h2>'
        assert tag in html, f"missing section {heading!r}"
        positions.append(html.index(tag))
    assert positions == sorted(positions)


def test_images_are_embedded(html):
    images = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', html)
    alts = [a for a, _ in images]
    # contrasts, one decision plot per stage, values and regret
    assert alts == [
        "stage contrast coefficients",
        "decision plot of stage A1 against parentBMI",
        "decision plot of stage A2 against parentBMI",
        "regime values",
        "regret of each regime",
    ]
    assert all(len(data) > 10_000 for _, data in images)
    assert html.count("<img") == len(images)


def test_report_is_self_contained(html):
    assert not re.search(r"""(src|href)=["'](https?:)?//""", html)
    assert "<script" not in html and "<link" not in html and "@import" not in html


def test_report_content(post, html):
    assert "Every stage was drawn in closed form" in html
    assert "MR if " in html and "otherwise CD" in html  # the rule in words and math
    v = post.value("optimal").values
    assert f"<b>{v.mean():.3g}</b>" in html
    # the default comparison: optimal and the four static regimes
    for label in ("always CD", "always MR", "CD then MR", "MR then CD"):
        assert f">{label}</td>" in html
    assert "At stage 1, the rule recommends" in html


def test_default_regimes(post):
    regs = default_regimes(post)
    assert list(regs) == ["optimal", "always CD", "CD then MR", "MR then CD", "always MR"]
    assert regs["CD then MR"].static_arms == {"A1": "CD", "A2": "MR"}


def test_default_regimes_follow_the_refit_engines(post, monkeypatch):
    """After engine="mcmc", static regimes are compared wherever the earlier stages refit without
    NUTS (conjugate or Gibbs); a stage that needs NUTS to refit leaves only the optimal regime."""
    import dataclasses

    import bayesdtr.inference.engines as engines

    mcmc_post = copy.copy(post)
    mcmc_post.settings = dataclasses.replace(post.settings, engine="mcmc")
    assert engines.stage_engines(post.design, mcmc_post.settings, post.priors) == ["mcmc"] * 2
    assert len(default_regimes(mcmc_post)) == 5
    real = engines.refit_engines
    monkeypatch.setattr(
        engines, "refit_engines", lambda *a: [engines.ENGINES["mcmc"]] + real(*a)[1:]
    )
    assert list(default_regimes(mcmc_post)) == ["optimal"]


def test_problems_are_red(post, monkeypatch):
    import bayesdtr.diagnostics as diag

    table = pd.DataFrame(
        [
            {"stage": "A1", "model": "outcome", "engine": "mcmc", "fits": 200, "divergences": 3, "max_r_hat": 1.2,
             "min_ess_bulk": 80.0, "min_ess_tail": 500.0, "compile_s": 1.0, "sample_s": 2.0},
            {"stage": "A2", "model": "outcome", "engine": "mcmc", "fits": 1, "divergences": 0, "max_r_hat": 1.001,
             "min_ess_bulk": 900.0, "min_ess_tail": 800.0, "compile_s": 1.0, "sample_s": 2.0},
        ]
    )
    monkeypatch.setattr(type(post), "diagnostics", lambda self: table)
    monkeypatch.setattr(diag, "diagnostics_message", lambda p: "Sampling diagnostics need attention: stage 'A1' ...")
    text = render_report(post, regimes={"optimal": "optimal"})
    assert '<p class="problem">Sampling diagnostics need attention' in text
    bad = re.findall(r'<td class="bad">([^<]*)</td>', text)
    assert bad == ["3", "1.20", "80.00"]  # divergences, R-hat and bulk ESS of stage A1 only
    assert '<span class="problem">' in text  # repeated in the summary
    assert "Only the optimal regime is listed" in text


def test_report_argument_errors(post, tmp_path):
    with pytest.raises(bd.SpecificationError, match="its folder .* does not exist"):
        post.report(tmp_path / "missing" / "r.html")
    with pytest.raises(bd.SpecificationError, match="is a folder"):
        post.report(tmp_path)
    with pytest.raises(bd.SpecificationError, match="path= must be a file path"):
        bd.write_report(post, 3)
    with pytest.raises(bd.RegimeError, match="regimes= must be None or a non-empty dict"):
        post.report(tmp_path / "r.html", regimes=["optimal"])
    with pytest.raises(bd.SpecificationError, match="title= must be a string"):
        post.report(tmp_path / "r.html", title=3)
    with pytest.raises(bd.SpecificationError, match="post must be a fitted"):
        bd.write_report("post", tmp_path / "r.html")


def test_report_renders_in_chromium(report_path, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium; .ci/run installs it in CI)")
    shot = tmp_path / "report.png"
    cmd = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,4000",
        report_path.resolve().as_uri(),
    ]
    subprocess.run(cmd, capture_output=True, timeout=180, check=False)
    assert shot.exists(), "Chromium wrote no screenshot"
    assert shot.stat().st_size > 50_000
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))
    assert img.shape[:2] == (4000, 1200)
    gray = img[..., :3].mean(axis=2)
    # not blank: dark text and coloured figures over a white page
    assert gray.std() > 0.05
    assert np.mean(gray < 0.5) > 0.005


def test_report_of_a_loaded_posterior(post, tmp_path):
    """`bayesdtr report posterior.nc` writes the report of a saved posterior."""
    post.to_netcdf(str(tmp_path / "posterior.nc"))
    loaded = bd.load(str(tmp_path / "posterior.nc"))
    text = bd.write_report(loaded, tmp_path / "loaded.html", regimes={"optimal": "optimal"}).read_text()
    assert all(f'<h2 id="{key}">' in text for key in SECTIONS)
    v = post.value("optimal").values
    assert f"<b>{v.mean():.3g}</b>" in text
