"""Shared fixtures and options of the test suite.

- Tests marked ``integration`` run tiny real MCMC fits (seconds each).
- Matplotlib uses the Agg backend.
"""

from __future__ import annotations

import os

import matplotlib
import pytest

matplotlib.use("Agg")
os.environ.setdefault("PYTENSOR_FLAGS", "")


@pytest.fixture(scope="session")
def bmi_model():
    """The DynTxRegime ?qLearn specification on bmiData (no propensity models)."""
    import bayesdtr as bd

    df = bd.load_data("bmi")
    df["y"] = -100 * (df["month12BMI"] - df["baselineBMI"]) / df["baselineBMI"]
    return bd.DTRModel(
        df,
        [
            bd.Stage("A1", main="race + parentBMI + baselineBMI", contrast="1 + race + parentBMI + baselineBMI"),
            bd.Stage("A2", main="race + parentBMI + month4BMI", contrast="1 + race + parentBMI + month4BMI"),
        ],
        outcome="y",
    )


@pytest.fixture(scope="session")
def bmi_conjugate(bmi_model):
    return bmi_model.fit(random_seed=11, progressbar=False)
