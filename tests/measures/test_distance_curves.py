"""Stiffness against distance and the critical length, against explicit Python loops."""

from __future__ import annotations

import numpy as np
import pytest

from tests.measures.reference import (
    loop_binned,
    nan_at,
)
from tfstiffness import measures

# ---------------------------------------------------------------------------------------------
# stiffness_vs_distance
# ---------------------------------------------------------------------------------------------


def small_problem(rng, n=12):
    x = rng.normal(size=(n, 4))
    g = rng.normal(size=(n, 6))
    S = measures.stiffness_matrix(g @ g.T)
    labels = rng.integers(0, 3, size=n)
    return S, x, labels


@pytest.mark.parametrize("pairs", ["within", "between", "all"])
def test_stiffness_vs_distance_one_set_against_a_loop(pairs):
    rng = np.random.default_rng(10)
    S, x, labels = small_problem(rng)
    curve = measures.stiffness_vs_distance(S, x, labels=labels, pairs=pairs, bins=5)
    D = measures.input_distances(x)
    selected = []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            same = labels[i] == labels[j]
            if pairs == "all" or (pairs == "within") == same:
                selected.append((D[i, j], S[i, j]))
    distances = [d for d, _ in selected]
    np.testing.assert_allclose(curve.edges, np.linspace(min(distances), max(distances), 6))
    counts, means = loop_binned(selected, curve.edges)
    np.testing.assert_array_equal(curve.counts, counts)
    assert curve.counts.sum() == len(selected)
    np.testing.assert_allclose(curve.means, means, rtol=1e-12)
    np.testing.assert_allclose(curve.centres, (curve.edges[:-1] + curve.edges[1:]) / 2)
    assert curve.pairs == pairs


def test_stiffness_vs_distance_two_sets_counts_every_pair():
    rng = np.random.default_rng(11)
    x, x2 = rng.normal(size=(5, 3)), rng.normal(size=(4, 3))
    S = rng.uniform(-1, 1, size=(5, 4))
    labels, labels2 = np.array([0, 1, 0, 1, 1]), np.array([1, 1, 0, 0])
    curve = measures.stiffness_vs_distance(
        S, x, labels=labels, x2=x2, labels2=labels2, pairs="within", bins=3
    )
    D = measures.input_distances(x, x2)
    selected = [(D[i, j], S[i, j]) for i in range(5) for j in range(4) if labels[i] == labels2[j]]
    assert curve.counts.sum() == len(selected) == 10
    counts, means = loop_binned(selected, curve.edges)
    np.testing.assert_array_equal(curve.counts, counts)
    np.testing.assert_allclose(curve.means, means, rtol=1e-12)


def test_stiffness_vs_distance_with_given_distances_and_edges():
    S = np.array([[1.0, 0.8, 0.2, -0.4], [0.8, 1.0, 0.4, -0.6], [0.2, 0.4, 1.0, 0.0],
                  [-0.4, -0.6, 0.0, 1.0]])  # fmt: skip
    D = np.array([[0.0, 0.1, 0.3, 1.5], [0.1, 0.0, 0.35, 0.9], [0.3, 0.35, 0.0, 0.5],
                  [1.5, 0.9, 0.5, 0.0]])  # fmt: skip
    curve = measures.stiffness_vs_distance(
        S, pairs="all", bins=np.array([0.0, 0.2, 0.4, 0.6, 0.8, 1.0]), distances=D
    )
    # Pairs by hand: 0.1 -> 0.8; 0.3 -> 0.2, 0.35 -> 0.4; 0.5 -> 0.0 (bin [0.4, 0.6));
    # 0.9 -> -0.6 (last bin, closed); 1.5 lies outside the edges and is dropped.
    np.testing.assert_array_equal(curve.counts, [1, 2, 1, 0, 1])
    np.testing.assert_allclose(curve.means, [0.8, 0.3, 0.0, np.nan, -0.6])


def test_stiffness_vs_distance_all_pairs_at_one_distance():
    S = np.array([[1.0, 0.5], [0.5, 1.0]])
    curve = measures.stiffness_vs_distance(S, pairs="all", bins=2, distances=np.ones((2, 2)))
    np.testing.assert_allclose(curve.edges, [0.5, 1.0, 1.5])  # np.histogram's +-0.5 widening
    np.testing.assert_array_equal(curve.counts, [0, 1])


def test_stiffness_vs_distance_errors():
    S, x, labels = np.eye(3), np.zeros((3, 2)), np.array([0, 0, 1])
    with pytest.raises(ValueError, match=r"pairs must be one of \('within', 'between', 'all'\)"):
        measures.stiffness_vs_distance(S, x, labels=labels, pairs="same")
    with pytest.raises(ValueError, match="pairs='within' needs labels"):
        measures.stiffness_vs_distance(S, x)
    with pytest.raises(ValueError, match="pairs='between' needs labels"):
        measures.stiffness_vs_distance(S, x, pairs="between")
    with pytest.raises(ValueError, match="needs labels2"):
        measures.stiffness_vs_distance(
            np.zeros((3, 2)), x, labels=labels, x2=np.ones((2, 2)), pairs="within"
        )
    with pytest.raises(ValueError, match="pass x .* or precomputed distances"):
        measures.stiffness_vs_distance(S, labels=labels)
    with pytest.raises(ValueError, match="pass x2"):
        measures.stiffness_vs_distance(np.zeros((3, 2)), x, pairs="all")
    with pytest.raises(ValueError, match=r"distances has shape \(2, 2\) but S has shape"):
        measures.stiffness_vs_distance(S, labels=labels, distances=np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"x \(and x2\) give 2 x 2 pairs"):
        measures.stiffness_vs_distance(S, np.zeros((2, 2)), pairs="all")
    with pytest.raises(ValueError, match="bins must be a positive int"):
        measures.stiffness_vs_distance(S, x, labels=labels, bins=0)
    with pytest.raises(ValueError, match="bins as edges must be a 1-D strictly increasing"):
        measures.stiffness_vs_distance(S, x, labels=labels, bins=np.array([0.5, 0.2]))
    with pytest.raises(ValueError, match="pairs='within' selected no pair"):
        measures.stiffness_vs_distance(S, x, labels=np.array([0, 1, 2]))


# ---------------------------------------------------------------------------------------------
# critical_length
# ---------------------------------------------------------------------------------------------


def make_curve(means, counts, edges=None):
    means = np.asarray(means, float)
    edges = np.linspace(0.0, 1.0, len(means) + 1) if edges is None else np.asarray(edges)
    return measures.StiffnessCurve(
        edges=edges,
        centres=(edges[:-1] + edges[1:]) / 2,
        means=means,
        counts=np.asarray(counts),
        pairs="within",
    )


def test_critical_length_interpolates_the_first_crossing_skipping_empty_bins():
    # Centres 0.1, 0.3, 0.5, 0.7, 0.9; bin 3 is empty; the first crossing is between the
    # centres 0.5 (mean 0.3) and 0.9 (mean -0.1): xi = 0.5 + 0.4 * 0.3 / 0.4 = 0.8.
    curve = make_curve([0.6, 0.4, 0.3, np.nan, -0.1], [4, 3, 2, 0, 5])
    result = measures.critical_length(curve)
    assert result.status == "crossed"
    assert result.xi == pytest.approx(0.8)
    assert result.bound is None
    assert str(result) == "xi = 0.8"


def test_critical_length_takes_the_first_of_several_crossings():
    curve = make_curve([0.5, -0.5, 0.2, -0.2], [1, 1, 1, 1], edges=[0.0, 0.5, 1.0, 1.5, 2.0])
    result = measures.critical_length(curve)
    assert result.xi == pytest.approx(0.5)  # half-way between the centres 0.25 and 0.75


def test_critical_length_at_an_exact_zero_is_that_bins_centre():
    # A mean of exactly 0 counts as crossed (> 0 to <= 0), even if the next bin rises again.
    curve = make_curve([0.4, 0.0, 0.2, -0.3], [1, 1, 1, 1], edges=[0.0, 0.2, 0.4, 0.6, 0.8])
    result = measures.critical_length(curve)
    assert result.status == "crossed" and result.xi == pytest.approx(0.3)


def test_critical_length_never_crossed_gives_a_lower_bound():
    curve = make_curve([0.5, 0.2, 0.1, np.nan], [2, 2, 2, 0], edges=[0.1, 0.4, 0.7, 1.21, 1.5])
    result = measures.critical_length(curve)
    assert result.status == "never_crossed"
    assert result.xi is None
    assert result.bound == pytest.approx(1.21)  # upper edge of the last non-empty bin
    assert str(result) == "xi > 1.21 (stiffness never crosses zero)"


def test_critical_length_nonpositive_from_start_gives_an_upper_bound():
    curve = make_curve([np.nan, -0.1, 0.3], [0, 1, 1], edges=[0.0, 0.25, 0.5, 0.75])
    result = measures.critical_length(curve)
    assert result.status == "nonpositive_from_start"
    assert result.xi is None
    assert result.bound == pytest.approx(0.25)  # lower edge of the first non-empty bin
    assert str(result) == "xi < 0.25 (stiffness is already <= 0 in the first bin)"
    zero_first = measures.critical_length(make_curve([0.0, 0.3], [2, 2]))
    assert zero_first.status == "nonpositive_from_start" and zero_first.bound == 0.0


@pytest.mark.parametrize("method", ["crossing", "linear_fit"])
def test_critical_length_of_an_empty_curve_is_a_status_not_an_error(method):
    # Changed deliberately (issue 13): an undefined xi is a status, so callers never abort.
    result = measures.critical_length(make_curve([np.nan, np.nan], [0, 0]), method=method)
    assert result.status == "no_pairs" and result.xi is None and result.method == method
    assert str(result) == "no xi (the curve has no non-empty bin)"


def test_critical_length_end_to_end_on_a_known_crossing():
    # Stiffness falling linearly with distance, s = 0.9 - 2 d, crosses zero at d = 0.45.
    d = np.linspace(0.0, 1.0, 9)
    D = np.abs(d[:, None] - d[None, :])
    S = 0.9 - 2.0 * D
    edges = (np.arange(10) - 0.5) / 8  # bin centres on the distances k / 8; bin 0 stays empty
    curve = measures.stiffness_vs_distance(S, pairs="all", bins=edges, distances=D)
    assert curve.counts[0] == 0 and np.isnan(curve.means[0])
    np.testing.assert_array_equal(curve.counts[1:], np.arange(8, 0, -1))
    result = measures.critical_length(curve)
    assert result.status == "crossed"
    assert result.xi == pytest.approx(0.45, abs=1e-12)


# ---------------------------------------------------------------------------------------------
# critical_length, linear fit
# ---------------------------------------------------------------------------------------------


def normal_equations_fit(x, y, w):
    """Weighted least squares by the normal equations: minimise sum w (y - a x - b)^2."""
    X = np.stack([x, np.ones_like(x)], axis=1)
    a, b = np.linalg.solve(X.T @ (w[:, None] * X), X.T @ (w * y))
    fitted = a * x + b
    y_bar = np.sum(w * y) / np.sum(w)
    r_squared = 1 - np.sum(w * (y - fitted) ** 2) / np.sum(w * (y - y_bar) ** 2)
    return a, b, r_squared


def test_linear_fit_against_weighted_least_squares_skipping_empty_bins():
    rng = np.random.default_rng(3)
    means = np.array([0.55, 0.5, np.nan, 0.31, 0.2, 0.22, np.nan, 0.02])
    counts = np.array([3, 10, 0, 7, 25, 4, 0, 9])
    curve = make_curve(means, counts)
    result = measures.critical_length(curve, method="linear_fit")
    keep = counts > 0
    a, b, r_squared = normal_equations_fit(curve.centres[keep], means[keep],
                                           counts[keep].astype(float))
    # np.polyfit weighs the residuals, so its weights are the square roots of the counts.
    a_poly, b_poly = np.polyfit(curve.centres[keep], means[keep], 1, w=np.sqrt(counts[keep]))
    assert result.method == "linear_fit" and result.status == "fitted"
    assert result.slope == pytest.approx(a, rel=1e-12) == pytest.approx(a_poly, rel=1e-9)
    assert result.intercept == pytest.approx(b, rel=1e-12) == pytest.approx(b_poly, rel=1e-9)
    assert result.r_squared == pytest.approx(r_squared, rel=1e-12)
    assert result.xi == pytest.approx(-b / a, rel=1e-12)
    assert result.distance_range == (0.0, 1.0)
    assert result.extrapolated is (not 0.0 <= -b / a <= 1.0)
    for _ in range(5):  # random curves, random weights
        means = rng.normal(size=6)
        counts = rng.integers(1, 50, size=6)
        result = measures.critical_length(make_curve(means, counts), method="linear_fit")
        a, b, r_squared = normal_equations_fit(np.linspace(1, 11, 6) / 12, means,
                                               counts.astype(float))
        assert result.slope == pytest.approx(a, rel=1e-10)
        assert result.intercept == pytest.approx(b, rel=1e-10, abs=1e-12)
        assert result.r_squared == pytest.approx(r_squared, rel=1e-10)


def test_linear_fit_equals_an_unweighted_fit_to_every_pair_at_its_bin_centre():
    curve = make_curve([0.4, 0.1, -0.3], [2, 1, 3])
    result = measures.critical_length(curve, method="linear_fit")
    x = np.repeat(curve.centres, curve.counts)
    y = np.repeat(curve.means, curve.counts)
    a, b = np.polyfit(x, y, 1)
    assert (result.slope, result.intercept) == (pytest.approx(a), pytest.approx(b))


def test_linear_fit_extrapolated_beyond_the_largest_distance():
    # Stiffness positive everywhere: no crossing, but the fitted line reaches zero at 1.1.
    curve = make_curve([0.5, 0.3, np.nan], [4, 4, 0], edges=[0.1, 0.3, 0.5, 0.7])
    crossing = measures.critical_length(curve)
    fit = measures.critical_length(curve, method="linear_fit")
    assert crossing.status == "never_crossed" and crossing.bound == pytest.approx(0.5)
    assert fit.status == "fitted" and fit.extrapolated is True
    assert fit.slope == pytest.approx(-1.0) and fit.intercept == pytest.approx(0.7)
    assert fit.xi == pytest.approx(0.7) and fit.r_squared == pytest.approx(1.0)
    assert fit.distance_range == pytest.approx((0.1, 0.5))  # the last NON-EMPTY bin's edge
    assert str(fit) == "xi = 0.7 (linear fit, extrapolated beyond 0.5; slope -1, R^2 1.00)"


def test_linear_fit_inside_the_measured_range_is_not_extrapolated():
    curve = make_curve([0.6, 0.2, -0.2], [5, 5, 5], edges=[0.0, 0.2, 0.4, 0.6])
    fit = measures.critical_length(curve, method="linear_fit")
    assert fit.xi == pytest.approx(0.4) and fit.extrapolated is False
    assert str(fit) == "xi = 0.4 (linear fit; slope -2, R^2 1.00)"


def test_linear_fit_below_the_smallest_distance_is_extrapolated_below():
    curve = make_curve([-0.1, -0.2], [1, 1], edges=[0.5, 0.6, 0.7])
    fit = measures.critical_length(curve, method="linear_fit")
    assert fit.xi == pytest.approx(0.45)
    assert fit.extrapolated is True and "extrapolated below 0.5" in str(fit)


def test_linear_fit_without_decay_gives_no_number():
    for means in ([0.1, 0.2, 0.4], [0.3, 0.3, 0.3]):
        fit = measures.critical_length(make_curve(means, [3, 3, 3]), method="linear_fit")
        assert fit.status == "no_decay" and fit.xi is None and fit.slope >= 0
        assert str(fit).startswith("no xi (linear fit: stiffness does not decay with distance")
    rising = measures.critical_length(make_curve([0.1, 0.2, 0.4], [3, 3, 3]), "linear_fit")
    assert rising.r_squared == pytest.approx(normal_equations_fit(
        np.array([1, 3, 5]) / 6, np.array([0.1, 0.2, 0.4]), np.full(3, 3.0))[2])
    flat = measures.critical_length(make_curve([0.3, 0.3, 0.3], [3, 3, 3]), "linear_fit")
    assert np.isnan(flat.r_squared)


def test_linear_fit_nonpositive_at_zero_gives_no_number():
    fit = measures.critical_length(make_curve([-0.1, -0.2], [2, 2]), method="linear_fit")
    assert fit.status == "nonpositive_at_zero" and fit.xi is None and fit.slope < 0
    assert "already <= 0 at distance 0" in str(fit)


def test_linear_fit_needs_two_non_empty_bins():
    fit = measures.critical_length(make_curve([np.nan, 0.4, np.nan], [0, 6, 0]), "linear_fit")
    assert fit.status == "too_few_bins" and fit.xi is None
    assert str(fit) == "no xi (linear fit needs at least 2 non-empty bins)"


def test_critical_length_refuses_an_unknown_method_and_nan_in_a_filled_bin():
    with pytest.raises(ValueError, match="method must be one of"):
        measures.critical_length(make_curve([0.1, 0.2], [1, 1]), method="fit")
    with pytest.raises(ValueError, match=r"^curve.means is NaN or inf in 1 non-empty bin\(s\), "
                                         r"the first is bin 2"):
        measures.critical_length(make_curve([np.nan, 0.1, np.nan], [0, 1, 1]), "linear_fit")


def test_every_status_is_listed():
    seen = set()
    for means, counts in (([0.5, -0.5], [1, 1]), ([0.5, 0.4], [1, 1]), ([-0.5, 0.4], [1, 1]),
                          ([0.1, 0.4], [1, 1]), ([-0.1, -0.2], [1, 1]), ([0.1, 0.4], [1, 0]),
                          ([np.nan, np.nan], [0, 0])):
        for method in measures.CRITICAL_LENGTH_METHODS:
            seen.add(measures.critical_length(make_curve(means, counts), method).status)
    assert seen == set(measures.CRITICAL_LENGTH_STATUSES)


def test_linear_fit_end_to_end_recovers_a_linear_decay():
    # Stiffness falling linearly with distance, s = 0.9 - 2 d: the fit finds it exactly.
    d = np.linspace(0.0, 1.0, 9)
    D = np.abs(d[:, None] - d[None, :])
    edges = (np.arange(10) - 0.5) / 8  # bin centres on the distances k / 8
    curve = measures.stiffness_vs_distance(0.9 - 2.0 * D, pairs="all", bins=edges, distances=D)
    fit = measures.critical_length(curve, method="linear_fit")
    assert fit.slope == pytest.approx(-2.0) and fit.intercept == pytest.approx(0.9)
    assert fit.xi == pytest.approx(0.45) and fit.r_squared == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------
# Non-finite values are refused, naming the argument, the count and the first index
# ---------------------------------------------------------------------------------------------


def test_stiffness_vs_distance_refuses_nan_in_s_inputs_and_distances():
    S, D = np.eye(3), np.zeros((3, 3))
    labels = np.array([0, 0, 0])
    with pytest.raises(ValueError, match=r"^S holds 2 non-finite value.*index \(1, 1\)"):
        measures.stiffness_vs_distance(nan_at(nan_at(S, 1, 1), 2, 2), labels=labels,
                                       distances=D)
    with pytest.raises(ValueError, match=r"^distances holds 1 non-finite.*index \(2, 0\)"):
        measures.stiffness_vs_distance(S, labels=labels, distances=nan_at(D, 2, 0))
    x = np.arange(6.0).reshape(3, 2)
    with pytest.raises(ValueError, match=r"^x holds 1 non-finite value.*index \(1, 0\)"):
        measures.stiffness_vs_distance(S, nan_at(x, 1, 0), labels=labels)
    with pytest.raises(ValueError, match=r"^x2 holds 1 non-finite"):
        measures.input_distances(x, nan_at(x, 0, 1))
