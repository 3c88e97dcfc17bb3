"""Neighbourhood stiffness against a direct double loop over points."""

from __future__ import annotations

import numpy as np
import pytest

from tfstiffness.measures import neighbourhood
from tfstiffness.measures.neighbourhood import NeighbourhoodStiffness, neighbourhood_stiffness


def loop_neighbourhood(S, x, radius=None, k=None, weighting="uniform", bandwidth=None):
    """Direct reference: for each i, list its neighbours j != i and average S[i, j]."""
    flat = x.reshape(len(x), -1)
    n = len(flat)
    values, counts = np.full(n, np.nan), np.zeros(n, int)
    for i in range(n):
        dists = [(float(np.linalg.norm(flat[i] - flat[j])), j) for j in range(n) if j != i]
        if radius is not None:
            chosen = [(d, j) for d, j in dists if d <= radius]
            h = radius / 2 if bandwidth is None else bandwidth
        else:
            chosen = sorted(dists)[:k]  # tuples sort by distance, then by index
            h = chosen[-1][0] / 2 if bandwidth is None else bandwidth
        counts[i] = len(chosen)
        if not chosen:
            continue
        total, weight_sum = 0.0, 0.0
        for d, j in chosen:
            w = 1.0 if weighting == "uniform" else np.exp(-(d**2) / (2 * h**2))
            total += w * S[i, j]
            weight_sum += w
        values[i] = total / weight_sum
    return values, counts


def random_problem(seed, n=30, shape=(3,)):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(n, *shape))
    S = rng.uniform(-1, 1, size=(n, n))  # not symmetric: row i must be used for point i
    return S, x


@pytest.mark.parametrize("weighting", ["uniform", "gaussian"])
@pytest.mark.parametrize("block_size", [7, 1024])
def test_radius_mode_matches_the_loop(weighting, block_size):
    S, x = random_problem(0)
    result = neighbourhood_stiffness(S, x, radius=1.0, weighting=weighting, block_size=block_size)
    values, counts = loop_neighbourhood(S, x, radius=1.0, weighting=weighting)
    assert np.all(counts > 0) and counts.max() > counts.min()  # a real mix of sizes
    np.testing.assert_array_equal(result.counts, counts)
    np.testing.assert_allclose(result.values, values, rtol=1e-10)
    assert result.no_neighbour.size == 0


@pytest.mark.parametrize("weighting", ["uniform", "gaussian"])
@pytest.mark.parametrize("block_size", [4, 1024])
def test_k_mode_matches_the_loop(weighting, block_size):
    S, x = random_problem(1, shape=(2, 2))  # images: flattened to 4 features
    result = neighbourhood_stiffness(S, x, k=5, weighting=weighting, block_size=block_size)
    values, counts = loop_neighbourhood(S, x, k=5, weighting=weighting)
    np.testing.assert_array_equal(result.counts, 5)
    np.testing.assert_array_equal(result.counts, counts)
    np.testing.assert_allclose(result.values, values, rtol=1e-10)


def test_wide_inputs_match_the_loop():
    # 20 features: above DIRECT_DISTANCE_MAX_FEATURES, distances come from a matrix product.
    S, x = random_problem(5, shape=(5, 4))
    assert x[0].size > neighbourhood.DIRECT_DISTANCE_MAX_FEATURES
    by_radius = neighbourhood_stiffness(S, x, radius=3.3, weighting="gaussian", block_size=8)
    values, counts = loop_neighbourhood(S, x, radius=3.3, weighting="gaussian")
    assert counts.min() > 0 and counts.max() > counts.min()
    np.testing.assert_array_equal(by_radius.counts, counts)
    np.testing.assert_allclose(by_radius.values, values, rtol=1e-10)
    by_k = neighbourhood_stiffness(S, x, k=4, block_size=8)
    np.testing.assert_allclose(by_k.values, loop_neighbourhood(S, x, k=4)[0], rtol=1e-10)


def test_gaussian_weights_differ_from_uniform_and_follow_the_bandwidth():
    S, x = random_problem(2)
    uniform = neighbourhood_stiffness(S, x, radius=0.9).values
    gaussian = neighbourhood_stiffness(S, x, radius=0.9, weighting="gaussian", bandwidth=0.2)
    expected, _ = loop_neighbourhood(S, x, radius=0.9, weighting="gaussian", bandwidth=0.2)
    np.testing.assert_allclose(gaussian.values, expected, rtol=1e-10)
    assert np.max(np.abs(gaussian.values - uniform)) > 1e-3
    k_mode = neighbourhood_stiffness(S, x, k=3, weighting="gaussian", bandwidth=0.05)
    expected_k, _ = loop_neighbourhood(S, x, k=3, weighting="gaussian", bandwidth=0.05)
    np.testing.assert_allclose(k_mode.values, expected_k, rtol=1e-10)


def test_tiny_bandwidth_weighs_the_nearest_neighbour_instead_of_underflowing():
    x = np.array([[0.0], [1.0], [3.0]])
    S = np.array([[1.0, 0.4, -0.6], [0.4, 1.0, 0.2], [-0.6, 0.2, 1.0]])
    result = neighbourhood_stiffness(S, x, radius=5.0, weighting="gaussian", bandwidth=1e-3)
    # exp(-d^2 / 2h^2) underflows to 0 for every neighbour; the limit is the nearest one.
    np.testing.assert_allclose(result.values, [0.4, 0.4, 0.2])


def test_points_without_neighbour_are_nan_counted_and_warned():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.12], [3.0, 3.0], [-3.0, 3.0]])
    S = np.arange(25, dtype=float).reshape(5, 5) / 25
    with pytest.warns(UserWarning, match=r"2 of 5 points have no neighbour within radius 0.15"):
        result = neighbourhood_stiffness(S, x, radius=0.15, block_size=2)
    np.testing.assert_array_equal(result.no_neighbour, [3, 4])
    np.testing.assert_array_equal(result.counts, [2, 1, 1, 0, 0])
    assert np.isnan(result.values[3]) and np.isnan(result.values[4])
    # By hand: point 0 has neighbours 1 and 2 (0.1 and 0.12 away); 1 and 2 are 0.156 apart.
    np.testing.assert_allclose(result.values[:3], [(S[0, 1] + S[0, 2]) / 2, S[1, 0], S[2, 0]])
    expected, _ = loop_neighbourhood(S, x, radius=0.15)
    np.testing.assert_allclose(result.values, expected)


def test_k_mode_breaks_ties_by_index():
    # Point 2 sits between 1 and 3 at distance 1 from both; 0 and 4 are 2 away.
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    S = np.arange(25, dtype=float).reshape(5, 5)
    result = neighbourhood_stiffness(S, x, k=1)
    np.testing.assert_array_equal(result.values, [S[0, 1], S[1, 0], S[2, 1], S[3, 2], S[4, 3]])
    result3 = neighbourhood_stiffness(S, x, k=3)
    assert result3.values[2] == pytest.approx((S[2, 1] + S[2, 3] + S[2, 0]) / 3)


def test_k_mode_breaks_many_ties_by_index_like_the_loop():
    # 60 points on 5 integer positions: most of each point's 7 nearest are ties.
    rng = np.random.default_rng(6)
    x = rng.integers(0, 5, size=(60, 1)).astype(float)
    S = rng.uniform(-1, 1, size=(60, 60))
    result = neighbourhood_stiffness(S, x, k=7, block_size=16)
    np.testing.assert_allclose(result.values, loop_neighbourhood(S, x, k=7)[0], rtol=1e-12)


def test_duplicate_points_are_neighbours_and_self_is_not():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [5.0, 5.0]])
    S = np.array([[9.0, 0.3, 0.1], [0.7, 9.0, 0.2], [0.5, 0.6, 9.0]])
    with pytest.warns(UserWarning, match="1 of 3 points have no neighbour"):
        result = neighbourhood_stiffness(S, x, radius=0.0, weighting="gaussian")
    np.testing.assert_array_equal(result.counts, [1, 1, 0])
    np.testing.assert_allclose(result.values[:2], [0.3, 0.7])
    k_mode = neighbourhood_stiffness(S, x, k=1, weighting="gaussian")  # h = 0 for 0 and 1
    np.testing.assert_allclose(k_mode.values, [0.3, 0.7, 0.5])  # 2's tie goes to index 0


def test_results_do_not_depend_on_block_size():
    S, x = random_problem(3, n=23)
    reference = neighbourhood_stiffness(S, x, radius=1.0, weighting="gaussian", block_size=23)
    for block_size in (1, 5, 22):
        other = neighbourhood_stiffness(S, x, radius=1.0, weighting="gaussian",
                                        block_size=block_size)  # fmt: skip
        np.testing.assert_array_equal(other.values, reference.values)
        np.testing.assert_array_equal(other.counts, reference.counts)


def test_result_is_a_frozen_dataclass():
    S, x = random_problem(4, n=5)
    result = neighbourhood_stiffness(S, x, k=2)
    assert isinstance(result, NeighbourhoodStiffness)
    with pytest.raises(AttributeError):
        result.values = None


def test_errors_name_the_argument():
    S, x = np.eye(4), np.zeros((4, 2))
    with pytest.raises(ValueError, match="give exactly one of radius and k"):
        neighbourhood_stiffness(S, x)
    with pytest.raises(ValueError, match="give exactly one of radius and k"):
        neighbourhood_stiffness(S, x, radius=0.1, k=2)
    with pytest.raises(ValueError, match="radius must be a finite number >= 0"):
        neighbourhood_stiffness(S, x, radius=-0.1)
    with pytest.raises(ValueError, match="k must be a positive int"):
        neighbourhood_stiffness(S, x, k=0)
    with pytest.raises(ValueError, match="k = 4 but each of the 4 points has only 3 other"):
        neighbourhood_stiffness(S, x, k=4)
    with pytest.raises(ValueError, match=r"weighting must be one of \('uniform', 'gaussian'\)"):
        neighbourhood_stiffness(S, x, k=1, weighting="cosine")
    with pytest.raises(ValueError, match="bandwidth must be a number > 0"):
        neighbourhood_stiffness(S, x, k=1, weighting="gaussian", bandwidth=0.0)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        neighbourhood_stiffness(S, x, k=1, block_size=0)
    with pytest.raises(ValueError, match=r"S must be a square \[N, N\] stiffness matrix"):
        neighbourhood_stiffness(np.zeros((4, 3)), x, k=1)
    with pytest.raises(ValueError, match=r"x must hold one input per row of S \(4\)"):
        neighbourhood_stiffness(S, np.zeros((3, 2)), k=1)

    class FakeGram:
        total = np.eye(4)

    with pytest.raises(ValueError, match="call measures.stiffness_matrix"):
        neighbourhood_stiffness(FakeGram(), x, k=1)


def test_nan_in_s_or_x_is_refused_naming_the_argument_and_index():
    x = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0]])
    S = np.eye(3)
    S_nan = S.copy()
    S_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"^S holds 1 non-finite value.*index \(2, 1\)"):
        neighbourhood_stiffness(S_nan, x, k=1)
    x_bad = x.copy()
    x_bad[1, 1] = np.inf
    with pytest.raises(ValueError, match=r"^x \(flattened per example\) holds 1 non-finite.*"
                                         r"index \(1, 1\)"):
        neighbourhood_stiffness(S, x_bad, radius=0.15)


def test_no_neighbour_warning_suggests_a_radius_that_finds_them():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3)) * 3.0
    S = rng.uniform(-1, 1, size=(40, 40))
    pairwise = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(pairwise, np.inf)
    nearest = pairwise.min(1)  # brute force
    with pytest.warns(UserWarning, match=r"40 of 40 points have no neighbour within radius "
                                         r"0.01; .* median (\S+); radius (\S+) gives 90%") as rec:
        neighbourhood_stiffness(S, x, radius=0.01, block_size=7)
    words = str(rec[-1].message).split()
    median = float(words[words.index("median") + 1].rstrip(";"))
    suggested = float(words[words.index("gives") - 1])
    assert median == pytest.approx(np.median(nearest), rel=5e-3)
    assert (nearest <= suggested).mean() >= 0.9
    assert (nearest <= suggested * 0.99).mean() < 0.9
    result = neighbourhood_stiffness(S, x, radius=suggested)
    assert (result.counts > 0).mean() >= 0.9


@pytest.mark.parametrize("radius", [-1.0, float("nan"), float("inf"), "1", None])
def test_check_radius_refuses(radius):
    from tfstiffness.measures.neighbourhood import check_radius

    with pytest.raises(ValueError, match=r"radius must be a finite number >= 0, got "):
        check_radius(radius)
