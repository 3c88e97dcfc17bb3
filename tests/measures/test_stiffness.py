"""Stiffness measures against direct formulas and explicit Python loops on small matrices."""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

from tfstiffness import measures

# ---------------------------------------------------------------------------------------------
# References: plain loops that share no code with the module
# ---------------------------------------------------------------------------------------------


def loop_cosine(G, row_norms, col_norms):
    out = np.zeros(G.shape)
    for i in range(G.shape[0]):
        for j in range(G.shape[1]):
            if row_norms[i] > 0 and col_norms[j] > 0:
                out[i, j] = G[i, j] / np.sqrt(row_norms[i] * col_norms[j])
    return out


def loop_class_stiffness(S, labels, labels2, num_classes, one_set):
    sums = np.zeros((num_classes, num_classes))
    counts = np.zeros((num_classes, num_classes))
    for i in range(S.shape[0]):
        for j in range(S.shape[1]):
            if one_set and i == j:
                continue
            sums[labels[i], labels2[j]] += S[i, j]
            counts[labels[i], labels2[j]] += 1
    out = np.full((num_classes, num_classes), np.nan)
    for a in range(num_classes):
        for b in range(num_classes):
            if counts[a, b]:
                out[a, b] = sums[a, b] / counts[a, b]
    return out


def loop_distance(a, b, mean, std):
    a = (a.ravel() - mean) / np.where(std > 0, std, 1.0)
    b = (b.ravel() - mean) / np.where(std > 0, std, 1.0)
    na, nb = np.sqrt(a @ a), np.sqrt(b @ b)
    a = a / na if na > 0 else a
    b = b / nb if nb > 0 else b
    return min(max(1.0 - float(a @ b), 0.0), 2.0)


def loop_binned(pair_list, edges):
    """pair_list: (distance, stiffness) tuples -> (counts, means) by a loop over bins."""
    num_bins = len(edges) - 1
    counts = np.zeros(num_bins, int)
    sums = np.zeros(num_bins)
    for d, s in pair_list:
        for b in range(num_bins):
            last = b == num_bins - 1
            if edges[b] <= d < edges[b + 1] or (last and d == edges[-1]):
                counts[b] += 1
                sums[b] += s
                break
    means = np.array([sums[b] / counts[b] if counts[b] else np.nan for b in range(num_bins)])
    return counts, means


def random_gradients(rng, n, p=5):
    return rng.normal(size=(n, p))


def fake_gram(g1, g2=None):
    """Duck-typed GradientGram: only the attributes the measures read."""
    g2_ = g1 if g2 is None else g2
    return types.SimpleNamespace(
        total=g1 @ g2_.T,
        by_layer={},
        sq_norms=np.sum(g1**2, axis=1),
        sq_norms2=np.sum(g2_**2, axis=1),
        cross=g2 is not None,
    )


# ---------------------------------------------------------------------------------------------
# stiffness_matrix and count_zero_gradients
# ---------------------------------------------------------------------------------------------


def test_sign_stiffness_is_minus_one_zero_or_one_with_ties_at_zero():
    G = np.array([[2.0, -0.5, 0.0], [-0.5, 3.0, -0.0], [0.0, -0.0, 1e-30]])
    S = measures.stiffness_matrix(G, kind="sign")
    expected = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(S, expected)
    assert not np.any(np.signbit(S[S == 0]))  # no -0.0 left
    assert S.dtype == np.float64


def test_cosine_matches_loop_for_one_set():
    rng = np.random.default_rng(1)
    g = random_gradients(rng, 6)
    G = g @ g.T
    S = measures.stiffness_matrix(G)
    norms = np.diag(G)
    np.testing.assert_allclose(S, loop_cosine(G, norms, norms), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.diag(S), 1.0, rtol=1e-12)


def test_cosine_of_two_sets_uses_the_gram_objects_norms():
    rng = np.random.default_rng(2)
    g1, g2 = random_gradients(rng, 4), random_gradients(rng, 3)
    gram = fake_gram(g1, g2)
    S = measures.stiffness_matrix(gram, kind="cosine")
    expected = loop_cosine(g1 @ g2.T, np.sum(g1**2, 1), np.sum(g2**2, 1))
    assert S.shape == (4, 3)
    np.testing.assert_allclose(S, expected, rtol=1e-12)


def test_cosine_of_plain_non_square_array_with_explicit_norms():
    rng = np.random.default_rng(3)
    g1, g2 = random_gradients(rng, 2), random_gradients(rng, 5)
    n, m = np.sum(g1**2, 1), np.sum(g2**2, 1)
    S = measures.stiffness_matrix(g1 @ g2.T, sq_norms=n, sq_norms2=m)
    np.testing.assert_allclose(S, loop_cosine(g1 @ g2.T, n, m), rtol=1e-12)


def test_explicit_norms_override_the_gram_objects():
    rng = np.random.default_rng(4)
    gram = fake_gram(random_gradients(rng, 3))
    doubled = 4.0 * gram.sq_norms  # twice the norm: every cosine halves
    S = measures.stiffness_matrix(gram, sq_norms=doubled)
    half = 0.5 * measures.stiffness_matrix(gram)
    np.testing.assert_allclose(S, half, rtol=1e-12)


def test_cosine_of_zero_gradient_is_zero_and_warned():
    g = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    G = g @ g.T
    with pytest.warns(UserWarning, match=r"1 of 4 examples have an exactly zero gradient"):
        S = measures.stiffness_matrix(G, kind="cosine")
    np.testing.assert_array_equal(S[1], 0.0)
    np.testing.assert_array_equal(S[:, 1], 0.0)
    assert S[1, 1] == 0.0
    assert S[0, 2] == pytest.approx(1 / np.sqrt(2), rel=1e-12)
    assert S[0, 3] == pytest.approx(-1.0, rel=1e-12)
    assert S[2, 2] == pytest.approx(1.0, rel=1e-12)


def test_zero_gradient_warning_counts_each_set():
    g1 = np.array([[0.0, 0.0], [1.0, 2.0], [0.0, 0.0]])
    g2 = np.array([[3.0, 1.0], [0.0, 0.0]])
    gram = fake_gram(g1, g2)
    pattern = r"2 of 3 examples in the first set and 1 of 2 in the second set"
    with pytest.warns(UserWarning, match=pattern):
        S = measures.stiffness_matrix(gram)
    expected = np.zeros((3, 2))
    expected[1, 0] = 5.0 / np.sqrt(5.0 * 10.0)
    np.testing.assert_allclose(S, expected, rtol=1e-12)


def test_square_plain_array_with_column_norms_is_two_sets():
    # Two sets of equal size: the diagonal is not a set of squared norms.
    G = np.array([[2.0, 0.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="needs sq_norms"):
        measures.stiffness_matrix(G, sq_norms2=np.array([4.0, 0.0]))
    with pytest.warns(UserWarning, match="0 of 2 examples in the first set and 1 of 2 in the"):
        S = measures.stiffness_matrix(G, sq_norms=np.array([1.0, 1.0]), sq_norms2=[4.0, 0.0])
    np.testing.assert_allclose(S, [[1.0, 0.0], [0.5, 0.0]])


def test_no_warning_without_zero_gradients():
    rng = np.random.default_rng(5)
    gram = fake_gram(random_gradients(rng, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        measures.stiffness_matrix(gram)
        measures.stiffness_matrix(gram, kind="sign")


def test_cosine_is_clipped_into_minus_one_one():
    # Off-diagonal entries a round-off above Cauchy-Schwarz, as float32 Grams can give.
    G = np.array([[1.0, 1.0 + 1e-7], [-(1.0 + 1e-7), 1.0]])
    S = measures.stiffness_matrix(G)
    np.testing.assert_array_equal(S, [[1.0, 1.0], [-1.0, 1.0]])


def test_count_zero_gradients_of_norms_matrix_and_gram_object():
    assert measures.count_zero_gradients(np.array([0.0, 1.0, 0.0, 3.0])) == 2
    assert measures.count_zero_gradients(np.diag([0.0, 2.0, 0.0])) == 2
    one_set = fake_gram(np.array([[0.0, 0.0], [1.0, 0.0]]))
    assert measures.count_zero_gradients(one_set) == 1
    two_sets = fake_gram(np.array([[0.0, 0.0], [1.0, 0.0]]), np.zeros((3, 2)))
    assert measures.count_zero_gradients(two_sets) == 4
    assert isinstance(measures.count_zero_gradients(np.ones(2)), int)


def test_stiffness_matrix_errors():
    G = np.eye(3)
    with pytest.raises(ValueError, match=r"kind must be one of \('sign', 'cosine'\).*'angle'"):
        measures.stiffness_matrix(G, kind="angle")
    with pytest.raises(ValueError, match="needs sq_norms"):
        measures.stiffness_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="needs sq_norms2"):
        measures.stiffness_matrix(np.ones((2, 3)), sq_norms=np.ones(2))
    with pytest.raises(ValueError, match=r"sq_norms must have shape \(3,\)"):
        measures.stiffness_matrix(G, sq_norms=np.ones(2))
    with pytest.raises(ValueError, match=r"sq_norms2 must have shape \(3,\)"):
        measures.stiffness_matrix(G, sq_norms=np.ones(3), sq_norms2=np.ones(4))
    with pytest.raises(ValueError, match="sq_norms holds squared norms, which cannot be negative"):
        measures.stiffness_matrix(-np.eye(2))
    with pytest.raises(ValueError, match="gram must be a 2-D matrix"):
        measures.stiffness_matrix(np.ones(3))
    with pytest.raises(ValueError, match="gram_or_sq_norms must be"):
        measures.count_zero_gradients(np.ones((2, 3)))


# ---------------------------------------------------------------------------------------------
# class_stiffness and within_between
# ---------------------------------------------------------------------------------------------


def test_class_stiffness_one_set_excludes_self_pairs():
    rng = np.random.default_rng(6)
    S = rng.uniform(-1, 1, size=(7, 7))  # not symmetric: rows and columns must not be mixed
    labels = np.array([0, 2, 0, 1, 2, 0, 2])
    C = measures.class_stiffness(S, labels)
    np.testing.assert_allclose(C, loop_class_stiffness(S, labels, labels, 3, True), rtol=1e-12)
    # By hand: class 1 has one example, so C(1, 1) has no pair; C(0, 1) = mean S[{0,2,5}, 3].
    assert np.isnan(C[1, 1])
    assert C[0, 1] == pytest.approx(np.mean(S[[0, 2, 5], 3]))


def test_class_stiffness_of_a_constant_diagonal_ignores_the_diagonal():
    S = np.full((4, 4), 0.25)
    np.fill_diagonal(S, 1.0)
    C = measures.class_stiffness(S, np.array([0, 0, 1, 1]))
    np.testing.assert_allclose(C, 0.25, rtol=1e-12)


def test_class_stiffness_two_sets_counts_every_pair():
    rng = np.random.default_rng(7)
    S = rng.uniform(-1, 1, size=(5, 4))
    labels, labels2 = np.array([1, 0, 1, 1, 0]), np.array([0, 1, 1, 0])
    C = measures.class_stiffness(S, labels, labels2)
    np.testing.assert_allclose(C, loop_class_stiffness(S, labels, labels2, 2, False), rtol=1e-12)
    # A square two-set matrix keeps its diagonal: here only the i == j pairs are class 0 vs 0.
    S_square = np.diag([0.9, 0.7])
    C_square = measures.class_stiffness(S_square, np.array([0, 1]), np.array([0, 1]))
    np.testing.assert_allclose(C_square, [[0.9, 0.0], [0.0, 0.7]])


def test_class_stiffness_empty_classes_are_nan():
    S = np.array([[1.0, 0.3, -0.4], [0.3, 1.0, 0.6], [-0.4, 0.6, 1.0]])
    C = measures.class_stiffness(S, np.array([0, 0, 2]), num_classes=4)
    assert C.shape == (4, 4)
    assert C[0, 0] == pytest.approx(0.3)
    assert C[0, 2] == pytest.approx(0.1)
    assert C[2, 0] == pytest.approx(0.1)
    assert np.isnan(C[2, 2])  # a single example: only its excluded self-pair
    assert np.all(np.isnan(C[[1, 3], :])) and np.all(np.isnan(C[:, [1, 3]]))


def test_class_stiffness_errors():
    S = np.zeros((3, 3))
    with pytest.raises(ValueError, match="labels must be a 1-D array"):
        measures.class_stiffness(S, np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="labels must hold integers"):
        measures.class_stiffness(S, np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="labels has 2 entries but S has 3 rows"):
        measures.class_stiffness(S, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        measures.class_stiffness(S, np.array([0, 1, 2]), num_classes=2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        measures.class_stiffness(S, np.array([0, -1, 2]))
    with pytest.raises(ValueError, match="pass labels2"):
        measures.class_stiffness(np.zeros((3, 2)), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match="labels2 has 3 entries but S has 2 columns"):
        measures.class_stiffness(np.zeros((3, 2)), np.array([0, 1, 1]), np.array([0, 1, 1]))
    with pytest.raises(ValueError, match=r"labels2 must lie in \[0, 2\)"):
        measures.class_stiffness(np.zeros((1, 1)), np.array([0]), np.array([5]), num_classes=2)
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        measures.class_stiffness(S, np.array([0, 1, 1]), num_classes=0)
    with pytest.raises(TypeError, match="num_classes must be a positive int"):
        measures.class_stiffness(S, np.array([0, 1, 1]), num_classes=2.0)


def test_within_between_against_a_loop_skipping_nan():
    C = np.array([[0.8, 0.1, np.nan], [0.3, 0.6, -0.2], [0.0, np.nan, np.nan]])
    within, between = measures.within_between(C)
    assert within == pytest.approx((0.8 + 0.6) / 2)
    assert between == pytest.approx((0.1 + 0.3 - 0.2 + 0.0) / 4)
    all_nan = measures.within_between(np.full((2, 2), np.nan))
    assert np.isnan(all_nan[0]) and np.isnan(all_nan[1])
    with pytest.raises(ValueError, match="C must be a square class matrix"):
        measures.within_between(np.zeros((2, 3)))


# ---------------------------------------------------------------------------------------------
# Super-classes
# ---------------------------------------------------------------------------------------------

# Four fine classes, interleaved over two super-classes: {0, 2} and {1, 3}.
FINE_TO_COARSE = np.array([0, 1, 0, 1])
FINE_C = np.array(
    [
        [0.9, 0.1, 0.6, 0.0],
        [0.2, 0.8, -0.1, 0.4],
        [0.5, 0.05, 0.7, np.nan],
        [-0.2, 0.3, 0.1, 0.6],
    ]
)


def test_superclass_contrast_against_a_loop():
    same, different = [], []
    for a in range(4):
        for b in range(4):
            if a == b or np.isnan(FINE_C[a, b]):
                continue
            target = same if FINE_TO_COARSE[a] == FINE_TO_COARSE[b] else different
            target.append(FINE_C[a, b])
    expected = np.mean(same) - np.mean(different)
    assert measures.superclass_contrast(FINE_C, FINE_TO_COARSE) == pytest.approx(expected)
    # By hand: same = {0.6, 0.4, 0.5, 0.3}, different = {0.1, 0.0, 0.2, -0.1, 0.05, -0.2, 0.1}.
    assert expected == pytest.approx(0.45 - 0.15 / 7)


def test_superclass_order_is_a_stable_grouping():
    np.testing.assert_array_equal(measures.superclass_order(FINE_TO_COARSE), [0, 2, 1, 3])
    order = measures.superclass_order(np.array([2, 0, 1, 0, 2, 1]))
    np.testing.assert_array_equal(order, [1, 3, 2, 5, 0, 4])


def test_superclass_matrix_against_a_loop():
    M = measures.superclass_matrix(FINE_C, FINE_TO_COARSE)
    expected = np.zeros((2, 2))
    for p in range(2):
        for q in range(2):
            values = [
                FINE_C[a, b]
                for a in range(4)
                for b in range(4)
                if a != b
                and FINE_TO_COARSE[a] == p
                and FINE_TO_COARSE[b] == q
                and not np.isnan(FINE_C[a, b])
            ]
            expected[p, q] = np.mean(values)
    np.testing.assert_allclose(M, expected, rtol=1e-12)
    # Diagonal blocks leave out the within-class entries: block (0, 0) is mean(0.6, 0.5).
    assert M[0, 0] == pytest.approx(0.55)
    assert M[1, 1] == pytest.approx(0.35)


def test_superclass_matrix_single_fine_class_block_is_nan():
    C = np.array([[0.9, 0.2], [0.3, 0.8]])
    M = measures.superclass_matrix(C, np.array([0, 1]))
    assert np.isnan(M[0, 0]) and np.isnan(M[1, 1])
    assert M[0, 1] == pytest.approx(0.2) and M[1, 0] == pytest.approx(0.3)
    assert np.isnan(measures.superclass_contrast(C, np.array([0, 1])))


def test_superclass_errors():
    with pytest.raises(ValueError, match="fine_to_coarse has 3 entries but C has 4 classes"):
        measures.superclass_contrast(FINE_C, np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="fine_to_coarse must be a 1-D integer array"):
        measures.superclass_matrix(FINE_C, np.array([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="fine_to_coarse must hold non-negative"):
        measures.superclass_order(np.array([0, -1]))


# ---------------------------------------------------------------------------------------------
# input_distances
# ---------------------------------------------------------------------------------------------


def test_input_distances_match_a_loop_and_lie_in_zero_two():
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 2, 3)) + 5.0  # images: flattened to 6 features
    x[:, 0, 1] = 3.0  # a constant feature: centred to 0, not divided by its std of 0
    D = measures.input_distances(x)
    flat = x.reshape(6, -1)
    mean, std = flat.mean(0), flat.std(0)
    expected = np.array([[loop_distance(a, b, mean, std) for b in flat] for a in flat])
    np.testing.assert_allclose(D, expected, rtol=1e-12, atol=1e-12)
    assert D.min() >= 0.0 and D.max() <= 2.0
    np.testing.assert_allclose(np.diag(D), 0.0, atol=1e-12)
    np.testing.assert_allclose(D, D.T, atol=1e-15)


def test_input_distances_identical_opposite_and_zero_points():
    # The mean is (0, 0): rows 0, 1 coincide, rows 2, 3 point the other way, row 4 is all zero.
    x = np.array([[2.0, 1.0], [2.0, 1.0], [-2.0, -1.0], [-2.0, -1.0], [0.0, 0.0]])
    D = measures.input_distances(x)
    assert D[0, 1] == pytest.approx(0.0, abs=1e-12)
    assert D[0, 2] == pytest.approx(2.0, abs=1e-12)
    assert D[1, 3] == pytest.approx(2.0, abs=1e-12)
    np.testing.assert_array_equal(D[4], 1.0)  # an all-zero example is at 1 from everything
    np.testing.assert_array_equal(D[:, 4], 1.0)


def test_input_distances_two_sets_pool_statistics_and_transpose_on_swap():
    rng = np.random.default_rng(9)
    x, x2 = rng.normal(size=(4, 3)), rng.normal(size=(5, 3)) * 2.0 + 1.0
    D = measures.input_distances(x, x2)
    assert D.shape == (4, 5)
    np.testing.assert_allclose(measures.input_distances(x2, x), D.T, atol=1e-12)
    pooled = np.concatenate([x, x2])
    mean, std = pooled.mean(0), pooled.std(0)
    expected = np.array([[loop_distance(a, b, mean, std) for b in x2] for a in x])
    np.testing.assert_allclose(D, expected, rtol=1e-12, atol=1e-12)
    # Two sets are the off-diagonal block of the pooled one-set distances.
    np.testing.assert_allclose(D, measures.input_distances(pooled)[:4, 4:], atol=1e-12)


def test_input_distances_error():
    with pytest.raises(ValueError, match="x2 has 4 features per example but x has 3"):
        measures.input_distances(np.zeros((2, 3)), np.zeros((2, 2, 2)))


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


def nan_at(matrix, *index):
    matrix = np.array(matrix, dtype=float)
    matrix[index] = np.nan
    return matrix


def test_stiffness_matrix_refuses_nan_in_the_gram_and_in_the_norms():
    G = np.eye(3) + 0.1
    for kind in ("sign", "cosine"):
        with pytest.raises(ValueError, match=r"^gram holds 1 non-finite value.*index \(1, 2\)"):
            measures.stiffness_matrix(nan_at(G, 1, 2), kind=kind)
    norms = np.diag(G).copy()
    norms[2] = np.nan  # a NaN squared norm used to give cosine 0 silently
    with pytest.raises(ValueError, match=r"^sq_norms holds 1 non-finite value.*index 2"):
        measures.stiffness_matrix(G, sq_norms=norms)
    with pytest.raises(ValueError, match=r"^gram holds 1 non-finite"):  # from the diagonal
        measures.stiffness_matrix(nan_at(G, 0, 0))
    with pytest.raises(ValueError, match=r"^sq_norms2 holds 2 non-finite value.*index 0"):
        measures.stiffness_matrix(np.ones((2, 2)), sq_norms=np.ones(2),
                                  sq_norms2=np.array([np.inf, np.nan]))
    with pytest.raises(ValueError, match=r"^gram_or_sq_norms holds 1 non-finite"):
        measures.count_zero_gradients(np.array([0.0, np.nan]))


def test_class_stiffness_refuses_nan_instead_of_a_nan_matrix():
    S = nan_at(np.eye(4), 0, 3)
    with pytest.raises(ValueError, match=r"^S holds 1 non-finite value.*index \(0, 3\)"):
        measures.class_stiffness(S, np.array([0, 0, 1, 1]))


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
