"""`studies.seeds`: the Student-t interval, the combination of summaries and arrays over seeds."""

import math

import numpy as np
import pytest

from tfstiffness.studies import seeds

# Two-sided 95% and 90% quantiles of Student's t (statistical tables).
T_TABLE = {(0.95, 1): 12.7062, (0.95, 2): 4.3027, (0.95, 3): 3.1824, (0.95, 4): 2.7764,
           (0.95, 9): 2.2622, (0.95, 29): 2.0452, (0.90, 3): 2.3534, (0.99, 5): 4.0321}


@pytest.mark.parametrize("key", sorted(T_TABLE))
def test_student_t_quantile_matches_the_tables(key):
    assert seeds.student_t_quantile(*key) == pytest.approx(T_TABLE[key], abs=1e-4)


def test_t_interval_is_the_mean_plus_minus_t_standard_errors():
    values = [0.2, 0.35, 0.3]
    got = seeds.t_interval(values)
    half = 4.302653 * np.std(values, ddof=1) / math.sqrt(3)
    assert got["mean"] == pytest.approx(np.mean(values))
    assert (got["low"], got["high"]) == pytest.approx((np.mean(values) - half,
                                                       np.mean(values) + half))
    assert got["n"] == 3 and got["values"] == values
    # An undefined value (NaN) is left out and recorded as None; one value has no spread.
    partial = seeds.t_interval([0.2, float("nan"), 0.4])
    assert partial["n"] == 2 and partial["values"] == [0.2, None, 0.4]
    assert seeds.t_interval([0.3])["low"] is None
    with pytest.raises(ValueError, match="df must be an integer >= 1"):
        seeds.student_t_quantile(0.95, 0)


def test_across_seeds_keeps_what_is_equal_and_summarises_what_differs():
    runs = [{"epoch": 4, "lr": 0.1, "status": "fitted", "within": 0.2, "xi": None,
             "curve": [1.0, 2.0], "flag": True},
            {"epoch": 4, "lr": 0.1, "status": "no_decay", "within": 0.4, "xi": 2.5,
             "curve": [1.0, 3.0], "flag": True}]
    got = seeds.across_seeds(runs)
    assert (got["epoch"], got["lr"], got["flag"]) == (4, 0.1, True)
    assert got["status"] == {"values": ["fitted", "no_decay"]}
    assert got["within"]["mean"] == pytest.approx(0.3) and got["within"]["n"] == 2
    assert got["xi"]["n"] == 1 and got["xi"]["mean"] == 2.5 and got["xi"]["low"] is None
    assert got["curve"][0] == 1.0 and got["curve"][1]["mean"] == pytest.approx(2.5)


def test_mean_with_interval_averages_floats_and_replaces_bootstrap_ends():
    stacked = {"seeds": np.array([0, 1, 2]),
               "within": np.array([[0.1, 0.2], [0.3, 0.4], [0.2, 0.3]]),
               "within_ci_low": np.zeros((3, 2)), "labels": np.array([[0, 1], [1, 0], [0, 0]]),
               "xi": np.array([[1.0, np.nan], [2.0, 3.0], [3.0, 3.0]])}
    got = seeds.mean_with_interval(stacked)
    np.testing.assert_allclose(got["within"], [0.2, 0.3])
    half = 4.302653 * np.std([0.1, 0.3, 0.2], ddof=1) / math.sqrt(3)
    assert got["within_ci_low"][0] == pytest.approx(0.2 - half)
    assert got["labels"].tolist() == [0, 1]  # Not numbers to average: the first seed's.
    assert math.isnan(got["xi"][1])  # A mean only where every seed defines the value.
    assert "seeds" not in got
