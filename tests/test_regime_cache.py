"""Posteriors cache regime fits and values under ``Regime.key``: a regime's definition, not id()."""

from __future__ import annotations

import numpy as np

import bayesdtr as bd


def _rule(df):
    return np.where(df["baselineBMI"] > 35, "MR", "CD")


def test_static_regimes_key_by_definition():
    a, b = bd.Regime.static(A1="MR", A2="CD"), bd.Regime.static(A1="MR", A2="CD")
    assert a is not b and a.key == b.key and hash(a.key) == hash(b.key)
    assert a.key != bd.Regime.static(A1="MR", A2="MR").key
    assert a.key != bd.Regime.static(A1="MR", A2="CD", name="other label").key  # the name labels outputs
    assert (bd.Regime.static(A1="MR") | bd.Regime.static(A2="CD")).key != a.key  # another name
    t = dict(stage="A1", column="x", cutoff=0.5, above=1, below=0)
    assert bd.Regime.threshold(**t).key == bd.Regime.threshold(**t).key
    assert bd.Regime.threshold(**t).key != bd.Regime.threshold(**{**t, "cutoff": 0.6}).key
    assert bd.Regime.optimal().key == bd.Regime.dynamic({"A1": "optimal", "A2": "optimal"}).key


def test_dynamic_regimes_key_by_rule_identity():
    assert bd.Regime.dynamic({"A1": _rule}).key == bd.Regime.dynamic({"A1": _rule}).key
    assert bd.Regime.dynamic({"A1": _rule}).key != bd.Regime.dynamic({"A1": lambda df: _rule(df)}).key


def test_equal_static_regimes_share_a_cache_entry(bmi_conjugate):
    post = bmi_conjugate
    first = post.value(bd.Regime.static(A1="MR", A2="CD"))
    fit = post.induction_for(bd.Regime.static(A1="MR", A2="CD"))
    # new, equal objects find the same cache entries (the fit and the value are not recomputed)
    assert post.value(bd.Regime.static(A1="MR", A2="CD")) is first
    assert post.induction_for(bd.Regime.static(A1="MR", A2="CD")) is fit
    # a different regime gets its own
    other = bd.Regime.static(A1="CD", A2="CD")
    assert post.induction_for(other) is not fit
    assert post.value(other) is not first
    assert not np.array_equal(post.value(other).values, first.values)
