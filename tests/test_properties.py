"""Property-based tests (hypothesis): bad input is refused with a bayesdtr error, never mangled.

Valid multi-stage frames (2-3 stages, 2-3 arms, numeric and categorical covariates, some
``applies=``, ``feasible=`` and rewards) are generated and then corrupted at random: NaN, inf,
huge and complex values anywhere, containers, unseen labels, odd dtypes, empty and one-row
frames, unicode and formula-syntax column names, duplicated and MultiIndex columns, shuffled
indexes, and formulas with ``|``, ``C()`` around a continuous covariate or a look-ahead. For
every case:

- building and fitting (closed-form engine, a few draws) either works or raises a
  :class:`~bayesdtr.BayesDTRError`, never another exception type;
- nothing hangs (a per-example deadline);
- no row is dropped or reordered: the ``obs`` labels of the outputs are the input's index
  labels of the units that reach the stage, in the input's order.

The same holds for queries on new data against fitted posteriors. The run is derandomized,
so CI sees the same examples every time; the example counts are below (``EXAMPLES``).
"""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import bayesdtr as bd  # noqa: E402

#: Examples per test: 360 for building and fitting, 200 for queries on new data.
EXAMPLES = {"fit": 360, "query": 200}

SETTINGS = {
    "deadline": timedelta(seconds=10),
    "derandomize": True,
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
    "print_blob": True,
}

ODD_NAMES = ["x.1", "a b", "é", "x+y", "C(x)", "1x", "λ", "na me.2", "`q`", "I", "np"]
BAD_VALUES = [np.nan, np.inf, -np.inf, None, 1e300, 1 + 2j, [1], {"k": 1}, "", "XX", pd.NaT, True]
DTYPES = [
    "string[pyarrow]",
    "category",
    "object",
    "Int64",
    "Float64",
    "bool",
    "timedelta",
    "datetime",
    "complex",
    "str",
]


# --------------------------------------------------------------------------- generation


@st.composite
def valid_case(draw):
    """A valid wide frame and its stages: (df, stages, outcome)."""
    n = draw(st.integers(12, 40))
    k = draw(st.integers(2, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    df = pd.DataFrame({"x0": rng.normal(size=n), "x1": rng.normal(size=n)})
    if draw(st.booleans()):
        df["cat"] = rng.choice(["u", "v", "w"], size=n)
        df.loc[df.index[:3], "cat"] = ["u", "v", "w"]
    stages = []
    for j in range(1, k + 1):
        m = draw(st.sampled_from([2, 2, 3]))
        labels = draw(st.sampled_from([list(range(m)), ["a", "b", "c"][:m]]))
        df[f"A{j}"] = [labels[i % m] for i in rng.permutation(n)]
        df[f"h{j}"] = rng.normal(size=n)  # measured after decision j
        main = draw(st.sampled_from(["1", "x0", "x0 + x1", "x0 + cat" if "cat" in df else "x1"]))
        if j > 1:
            main += f" + h{j - 1}"
        contrast = draw(st.sampled_from(["1", "1 + x0"]))
        kw = {}
        if j > 1 and draw(st.booleans()):
            df[f"R{j}"] = (np.arange(n) % 3 != 0).astype(int)
            kw["applies"] = f"R{j} == 1"
        if draw(st.booleans()):
            kw["propensity"] = bd.KnownPropensity({lab: 1 / m for lab in labels})
        if j < k and draw(st.booleans()):
            df[f"r{j}"] = rng.normal(size=n)
            kw["reward"] = f"r{j}"
        if m == 3 and draw(st.booleans()):
            first = labels[0]
            kw["feasible"] = lambda d, labels=labels, first=first: pd.DataFrame(
                {
                    lab: np.ones(len(d), bool) if lab != first else (d["x0"] > -5).to_numpy()
                    for lab in labels
                },
                index=d.index,
            )
        stages.append(bd.Stage(f"A{j}", main=main, contrast=contrast, **kw))
    df["y"] = df["x0"] + rng.normal(size=n)
    if draw(st.booleans()):  # a non-default index, shuffled
        df.index = rng.permutation(np.arange(1000, 1000 + n))
    return df, stages, "y"


def _set(df: pd.DataFrame, col, row: int, value) -> pd.DataFrame:
    """``df`` with one cell set; the column keeps its dtype where the value fits it."""
    out = df.copy()
    j = out.columns.get_loc(col)
    if not isinstance(j, int):
        return out
    if not (isinstance(value, float) and out[col].dtype.kind == "f"):
        out[col] = out[col].astype(object)
    out.iat[row, j] = value
    return out


def _dtype(df: pd.DataFrame, col, kind: str) -> pd.DataFrame:
    out = df.copy()
    s = out[col]
    if kind == "timedelta":
        out[col] = pd.to_timedelta(np.arange(len(s)), unit="D")
    elif kind == "datetime":
        out[col] = pd.date_range("2020-01-01", periods=len(s))
    elif kind == "complex":
        out[col] = pd.to_numeric(s, errors="coerce").astype(complex) if s.dtype.kind in "iuf" else s
    elif kind == "bool":
        out[col] = s.astype(bool)
    elif kind in ("Int64", "Float64"):
        out[col] = (
            pd.to_numeric(s, errors="coerce").round().astype(kind) if s.dtype.kind in "iuf" else s
        )
    else:
        out[col] = s.astype(kind)
    return out


def _rename(df: pd.DataFrame, stages: list[bd.Stage], col: str, new: str, quote: bool):
    ref = f"`{new}`" if quote else new
    out = df.rename(columns={col: new})
    fixed = []
    for s in stages:
        main = " + ".join(ref if t.strip() == col else t for t in s.main.split("+"))
        contrast = " + ".join(ref if t.strip() == col else t for t in s.contrast.split("+"))
        fixed.append(
            bd.Stage(
                s.treatment,
                main=main,
                contrast=contrast,
                propensity=s.propensity,
                feasible=s.feasible,
                applies=s.applies,
                reward=s.reward,
            )
        )
    return out, fixed


@st.composite
def corrupted_case(draw):
    """A valid case, corrupted in one or two ways (or left valid, one time in six)."""
    df, stages, outcome = draw(valid_case())
    for _ in range(draw(st.integers(0, 2))):
        what = draw(
            st.sampled_from(
                [
                    "value",
                    "value",
                    "value",
                    "dtype",
                    "dtype",
                    "rows",
                    "rename",
                    "dup",
                    "multi",
                    "formula",
                    "index",
                    "constant",
                ]
            )
        )
        cols = list(df.columns)
        if not cols:
            break
        core = [c for c in cols if c in ("x0", "x1", "cat", "y", "A1", "A2", "A3", "h1", "h2")]
        col = draw(st.sampled_from(core if core and draw(st.integers(0, 3)) else cols))
        if what == "value" and len(df):
            df = _set(df, col, draw(st.integers(0, len(df) - 1)), draw(st.sampled_from(BAD_VALUES)))
        elif what == "dtype":
            df = _dtype(df, col, draw(st.sampled_from(DTYPES)))
        elif what == "rows":
            df = df.iloc[: draw(st.sampled_from([0, 1, 2]))]
        elif what == "rename" and isinstance(col, str):
            df, stages = _rename(
                df, stages, col, draw(st.sampled_from(ODD_NAMES)), draw(st.booleans())
            )
        elif what == "dup":
            df = pd.concat([df, df[[col]]], axis=1)
        elif what == "multi":
            df = df.copy()
            df.columns = pd.MultiIndex.from_tuples([(c, "") for c in df.columns])
        elif what == "formula":
            j = draw(st.integers(0, len(stages) - 1))
            extra = draw(
                st.sampled_from(
                    [
                        "x0 | x1",
                        "C(x0)",
                        "np.log(x1)",
                        "y",
                        f"h{len(stages)}",
                        "nope",
                        "x0:cat",
                        "scale(x1)",
                    ]
                )
            )
            s = stages[j]
            stages = list(stages)
            stages[j] = bd.Stage(
                s.treatment,
                main=f"{s.main} + {extra}",
                contrast=s.contrast,
                propensity=s.propensity,
                feasible=s.feasible,
                applies=s.applies,
                reward=s.reward,
            )
        elif what == "index":
            df = df.copy()
            df.index = draw(
                st.sampled_from(
                    [
                        np.zeros(len(df), int),
                        [f"r{i}" for i in range(len(df))],
                        np.arange(len(df))[::-1],
                    ]
                )
            )
        elif what == "constant" and len(df):
            df = df.copy()
            df[col] = df[col].iloc[0]
    return df, stages, outcome


# --------------------------------------------------------------------------- checks


def _check_outputs(post: bd.DTRPosterior, df: pd.DataFrame) -> None:
    """Outputs keep every unit that reaches a stage, labelled by the input index, in order."""
    for k, sd in enumerate(post.design.stages, start=1):
        expected = list(df.index[sd.units])
        assert list(post.prob_optimal(k).index) == expected
        assert np.all(np.diff(sd.units) > 0)
        if k == 1:
            assert list(post.optimal_treatment(1).obs.values) == expected
    assert post.design.n == len(df)
    assert np.isfinite(post.value(crossfit=0).values).all()  # sample splitting: tests/test_calibration.py


def _attempt(df: pd.DataFrame, stages: list[bd.Stage], outcome: str) -> bd.DTRPosterior | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = bd.DTRModel(df, stages, outcome=outcome)
            post = model.fit(
                draws=3, chains=2, engine="conjugate", random_seed=0, progressbar=False, warn=False
            )
        except bd.BayesDTRError:
            return None
        _check_outputs(post, df)
        return post


@settings(max_examples=EXAMPLES["fit"], **SETTINGS)
@given(corrupted_case())
def test_fit_or_refuse(case):
    df, stages, outcome = case
    before = df.copy()
    _attempt(df, stages, outcome)
    pd.testing.assert_frame_equal(df, before)  # the user's frame is never modified


@pytest.fixture(scope="module")
def fitted():
    """Three fitted posteriors over valid frames: (post, df) pairs."""
    out = []
    for seed in (1, 2, 3):
        df, stages, outcome = _fixed_case(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            post = bd.DTRModel(df, stages, outcome=outcome).fit(
                draws=4, chains=2, random_seed=seed, progressbar=False
            )
        out.append((post, df))
    return out


def _fixed_case(seed: int):
    rng = np.random.default_rng(seed)
    n = 30
    df = pd.DataFrame(
        {
            "x0": rng.normal(size=n),
            "cat": np.tile(["u", "v", "w"], n // 3),
            "A1": rng.permutation(np.tile(["a", "b", "c"][: 2 + seed % 2], n)[:n]),
            "h1": rng.normal(size=n),
            "A2": np.repeat([0, 1], n // 2),
        },
        index=rng.permutation(np.arange(500, 500 + n)),
    )
    df["y"] = df.x0 + rng.normal(size=n)
    stages = [
        bd.Stage("A1", main="x0 + cat", contrast="1 + x0"),
        bd.Stage("A2", main="x0 + C(A1) + h1", contrast="1 + h1"),
    ]
    return df, stages, "y"


@settings(max_examples=EXAMPLES["query"], **SETTINGS)
@given(st.integers(0, 2), st.integers(1, 2), st.data())
def test_queries_on_new_data(fitted, which, stage, data):
    post, df = fitted[which]
    new = df.sample(
        n=data.draw(st.integers(1, len(df))), random_state=data.draw(st.integers(0, 99))
    )
    for _ in range(data.draw(st.integers(0, 2))):
        what = data.draw(st.sampled_from(["value", "value", "dtype", "drop", "index", "label"]))
        col = data.draw(st.sampled_from(list(new.columns)))
        if what == "value":
            new = _set(
                new,
                col,
                data.draw(st.integers(0, len(new) - 1)),
                data.draw(st.sampled_from(BAD_VALUES + [7, "5", "d"])),
            )
        elif what == "dtype":
            new = _dtype(new, col, data.draw(st.sampled_from(DTYPES)))
        elif what == "drop":
            new = new.drop(columns=[col])
        elif what == "index":
            new = new.copy()
            new.index = [f"new{i}" for i in range(len(new))]
        elif what == "label":
            new = _set(new, "A1", 0, data.draw(st.sampled_from(["XX", "", "A", 0, 1.5, "a "])))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prob = post.prob_optimal(stage, new)
            q = post.q_values(stage, new)
        except bd.BayesDTRError:
            return
    assert list(prob.index) == list(new.index)
    assert list(q.obs.values) == list(new.index)
    assert np.isfinite(q.values).all()
    np.testing.assert_allclose(prob.sum(axis=1), 1.0)
